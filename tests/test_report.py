"""``report.html`` and the summary built from a run's metrics."""

from __future__ import annotations

import json

import pytest

from sc_core.errors import ScError
from sc_core.report import (
    plot_diversity,
    plot_pass_rates,
    read_metrics,
    summary_rows,
    write_report,
)

STAGES = {
    "parses": 8,
    "verify_runs": 6,
    "solution_passes": 3,
    "failures_fail": 2,
    "deterministic": 2,
    "unique": 2,
}
DIVERSITY = {
    "tasks": 2,
    "tools_per_task": {"mean": 1.5, "counts": {"1": 1, "2": 1}},
    "tools": {"add": 2, "multiply": 1},
    "tool_sequences": {"distinct": 2, "share": 1.0},
    "embedding_spread": None,  # no embedder installed
}
METRICS = [
    {
        "kind": "filter",
        "iteration": 1,
        "attempts": 10,
        "kept": 2,
        "stages": STAGES,
        "diversity": DIVERSITY,
    },
    {"kind": "eval", "iteration": 1, "when": "before", "pass_at_1": 0.25, "pass_at_k": 0.5, "k": 4},
    {
        "kind": "learnability",
        "iteration": 1,
        "k": 4,
        "tasks": 2,
        "kept": 1,
        "rates": {"a": 0.0, "b": 0.5},
    },
    {"kind": "train", "iteration": 1, "step": 1, "reward": 0.1, "loss": 0.5},
    {"kind": "train", "iteration": 1, "step": 2, "reward": 0.3, "loss": 0.4},
    {"kind": "train_summary", "iteration": 1, "tasks": 1, "checkpoint": "c"},
    {"kind": "eval", "iteration": 1, "when": "after", "pass_at_1": 0.5, "pass_at_k": 0.75, "k": 4},
    {
        "kind": "filter",
        "iteration": 2,
        "attempts": 10,
        "kept": 0,
        "stages": dict.fromkeys(STAGES, 0),
    },
    {"kind": "train_summary", "iteration": 2, "tasks": 0, "skipped": "no task to train on"},
]


def write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_summary_has_one_row_per_iteration():
    rows = summary_rows(METRICS)
    assert rows[0] == {
        "iteration": 1,
        "attempts": 10,
        "kept": 2,
        "tools_per_task": 1.5,
        "tool_sequences": 2,
        "embedding_spread": None,
        "pass_at_1_before": 0.25,
        "pass_at_k_before": 0.5,
        "pass_at_1_after": 0.5,
        "pass_at_k_after": 0.75,
        "k": 4,
        "learnable": "1/2",
        "trained_on": 1,
        "train_note": "",
    }
    assert rows[1]["kept"] == 0 and rows[1]["train_note"] == "no task to train on"
    assert "tools_per_task" not in rows[1]  # a run from before diversity was measured


def test_report_has_the_six_plots_and_the_table(tmp_path):
    write_metrics(tmp_path / "r", METRICS)
    path = write_report(tmp_path / "r")
    page = path.read_text()
    assert path.name == "report.html"
    # the learning curve, pass rates before/after, filter yield, the learnability check's
    # pass-rate histogram, diversity, reward
    assert page.count('src="data:image/png;base64,') == 6
    assert "<td>0.250</td>" in page and "no task to train on" in page
    assert "<th>tools/task</th>" in page and "<td>1.500</td>" in page


def test_pass_rate_histogram_and_diversity_plots_need_their_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    no_rates = [row for row in METRICS if row["kind"] != "learnability"]
    no_diversity = [{key: v for key, v in row.items() if key != "diversity"} for row in METRICS]
    assert plot_pass_rates(no_rates, plt) is None
    assert plot_diversity(no_diversity, plt) is None
    assert plot_pass_rates(METRICS, plt) and plot_diversity(METRICS, plt)
    plt.close("all")


def test_report_without_figures_says_so(tmp_path):
    write_metrics(tmp_path / "r", [])
    assert "No figures yet" in write_report(tmp_path / "r").read_text()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ScError, match="is not a run directory"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "filter"}\nnot json\n')
    with pytest.raises(ScError, match=r"metrics.jsonl, line 2: not JSON"):
        read_metrics(tmp_path)
