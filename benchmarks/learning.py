"""Learning, measured: the self-challenge loop per toolset, held-out pass@1 before and after.

    .venv/bin/python benchmarks/learning.py [--tools calculator,shop] [--iterations 2]
        [--name learning] [-- ANY sc run OPTION ...]

For each toolset it runs ``sc run`` as a user would, with its defaults, which are the recipe
(the paper's distillation setting on a CPU: qwen-coder-0.5b's paired challenger, the 1.5B,
writes the tasks from the toolset's example tasks, or by exploring a toolset that has none;
the 0.5B executor learns by rejection fine-tuning with LoRA from its own successes and from
each kept task's solution replayed as its episode), or with whatever options follow ``--``,
evaluated on ``evals/<toolset>.jsonl`` (never trained on, never used as seeds). A run already
in ``runs/<name>-<toolset>`` is resumed, to ``--iterations`` in all, so a killed benchmark goes
on where it stopped and a finished one can go on for more iterations. It then
prints, per toolset and iteration: attempts, the share surviving each filter stage, kept and
trained-on tasks, the mean training reward, pass@1 and pass@k before and after, and the wall
time; and, per toolset, pass@1 of the starting model and of the last checkpoint with their
ratio and difference, against the goal (at least 2x and +10 points). Each run's
``report.html`` has the curve.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sc_core.report import read_metrics, summary_rows
from sc_core.verify import STAGES

ROOT = Path(__file__).resolve().parent.parent
SC = Path(sys.executable).parent / "sc"


def run(toolset: str, name: str, iterations: int, extra: list[str]) -> float:
    """``sc run`` for one toolset (resumed if its directory exists); its wall time in seconds."""
    directory = ROOT / "runs" / name
    if directory.is_dir():
        command = [str(SC), "run", "--name", name, "--resume", "--iterations", str(iterations)]
    else:
        command = [str(SC), "run", "--tools", toolset, "--name", name]
        command += ["--iterations", str(iterations)]
        evals = ROOT / "evals" / f"{toolset}.jsonl"
        if evals.is_file():
            command += ["--eval-tasks", str(evals)]
        command += extra
    print("$", " ".join(command), file=sys.stderr, flush=True)
    start = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.monotonic() - start


def mean_reward(metrics: list[dict], iteration: int) -> float | None:
    """The mean reward of an iteration's training rollouts (rows that carry one)."""
    rewards = [
        row["reward"]
        for row in metrics
        if row["kind"] == "train" and row["iteration"] == iteration and "reward" in row
    ]
    return sum(rewards) / len(rewards) if rewards else None


def figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(toolset: str, metrics: list[dict], seconds: float) -> dict:
    """Print one toolset's rows; returns its before/after summary."""
    filters = {row["iteration"]: row for row in metrics if row["kind"] == "filter"}
    rows = summary_rows(metrics)
    print(f"\n## {toolset} ({seconds / 60:.1f} min this invocation)")
    print("| iter | attempts | " + " | ".join(STAGES) + " | kept | trained on | reward | "
          "pass@1 before | pass@1 after | pass@k before | pass@k after |")  # fmt: skip
    print("|" + "---|" * (len(STAGES) + 9))
    for row in rows:
        stages = filters.get(row["iteration"], {}).get("stages", {})
        attempts = row.get("attempts") or 0
        shares = [
            f"{stages.get(stage, 0)} ({stages.get(stage, 0) / attempts:.0%})" if attempts else "-"
            for stage in STAGES
        ]
        cells = [
            str(row["iteration"]),
            str(attempts),
            *shares,
            str(row.get("kept", "-")),
            str(row.get("trained_on", "-")),
            figure(mean_reward(metrics, row["iteration"])),
            figure(row.get("pass_at_1_before")),
            figure(row.get("pass_at_1_after")),
            figure(row.get("pass_at_k_before")),
            figure(row.get("pass_at_k_after")),
        ]
        print("| " + " | ".join(cells) + " |")
    before = rows[0].get("pass_at_1_before") if rows else None
    after = rows[-1].get("pass_at_1_after") if rows else None
    return {"toolset": toolset, "before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", default="calculator,shop", help="Comma-separated toolsets.")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--name", default="learning", help="Runs are runs/NAME-TOOLSET.")
    parser.add_argument("extra", nargs="*", help="Options for sc run, after --.")
    args = parser.parse_args()
    results = []
    for toolset in args.tools.split(","):
        name = f"{args.name}-{toolset}"
        seconds = run(toolset, name, args.iterations, args.extra)
        results.append(table(toolset, read_metrics(ROOT / "runs" / name), seconds))
    print("\n| toolset | pass@1 before | pass@1 after | ratio | gain (points) | goal met |")
    print("|---|---|---|---|---|---|")
    for result in results:
        before, after = result["before"], result["after"]
        if before is None or after is None:
            print(f"| {result['toolset']} | {figure(before)} | {figure(after)} | - | - | - |")
            continue
        ratio = after / before if before else float("inf") if after else 1.0
        gain = 100 * (after - before)
        met = ratio >= 2 and gain >= 10
        print(
            f"| {result['toolset']} | {before:.3f} | {after:.3f} | {ratio:.2f}x | {gain:+.1f} | "
            f"{'yes' if met else 'no'} |"
        )
    print(json.dumps(results), file=sys.stderr)


if __name__ == "__main__":
    main()
