"""``report.html`` and the summary built from a run's metrics."""

from __future__ import annotations

import json

import pytest

from sc_core.errors import ScError
from sc_core.report import read_metrics, summary_rows, write_report

STAGES = {
    "parses": 8,
    "verify_runs": 6,
    "solution_passes": 3,
    "failures_fail": 2,
    "deterministic": 2,
    "unique": 2,
}
METRICS = [
    {"kind": "filter", "iteration": 1, "attempts": 10, "kept": 2, "stages": STAGES},
    {"kind": "eval", "iteration": 1, "when": "before", "pass_at_1": 0.25, "pass_at_k": 0.5, "k": 4},
    {"kind": "learnability", "iteration": 1, "k": 4, "tasks": 2, "kept": 1, "rates": {}},
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


def test_report_has_the_four_plots_and_the_table(tmp_path):
    write_metrics(tmp_path / "r", METRICS)
    path = write_report(tmp_path / "r")
    page = path.read_text()
    assert path.name == "report.html"
    # the learning curve, pass rates before/after, filter yield, reward
    assert page.count('src="data:image/png;base64,') == 4
    assert "<td>0.250</td>" in page and "no task to train on" in page


def test_report_without_figures_says_so(tmp_path):
    write_metrics(tmp_path / "r", [])
    assert "No figures yet" in write_report(tmp_path / "r").read_text()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(ScError, match="is not a run directory"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"kind": "filter"}\nnot json\n')
    with pytest.raises(ScError, match=r"metrics.jsonl, line 2: not JSON"):
        read_metrics(tmp_path)
