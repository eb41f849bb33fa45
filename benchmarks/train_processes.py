"""Training in 1 process against 2 (``sc train --processes 2``, gloo on CPU), in one run.

    .venv/bin/python benchmarks/train_processes.py [--model smollm2] [--tasks 8] [--batch 4]

Both run the same ``rft`` job on the first ``--tasks`` calculator tasks: one greedy episode per
task (temperature 0) and every episode kept (``min_reward=0``), so both fine-tune on the same
examples, ``--batch`` per optimizer step (a global figure: 2 processes take half each). The
figures come from the trainer's own summary (``train_runtime``, the optimizer steps only, not
the rollouts or the start): seconds per step and tokens per second (every token of every
example, prompt included: what the forward and backward passes process). ``wall`` is the whole
command, the processes' start and the rollouts included. On a machine with fewer cores than
processes, 2 processes share them and are expected to be no faster. torchrun gives each of
the 2 processes one thread (``OMP_NUM_THREADS=1``); the single process keeps torch's default
(one per core); ``OMP_NUM_THREADS=1`` in the environment gives it one too, the same threads
per process. On a machine others share, run both orders (``--order 2,1``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"


def train(processes: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """One ``sc train`` run; its figures from ``train_metrics.jsonl``."""
    out = folder / f"out-{processes}"
    line = [sys.executable, "-m", "sc_core", "train", str(folder / "tasks.jsonl")]
    line += ["--model", args.model, "--out", str(out), "--processes", str(processes)]
    line += ["--max-turns", "1", "--max-new-tokens", str(args.tokens), "--workers", "1"]
    for option in ("k=1", "temperature=0", "min_reward=0", f"batch_size={args.batch}"):
        line += ["--option", option]
    env = os.environ | {"PYTHONWARNINGS": "ignore", "SC_BACKEND": "transformers"}
    start = time.perf_counter()
    subprocess.run(line, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    rows = [json.loads(row) for row in (out / "train_metrics.jsonl").open()]
    steps = [row for row in rows if "loss" in row]
    summary = next(row for row in rows if "train_runtime" in row)
    runtime = summary["train_runtime"]
    return {
        "steps": len(steps),
        "tokens": steps[-1]["num_tokens"],
        "step_s": runtime / len(steps),
        "tokens_per_s": steps[-1]["num_tokens"] / runtime,
        "wall_s": wall,
        "loss": steps[-1]["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per episode")
    parser.add_argument("--order", default="1,2", help="which runs first (2,1: the reverse)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sc-bench-") as scratch:
        folder = Path(scratch)
        lines = EVALS.read_text().splitlines(keepends=True)[: args.tasks]
        (folder / "tasks.jsonl").write_text("".join(lines))
        results = {n: train(n, args, folder) for n in map(int, args.order.split(","))}
    print(f"rft on {args.tasks} tasks, {args.model}, batch {args.batch}, {os.cpu_count()} cores")
    header = ("processes", "steps", "tokens", "s/step", "tokens/s", "wall s")
    print(" ".join(f"{name:>9}" for name in header))
    for n, r in sorted(results.items()):
        print(
            f"{n:>9} {r['steps']:>9} {r['tokens']:>9.0f} {r['step_s']:>9.2f} "
            f"{r['tokens_per_s']:>9.1f} {r['wall_s']:>9.1f}"
        )
    one, two = results[1], results[2]
    print(
        f"2 vs 1: tokens/s x{two['tokens_per_s'] / one['tokens_per_s']:.2f}, "
        f"step time x{two['step_s'] / one['step_s']:.2f}; last loss "
        f"{one['loss']:.4f} vs {two['loss']:.4f} (same data, same global batch)"
    )


if __name__ == "__main__":
    main()
