"""The hand-written evaluation sets in evals/: well-formed, and every task kept by the filter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import read_tasks
from sc_core.verify import run_filter

EVALS = Path(__file__).resolve().parent.parent / "evals"
SETS = {"calculator": "calculator.jsonl", "shop": "shop.jsonl"}
DIFFICULTIES = {"easy", "medium", "hard"}


def _rows(name: str) -> list[dict]:
    lines = (EVALS / SETS[name]).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("name", sorted(SETS))
def test_set_shape(name):
    rows = _rows(name)
    assert len(rows) >= 30
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "task ids must be unique"
    for row in rows:
        assert row["toolset"] == name, row["id"]
        assert len(row["failures"]) >= 2, row["id"]
        provenance = row["provenance"]
        assert provenance.get("author") == "hand-written", row["id"]
        assert provenance.get("difficulty") in DIFFICULTIES, row["id"]
        instruction = row["instruction"]
        assert "tools." not in instruction and "def " not in instruction, row["id"]
    assert {row["provenance"]["difficulty"] for row in rows} == DIFFICULTIES


def test_ids_unique_across_sets():
    ids = [row["id"] for name in SETS for row in _rows(name)]
    assert len(ids) == len(set(ids))


def test_shop_set_uses_several_seeds():
    assert len({row["seed"] for row in _rows("shop")}) >= 5


@pytest.mark.parametrize("name", sorted(SETS))
def test_filter_keeps_every_task(name):
    # One pool per run_filter call: bwrap workers die with the executor thread that started
    # them, so a pool reused across run_filter calls loses its first job on each worker.
    with SandboxPool(get_sandbox(), Limits(), size=2) as pool:
        report = run_filter(read_tasks(EVALS / SETS[name]), pool)
    rejected = [verdict.to_dict() for verdict in report.verdicts if not verdict.kept]
    assert not rejected
    assert len(report.kept) == len(_rows(name))


@pytest.mark.parametrize("name", sorted(SETS))
def test_evaluation_tasks_are_never_seeds_or_benchmark_training_data(name):
    """Held-out means held out: the seeded challenger's examples (the toolset's own) share no
    task with the evaluation set (sc run never trains on it either: tests/test_run.py)."""
    from sc_core.tools import load_toolset

    evaluated = {(row["instruction"], row["solution"]) for row in _rows(name)}
    toolset = load_toolset(name).create()
    seeds = {(task.instruction, task.solution) for task in toolset.examples}
    assert seeds and not seeds & evaluated
