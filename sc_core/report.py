"""``report.html`` for a run: plots of what ``metrics.jsonl`` holds, and a summary table.

The plots are PNGs inlined as base64, so the report is one file that can be mailed or archived.
matplotlib is imported here only, with the Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from math import nan
from pathlib import Path
from typing import Any

from .errors import ScError
from .run import LEARNABLE
from .task import write_text
from .verify import STAGES


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ScError(f"{run_dir} is not a run directory (no metrics.jsonl)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ScError(f"{path}, line {number}: not JSON") from None
    return rows


def summary_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per iteration: attempts, kept, their diversity, learnable, training, pass@1 and
    pass@k before/after."""
    table: dict[int, dict[str, Any]] = {}
    for row in metrics:
        entry = table.setdefault(row["iteration"], {"iteration": row["iteration"]})
        kind = row["kind"]
        if kind == "filter":
            entry.update(attempts=row["attempts"], kept=row["kept"])
            if figures := row.get("diversity"):  # runs from before it was measured have none
                entry["tools_per_task"] = figures["tools_per_task"]["mean"]
                entry["tool_sequences"] = figures["tool_sequences"]["distinct"]
                entry["embedding_spread"] = figures["embedding_spread"]
        elif kind == "eval":
            entry[f"pass_at_1_{row['when']}"] = row.get("pass_at_1")
            entry[f"pass_at_k_{row['when']}"] = row.get("pass_at_k")
            entry["k"] = row.get("k")
        elif kind == "learnability":
            entry["learnable"] = f"{row['kept']}/{row['tasks']}"
        elif kind == "train_summary":
            entry["trained_on"] = row.get("tasks", 0)
            entry["train_note"] = row.get("skipped") or ""
    return [table[number] for number in sorted(table)]


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plot_filter(metrics: list[dict[str, Any]], plt: Any) -> str | None:
    """Share of attempts surviving each filter stage, one line per iteration."""
    rows = [row for row in metrics if row["kind"] == "filter"]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for row in rows:
        total = row["attempts"] + row.get("extra_tasks", 0)
        stages = [stage for stage in STAGES if stage in row["stages"]]  # a run may predate one
        shares = [100 * row["stages"][stage] / total if total else 0 for stage in stages]
        axes.plot(stages, shares, marker="o", label=f"iteration {row['iteration']}")
    axes.set_ylabel("% of attempts surviving")
    axes.set_ylim(0, 100)
    axes.set_title("CaT filter yield per stage")
    axes.tick_params(axis="x", rotation=20)
    axes.legend()
    return _png(figure)


def plot_reward(metrics: list[dict[str, Any]], plt: Any) -> str | None:
    """Mean training reward over training steps, across iterations."""
    rows = [row for row in metrics if row["kind"] == "train" and row.get("reward") is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.5))
    for iteration in sorted({row["iteration"] for row in rows}):
        points = [row for row in rows if row["iteration"] == iteration]
        axes.plot(
            [row.get("step", index) for index, row in enumerate(points)],
            [row["reward"] for row in points],
            marker=".",
            label=f"iteration {iteration}",
        )
    axes.set_xlabel("training step")
    axes.set_ylabel("mean reward")
    axes.set_title("Reward over training")
    axes.legend()
    return _png(figure)


def plot_pass(summary: list[dict[str, Any]], plt: Any) -> str | None:
    """pass@1 and pass@k before and after training, per iteration."""
    rows = [row for row in summary if row.get("pass_at_1_before") is not None]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.5))
    width = 0.2
    bars = ("pass_at_1_before", "pass_at_1_after", "pass_at_k_before", "pass_at_k_after")
    for offset, key in enumerate(bars):
        axes.bar(
            [row["iteration"] + (offset - 1.5) * width for row in rows],
            [row.get(key) or 0 for row in rows],
            width,
            label=key.replace("_at_", "@").replace("_", " "),
        )
    axes.set_xticks([row["iteration"] for row in rows])
    axes.set_xlabel("iteration")
    axes.set_ylim(0, 1)
    axes.set_title("Held-out pass rates before and after training")
    axes.legend(fontsize=8)
    return _png(figure)


def plot_curve(summary: list[dict[str, Any]], plt: Any) -> str | None:
    """The learning curve: held-out pass@1 and pass@k of the starting model (iteration 0), then
    of the checkpoint each iteration trained."""
    rows = [row for row in summary if row.get("pass_at_1_after") is not None]
    if not rows or summary[0].get("pass_at_1_before") is None:
        return None
    figure, axes = plt.subplots(figsize=(7, 3.5))
    iterations = [0] + [row["iteration"] for row in rows]
    for name, label in (("pass_at_1", "pass@1"), ("pass_at_k", "pass@k")):
        values = [summary[0].get(f"{name}_before")] + [row.get(f"{name}_after") for row in rows]
        axes.plot(iterations, [value or 0 for value in values], marker="o", label=label)
    axes.set_xticks(iterations)
    axes.set_xlabel("iteration (0: the starting model)")
    axes.set_ylim(0, 1)
    axes.set_title("Held-out pass rates per iteration")
    axes.legend(fontsize=8)
    return _png(figure)


