"""A toolset plugin that breaks the JSON-data contract, installed for real (a package and its
``*.dist-info`` on PYTHONPATH) and run through ``sc verify`` and ``sc tools``: every break is a
one-line reason that names the bad value by its path, never a traceback or a quiet str()."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
import datetime

from sc_core import hookimpl
from sc_core.tools import Toolset


class Diary:
    """Its state holds a date: not JSON data."""

    def reset(self, seed):
        self.due = [datetime.date(2024, 5, 1 + seed % 28)]

    def state(self):
        return {"due": self.due}

    def count(self) -> int:
        """How many entries the diary has."""
        return len(self.due)


class Agenda:
    """Its state is fine; its tool ``when`` returns a date."""

    def reset(self, seed):
        self.entries = []

    def state(self):
        return {"entries": self.entries}

    def count(self) -> int:
        """How many entries the agenda has."""
        return len(self.entries)

    def when(self) -> str:
        """When the agenda was made."""
        return datetime.date(2024, 5, 1)


@hookimpl
def register_toolsets(register):
    register("sctest-diary", lambda: Toolset.from_object(Diary(), "sctest-diary"))
    register("sctest-agenda", lambda: Toolset.from_object(Agenda(), "sctest-agenda"))
'''


@pytest.fixture
def site(tmp_path) -> Path:
    """The plugin installed as pip would: its package and a dist-info with the entry point."""
    root = tmp_path / "site"
    package = root / "sctest_dates"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN.lstrip(), encoding="utf-8")
    info = root / "sctest_dates-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sctest-dates\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[sc]\nsctest_dates = sctest_dates\n", encoding="utf-8")
    return root


def task(task_id: str, toolset: str, solution: str) -> dict:
    return {
        "id": task_id,
        "toolset": toolset,
        "seed": 3,
        "instruction": f"How many entries are there ({task_id})?",
        "verify": "def verify(state, answer):\n    return answer == 0\n",
        "solution": textwrap.dedent(solution).strip() + "\n",
        "failures": ["def solve(tools):\n    return 1\n"],
    }


TASKS = [
    (
        task("diary", "sctest-diary", "def solve(tools):\n    return tools.count() - 1"),
        'state() is not JSON data: state["due"][0] is a datetime.date',
    ),
    (
        task("agenda-when", "sctest-agenda", "def solve(tools):\n    return tools.when()"),
        "solution: ToolError: when's result is not JSON data: result is a datetime.date (line 2)",
    ),
    (
        task("agenda-set", "sctest-agenda", "def solve(tools):\n    return [tools.count(), {1}]"),
        "solution: the return value is not JSON data: solve()[1] is a set",
    ),
    (task("agenda-fine", "sctest-agenda", "def solve(tools):\n    return tools.count()"), None),
]


def test_sc_verify_records_each_break_as_the_tasks_rejection_reason(run_sc, site, write_tasks):
    tasks = write_tasks([row for row, _ in TASKS])
    rejected = tasks.parent / "rejected.jsonl"
    env = {"PYTHONPATH": str(site)}
    result = run_sc("verify", str(tasks), "--json", "--rejected", str(rejected), env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    verdicts = {row["id"]: row for row in json.loads(result.stdout)["tasks"]}
    for row, reason in TASKS:
        assert verdicts[row["id"]]["reason"] == reason, row["id"]
        assert verdicts[row["id"]]["stage"] == (reason and "verify_runs")
    saved = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert [line["rejection"]["reason"] for line in saved] == [r for _, r in TASKS if r]
    summary = run_sc("verify", str(tasks), env=env)
    assert summary.returncode == 0, summary.stderr
    assert f"rejected diary at verify_runs: {TASKS[0][1]}\n" in summary.stdout


def test_sc_tools_says_once_that_the_plugins_state_is_not_json_data(run_sc, site):
    result = run_sc("tools", "sctest-diary", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert [spec["function"]["name"] for spec in json.loads(result.stdout)] == ["count"]
    assert result.stderr.splitlines() == [
        'warning: state() is not JSON data: state["due"][0] is a datetime.date (after reset(0))'
    ]