def plot_pass_rates(metrics: list[dict[str, Any]], plt: Any) -> str | None:
    """How often the executor solved each task the learnability check tried, one histogram
    per iteration, over the band the curriculum asks for."""
    rows = [row for row in metrics if row["kind"] == "learnability" and row.get("rates")]
    if not rows:
        return None
    k = max(row["k"] for row in rows)
    edges = [(step - 0.5) / k for step in range(k + 2)]  # one bin per possible rate, j/k
    figure, axes = plt.subplots(figsize=(7, 3.5))
    low, high = LEARNABLE
    axes.axvspan(low, high, color="tab:green", alpha=0.1, label="learnable band")
    axes.hist(
        [list(row["rates"].values()) for row in rows],
        bins=edges,
        label=[f"iteration {row['iteration']}" for row in rows],
    )
    axes.set_xlim(edges[0], edges[-1])
    axes.set_xticks([step / k for step in range(k + 1)])
    axes.set_xlabel(f"pass rate over {k} tries")
    axes.set_ylabel("tasks")
    axes.set_title("Pass rates of each iteration's tasks (learnability check)")
    axes.legend(fontsize=8)
    return _png(figure)


def plot_diversity(metrics: list[dict[str, Any]], plt: Any) -> str | None:
    """The kept tasks' diversity per iteration: how many tools each uses (stacked shares),
    and the share of distinct tool sequences and the instructions' embedding spread."""
    rows = [
        row
        for row in metrics
        if row["kind"] == "filter" and row.get("diversity") and row["diversity"]["tasks"]
    ]
    if not rows:
        return None
    figure, (tools, spread) = plt.subplots(1, 2, figsize=(11, 3.5))
    iterations = [row["iteration"] for row in rows]
    counts = [row["diversity"]["tools_per_task"]["counts"] for row in rows]
    bottoms = [0.0] * len(rows)
    for size in sorted({size for count in counts for size in count}, key=int):
        shares = [
            count.get(size, 0) / row["diversity"]["tasks"]
            for count, row in zip(counts, rows, strict=True)
        ]
        tools.bar(iterations, shares, bottom=bottoms, label=f"{size} tool{'s' * (size != '1')}")
        bottoms = [bottom + share for bottom, share in zip(bottoms, shares, strict=True)]
    tools.set_xticks(iterations)
    tools.set_xlabel("iteration")
    tools.set_ylabel("share of kept tasks")
    tools.set_ylim(0, 1)
    tools.set_title("Tools per kept task")
    tools.legend(fontsize=8)
    for label, value in (
        ("distinct tool sequences / tasks", lambda d: d["tool_sequences"]["share"]),
        ("instruction embedding spread", lambda d: d["embedding_spread"]),
    ):
        values = [value(row["diversity"]) for row in rows]
        spread.plot(iterations, [nan if v is None else v for v in values], marker="o", label=label)
    spread.set_xticks(iterations)
    spread.set_xlabel("iteration")
    spread.set_ylim(bottom=0)
    spread.set_title("Diversity of kept tasks")
    spread.legend(fontsize=8)
    return _png(figure)


COLUMNS = {
    "iteration": "iter",
    "attempts": "attempts",
    "kept": "kept",
    "tools_per_task": "tools/task",
    "tool_sequences": "tool seqs",
    "embedding_spread": "spread",
    "learnable": "learnable",
    "trained_on": "trained on",
    "pass_at_1_before": "pass@1 before",
    "pass_at_1_after": "pass@1 after",
    "pass_at_k_before": "pass@k before",
    "pass_at_k_after": "pass@k after",
    "train_note": "note",
}
"""Summary columns and their headings."""


def cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` in ``run_dir`` from its metrics; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = read_metrics(run_dir)
    summary = summary_rows(metrics)
    plots = [plot(summary, plt) for plot in (plot_curve, plot_pass)]
    plots += [
        plot(metrics, plt) for plot in (plot_filter, plot_pass_rates, plot_diversity, plot_reward)
    ]
    plt.close("all")
    head = "".join(f"<th>{label}</th>" for label in COLUMNS.values())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(row.get(name)))}</td>" for name in COLUMNS)
        + "</tr>"
        for row in summary
    )  # fmt: skip
    images = "".join(f'<img alt="plot" src="data:image/png;base64,{png}">' for png in plots if png)
    page = (
        f"<!doctype html><meta charset=utf-8><title>sc run {html.escape(run_dir.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}img{display:block;margin:1em 0}</style>"
        f"<h1>sc run {html.escape(run_dir.name)}</h1><table><tr>{head}</tr>{body}</table>"
        f"{images or '<p>No figures yet.</p>'}"
    )
    path = run_dir / "report.html"
    write_text(path, page)
    return path
