"""The CaT filter on a toolset the tests have never seen (tests/fixtures/thermostat.py).

The acceptance test: Code-as-Tasks written by hand for that toolset are kept or rejected at the
right stage, with a helpful reason, through the real ``sc verify`` command and the default
(bwrap) sandbox; and the filter's report, JSON and output files have the documented shape.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from sc_core.plugins import load_plugins
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import TaskLine, parse_line
from sc_core.tools import load_toolset
from sc_core.verify import (
    STAGES,
    FilterReport,
    Rejected,
    Verdict,
    check_code,
    mark_duplicates,
    run_filter,
    score,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
THERMOSTAT = str(FIXTURES / "thermostat.py")


def code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def task(task_id, instruction, verify, solution, failures, *, seed=3, toolset=THERMOSTAT):
    return {
        "id": task_id,
        "toolset": toolset,
        "seed": seed,
        "instruction": instruction,
        "verify": code(verify),
        "solution": code(solution),
        "failures": [code(failure) for failure in failures],
        "provenance": {"author": "hand-written test"},
    }


# With seed 3 the thermostat's rooms read: kitchen 17, bedroom 23, office 22 (°C).
KITCHEN_VERIFY = """
    def verify(state, answer):
        return isinstance(answer, int) and answer == 17
"""
KITCHEN_SOLUTION = """
    def solve(tools):
        return tools.get_room(room="kitchen")["current"]
"""
KITCHEN_FAILURES = [
    """
    def solve(tools):
        return tools.get_room(room="office")["current"]
    """,
    "def solve(tools):\n    return 17.5\n",
]

BEDROOM_VERIFY = """
    def verify(state, answer):
        rooms = state["rooms"]
        bedroom = rooms["bedroom"]
        untouched = all(
            rooms[name]["mode"] == "off" and rooms[name]["target"] == 20.0
            for name in ("kitchen", "office")
        )
        return (
            bedroom["mode"] == "heat"
            and bedroom["target"] == 22.5
            and untouched
            and not state["away"]
        )
"""
BEDROOM_SOLUTION = """
    def solve(tools):
        tools.set_target(room="bedroom", celsius=22.5)
        tools.set_mode(room="bedroom", mode="heat")
        return "done"
"""
BEDROOM_FAILURES = [
    # the wrong room
    """
    def solve(tools):
        tools.set_target(room="office", celsius=22.5)
        tools.set_mode(room="office", mode="heat")
        return "done"
    """,
    # half the job
    """
    def solve(tools):
        tools.set_target(room="bedroom", celsius=22.5)
        return "done"
    """,
    # too much: every room
    """
    def solve(tools):
        for room in tools.list_rooms():
            tools.set_target(room=room, celsius=22.5)
            tools.set_mode(room=room, mode="heat")
        return "done"
    """,
    # claims success without acting: passes only if the solution's state leaked into this run
    """
    def solve(tools):
        return "done"
    """,
]

MALFORMED_LINE = '{"id": "cut-off", "toolset": "thermostat", "instruction": '


def acceptance_rows() -> list:
    """Hand-written tasks, and (stage, reason fragment) for each: None, None when kept."""
    return [
        (
            task(
                "kitchen-temp",
                "What is the current temperature in the kitchen?",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            None,
            None,
        ),
        (
            task(
                "bedroom-heat",
                "Heat the bedroom to 22.5 °C and change nothing else.",
                BEDROOM_VERIFY,
                BEDROOM_SOLUTION,
                BEDROOM_FAILURES,
            ),
            None,
            None,
        ),
        (
            task(
                "lenient",
                "How many rooms have a thermostat?",
                "def verify(state, answer):\n    return isinstance(answer, int)\n",
                "def solve(tools):\n    return len(tools.list_rooms())\n",
                ["def solve(tools):\n    return 2\n"],
            ),
            "failures_fail",
            "failure case 1 passes verify",
        ),
        (
            task(
                "wrong-solution",
                "What is the current temperature in the bedroom?",
                "def verify(state, answer):\n    return answer == 23\n",
                KITCHEN_SOLUTION,
                ["def solve(tools):\n    return 22\n"],
            ),
            "solution_passes",
            "verify gave the solution 0",
        ),
        (
            task(
                "verify-syntax",
                "What is the kitchen's temperature, in syntax-error flavour?",
                "def verify(state, answer)\n    return answer == 17\n",
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "parses",
            "verify has a syntax error",
        ),
        (
            task(
                "unknown-tool",
                "Set the kitchen's humidity to 40%.",
                "def verify(state, answer):\n    return answer == 40\n",
                'def solve(tools):\n    return tools.set_humidity(room="kitchen", percent=40)\n',
                ["def solve(tools):\n    return 0\n"],
            ),
            "parses",
            "solution calls unknown tool 'set_humidity'",
        ),
        (
            task(
                "nondeterministic-answer",
                "Read the office temperature and tag it with a fresh nonce.",
                'def verify(state, answer):\n    return answer["current"] == 22\n',
                """
                def solve(tools):
                    import random
                    reading = tools.get_room(room="office")["current"]
                    return {"current": reading, "nonce": random.random()}
                """,
                ['def solve(tools):\n    return {"current": 21, "nonce": 0}\n'],
            ),
            "deterministic",
            "second run",
        ),
        (
            task(
                "nondeterministic-state",
                "Set the office target to any temperature between 15 and 25 °C other than 20.",
                """
                def verify(state, answer):
                    target = state["rooms"]["office"]["target"]
                    return 15 <= target <= 25 and target != 20.0
                """,
                """
                def solve(tools):
                    import random
                    tools.set_target(room="office", celsius=15 + 10 * random.random())
                """,
                ["def solve(tools):\n    return None\n"],
            ),
            "deterministic",
            "second run",
        ),
        (
            task(
                "failure-is-solution",
                "What is the kitchen temperature (with a failure case that is right)?",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                [KITCHEN_SOLUTION],
            ),
            "failures_fail",
            "failure case 1 passes verify: it gives the solution's answer and state",
        ),
        (
            task(
                "no-failures",
                "What is the kitchen temperature (with no failure cases)?",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                [],
            ),
            "parses",
            "at least one failure case",
        ),
        (
            task(
                "verify-raises",
                "What is the kitchen temperature (verify indexes an int)?",
                'def verify(state, answer):\n    return answer["temperature"] == 17\n',
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "verify_runs",
            "verify: TypeError",
        ),
        (
            task(
                "solution-raises",
                "Set the kitchen target to 35 °C.",
                """
                def verify(state, answer):
                    return state["rooms"]["kitchen"]["target"] == 35
                """,
                'def solve(tools):\n    tools.set_target(room="kitchen", celsius=35)\n',
                ["def solve(tools):\n    return None\n"],
            ),
            "verify_runs",
            "target must be between 10 and 30",
        ),
        (
            task(
                "verify-says-yes",
                "What is the kitchen temperature (verify answers in words)?",
                'def verify(state, answer):\n    return "yes" if answer == 17 else "no"\n',
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "verify_runs",
            'verify returned "yes"',
        ),
        (
            task(
                "verify-out-of-range",
                "What is the kitchen temperature (verify scores out of range)?",
                "def verify(state, answer):\n    return 2.5 if answer == 17 else 0.0\n",
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "verify_runs",
            "verify returned 2.5",
        ),
        (
            task(
                "half-credit",
                "What is the kitchen temperature (verify gives half credit)?",
                "def verify(state, answer):\n    return 0.5 if answer == 17 else 0.0\n",
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "solution_passes",
            "verify gave the solution 0.5",
        ),
        (
            task(
                "partial-credit",
                "Report the kitchen temperature in whole degrees.",
                """
                def verify(state, answer):
                    if answer == 17:
                        return 1.0
                    return 0.5 if isinstance(answer, int) else 0.0
                """,
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,  # 22 earns 0.5: partial credit is not a pass
            ),
            "unique",  # it passed every check, but kitchen-temp asks the same
            "duplicate of kitchen-temp (same tool calls, answer and state: "
            'get_room(room="kitchen"))',
        ),
        (
            dict(acceptance_task_copy(), id="kitchen-temp-copy"),
            "unique",
            "duplicate of kitchen-temp",
        ),
        (
            task(
                "kitchen-temp-reworded",
                "Tell me how warm the kitchen is right now.",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                ["def solve(tools):\n    return 23\n"],
            ),
            "unique",
            "duplicate of kitchen-temp",
        ),
        (
            task(
                "kitchen-temp-recased",
                "what is the current temperature in the KITCHEN",
                KITCHEN_VERIFY,
                """
                def solve(tools):
                    room = "kitchen"
                    return tools.get_room(room=room)["current"]
                """,
                KITCHEN_FAILURES,
            ),
            "unique",
            "duplicate of kitchen-temp",
        ),
        (MALFORMED_LINE, "parses", "not valid JSON"),
        (
            {
                key: value
                for key, value in acceptance_task_copy().items()
                if key not in ("verify", "id")
            },
            "parses",
            "missing field 'verify'",
        ),
        (
            task(
                "failure-raises",
                "What is the kitchen temperature (a failure case breaks a rule)?",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                ['def solve(tools):\n    tools.set_target(room="kitchen", celsius=99)\n'],
            ),
            "failures_fail",
            "failure case 1: ToolError: target must be between 10 and 30",
        ),
        (
            task(
                "bad-toolset",
                "What is the kitchen temperature in a toolset that does not exist?",
                KITCHEN_VERIFY,
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
                toolset="no_such_toolset_module_xyz",
            ),
            "parses",
            "no_such_toolset_module_xyz",
        ),
        (
            task(
                "verify-arity",
                "What is the kitchen temperature (verify takes one argument)?",
                "def verify(answer):\n    return answer == 17\n",
                KITCHEN_SOLUTION,
                KITCHEN_FAILURES,
            ),
            "parses",
            "verify() must take 2 argument(s)",
        ),
        (
            task(
                "no-solve",
                "What is the kitchen temperature (the solution is misnamed)?",
                KITCHEN_VERIFY,
                'def solution(tools):\n    return tools.get_room(room="kitchen")["current"]\n',
                KITCHEN_FAILURES,
            ),
            "parses",
            "solution does not define solve()",
        ),
    ]


def acceptance_task_copy() -> dict:
    return task(
        "kitchen-temp",
        "What is the current temperature in the kitchen?",
        KITCHEN_VERIFY,
        KITCHEN_SOLUTION,
        KITCHEN_FAILURES,
    )


# Survivors of each stage, counted by hand from the table above (25 lines):
# parses rejects 8, verify_runs 4, solution_passes 2, failures_fail 3, deterministic 2,
# verifier_strict 0 (its cases: tests/test_strength.py), unique 4.
EXPECTED_STAGES = {
    "parses": 17,
    "verify_runs": 13,
    "solution_passes": 11,
    "failures_fail": 8,
    "deterministic": 6,
    "verifier_strict": 6,
    "unique": 2,
}
EXPECTED_KEPT = ["kitchen-temp", "bedroom-heat"]


def expected_id(number: int, row) -> str:
    if isinstance(row, str):
        return f"line-{number}"
    return row.get("id") or parse_line(number, json.dumps(row)).id


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory, run_sc):
    """One run of ``sc verify`` with the default sandbox over every hand-written task."""
    directory = tmp_path_factory.mktemp("acceptance")
    rows = acceptance_rows()
    tasks_path = directory / "tasks.jsonl"
    tasks_path.write_text(
        "\n".join(row if isinstance(row, str) else json.dumps(row) for row, _, _ in rows) + "\n",
        encoding="utf-8",
    )
    kept, rejected = directory / "kept.jsonl", directory / "rejected.jsonl"
    result = run_sc(
        "verify", str(tasks_path), "--json", "--kept", str(kept), "--rejected", str(rejected)
    )
    assert result.returncode == 0, result.stderr
    return {
        "rows": rows,
        "report": json.loads(result.stdout),
        "stderr": result.stderr,
        "kept": kept,
        "rejected": rejected,
        "dir": directory,
    }


def test_default_sandbox_is_bwrap_and_runs_here():
    load_plugins()
    sandbox = get_sandbox()
    assert sandbox.name == "bwrap"
    assert sandbox.weaker is None


def test_every_hand_written_task_is_kept_or_rejected_at_the_right_stage(acceptance):
    report, rows = acceptance["report"], acceptance["rows"]
    assert report["total"] == len(rows) == 25
    for number, ((row, stage, fragment), verdict) in enumerate(
        zip(rows, report["tasks"], strict=True), 1
    ):
        assert verdict["id"] == expected_id(number, row)
        assert verdict["stage"] == stage, verdict
        assert verdict["kept"] is (stage is None), verdict
        if stage is None:
            assert verdict["reason"] is None
        else:
            reason = verdict["reason"]
            assert isinstance(reason, str) and reason.strip(), verdict
            assert "\n" not in reason and "Traceback" not in reason, verdict
            assert fragment in reason, verdict


def test_stage_counts_match_hand_count_and_never_grow(acceptance):
    report = acceptance["report"]
    stages = report["stages"]
    assert list(stages) == list(STAGES)
    assert stages == EXPECTED_STAGES
    counts = list(stages.values())
    assert all(later <= earlier for earlier, later in zip(counts, counts[1:], strict=False))
    assert counts[0] <= report["total"]
    assert counts[-1] == report["kept"] == len(EXPECTED_KEPT)
    # and the counts agree with the per-task verdicts
    for index, stage in enumerate(STAGES):
        survivors = [v for v in report["tasks"] if v["kept"] or STAGES.index(v["stage"]) > index]
        assert stages[stage] == len(survivors)


def test_json_report_shape(acceptance):
    report = acceptance["report"]
    assert set(report) == {"total", "kept", "stages", "tasks"}
    assert isinstance(report["total"], int) and isinstance(report["kept"], int)
    for verdict in report["tasks"]:
        assert set(verdict) == {"id", "kept", "stage", "reason"}
        assert isinstance(verdict["id"], str) and isinstance(verdict["kept"], bool)
        assert verdict["stage"] is None or verdict["stage"] in STAGES
    assert [v["id"] for v in report["tasks"] if v["kept"]] == EXPECTED_KEPT


def test_kept_file_holds_the_kept_tasks_and_reverifies_to_all_kept(acceptance, run_sc):
    lines = acceptance["kept"].read_text(encoding="utf-8").splitlines()
    kept = [json.loads(line) for line in lines]
    assert [row["id"] for row in kept] == EXPECTED_KEPT
    originals = {row.get("id"): row for row, _, _ in acceptance["rows"] if isinstance(row, dict)}
    for row in kept:
        assert row == originals[row["id"]]  # saved exactly, provenance included
    again = run_sc("verify", str(acceptance["kept"]), "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["total"] == report["kept"] == len(EXPECTED_KEPT)
    assert all(count == len(EXPECTED_KEPT) for count in report["stages"].values())


def test_rejected_file_keeps_each_rejected_line_and_its_reason(acceptance):
    rows = [
        json.loads(line) for line in acceptance["rejected"].read_text(encoding="utf-8").splitlines()
    ]
    raw_lines = (acceptance["dir"] / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    verdicts = [v for v in acceptance["report"]["tasks"] if not v["kept"]]
    assert len(rows) == len(verdicts) == 25 - len(EXPECTED_KEPT)
    for row, verdict in zip(rows, verdicts, strict=True):
        assert row["rejection"] == {"stage": verdict["stage"], "reason": verdict["reason"]}
        if "raw" in row:  # not a well-formed task: the raw line is kept verbatim
            assert set(row) == {"line", "raw", "rejection"}
            assert raw_lines[row["line"] - 1] == row["raw"]
            assert verdict["stage"] == "parses"
        else:
            assert row["id"] == verdict["id"] and "verify" in row
    malformed = next(row for row in rows if row.get("raw") == MALFORMED_LINE)
    assert malformed["rejection"]["stage"] == "parses"
    missing = next(row for row in rows if "missing field" in row["rejection"]["reason"])
    assert json.loads(missing["raw"])["instruction"].startswith("What is the current")


def test_stateful_verifier_sees_the_state_after_the_tool_calls(acceptance):
    """bedroom-heat is kept: the solution's calls are in the state verify sees, and every
    failure case starts from a fresh reset (else the do-nothing one would pass)."""
    verdicts = {v["id"]: v for v in acceptance["report"]["tasks"]}
    assert verdicts["bedroom-heat"]["kept"] is True


def test_wrong_state_change_is_caught_as_a_passing_failure(run_sc, write_tasks):
    """A verifier that only checks the target, not the room, lets the wrong-room failure pass."""
    sloppy = task(
        "sloppy-state",
        "Set the bedroom target to 22.5 °C.",
        """
        def verify(state, answer):
            return any(room["target"] == 22.5 for room in state["rooms"].values())
        """,
        'def solve(tools):\n    tools.set_target(room="bedroom", celsius=22.5)\n',
        [
            "def solve(tools):\n    return None\n",
            'def solve(tools):\n    tools.set_target(room="office", celsius=22.5)\n',
        ],
    )
    strict = dict(
        sloppy,
        id="strict-state",
        verify=code(
            """
            def verify(state, answer):
                rooms = state["rooms"]
                return rooms["bedroom"]["target"] == 22.5 and rooms["office"]["target"] == 20.0
            """
        ),
    )
    result = run_sc("verify", str(write_tasks([sloppy, strict])), "--json")
    assert result.returncode == 0, result.stderr
    verdicts = {v["id"]: v for v in json.loads(result.stdout)["tasks"]}
    assert verdicts["sloppy-state"]["stage"] == "failures_fail"
    assert verdicts["sloppy-state"]["reason"] == "failure case 2 passes verify"
    assert verdicts["strict-state"]["kept"] is True


def test_tools_option_overrides_each_tasks_toolset(run_sc, write_tasks):
    rows = [dict(acceptance_task_copy(), toolset="not-a-real-toolset")]
    path = write_tasks(rows)
    without = run_sc("verify", str(path), "--json")
    assert without.returncode == 0, without.stderr
    verdict = json.loads(without.stdout)["tasks"][0]
    assert verdict["stage"] == "parses" and "not-a-real-toolset" in verdict["reason"]
    with_tools = run_sc("verify", str(path), "--json", "--tools", "tests/fixtures/thermostat.py")
    assert with_tools.returncode == 0, with_tools.stderr
    report = json.loads(with_tools.stdout)
    assert report["kept"] == 1 and report["tasks"][0]["kept"] is True


def test_subprocess_sandbox_warns_and_gives_the_same_verdicts(run_sc, write_tasks):
    rows = [row for row, _, _ in acceptance_rows()[:4]]
    path = write_tasks(rows)
    weak = run_sc("verify", str(path), "--json", "--sandbox", "subprocess")
    assert weak.returncode == 0, weak.stderr
    assert "warning" in weak.stderr and "no namespaces" in weak.stderr
    strong = run_sc("verify", str(path), "--json")
    assert strong.returncode == 0, strong.stderr
    assert "warning" not in strong.stderr
    assert json.loads(weak.stdout) == json.loads(strong.stdout)
    assert json.loads(strong.stdout)["kept"] == 2


def test_human_summary_names_every_stage_and_rejection(run_sc, write_tasks):
    rows = [row for row, _, _ in acceptance_rows()[:4]]
    result = run_sc("verify", str(write_tasks(rows)))
    assert result.returncode == 0, result.stderr
    assert "2 of 4 kept" in result.stdout
    for stage in STAGES:
        assert stage in result.stdout
    assert "lenient" in result.stdout and "failure case 1 passes verify" in result.stdout


# -- in-process: the filter API, with the default sandbox ------------------------------------


@pytest.fixture
def pool():
    """A fresh pool per test, with a short wall-clock limit."""
    load_plugins()
    with SandboxPool(get_sandbox(), Limits(wall_s=2), 2) as sandbox_pool:
        yield sandbox_pool


def lines_of(rows) -> list[TaskLine]:
    return [
        parse_line(number, row if isinstance(row, str) else json.dumps(row))
        for number, row in enumerate(rows, 1)
    ]


def test_run_filter_reports_each_verdict_once_and_keeps_input_order(pool):
    rows = [row for row, _, _ in acceptance_rows()[:6]]
    done = []
    report = run_filter(lines_of(rows), pool, on_done=done.append)
    assert [v.id for v in report.verdicts] == [row["id"] for row in rows]
    assert sorted(v.id for v in done) == sorted(row["id"] for row in rows)
    assert [v.id for v in report.kept] == ["kitchen-temp", "bedroom-heat"]
    assert report.to_dict()["stages"] == report.stages()


def test_solution_that_never_ends_is_rejected_with_the_limit(pool):
    rows = [
        task(
            "forever",
            "Wait for the kitchen to warm up.",
            KITCHEN_VERIFY,
            "def solve(tools):\n    while True:\n        pass\n",
            KITCHEN_FAILURES,
        )
    ]
    (verdict,) = run_filter(lines_of(rows), pool).verdicts
    assert verdict.stage == "verify_runs"
    assert "limit" in verdict.reason


def test_a_solution_that_calls_no_tool_is_rejected(pool):
    """The task needs no toolset: it teaches a tool-using agent nothing."""
    rows = [
        task(
            "toolless",
            "What is 17 times 3?",
            "def verify(state, answer):\n    return answer == 51\n",
            "def solve(tools):\n    return 17 * 3\n",
            ["def solve(tools):\n    return 50\n"],
        )
    ]
    (verdict,) = run_filter(lines_of(rows), pool).verdicts
    assert (verdict.kept, verdict.stage) == (False, "verify_runs")
    assert verdict.reason == "the solution calls no tool: the task needs none"


@pytest.mark.parametrize(
    "answer",
    ["hash('kitchen')", "id(object())", "str(set('abcdefgh'))", "repr(object())"],
)
def test_answers_that_differ_only_between_processes_are_not_deterministic(pool, answer):
    """The second run goes to another process: per-process hash seeds and addresses show."""
    rows = [
        task(
            "per-process",
            "Report a token.",
            "def verify(state, answer):\n    return isinstance(answer, (int, str))\n",
            f'def solve(tools):\n    tools.get_room(room="kitchen")\n    return {answer}\n',
            ["def solve(tools):\n    return None\n"],
        )
    ]
    (verdict,) = run_filter(lines_of(rows), pool).verdicts
    assert (verdict.stage, verdict.reason) == (
        "deterministic",
        "a second run of the solution gave another result",
    )


def test_explicit_toolset_spec_applies_to_every_task(pool):
    rows = [dict(acceptance_task_copy(), toolset="whatever")]
    report = run_filter(lines_of(rows), pool, load_toolset(THERMOSTAT))
    assert [(v.kept, v.reason) for v in report.verdicts] == [(True, None)]


def test_a_pool_survives_the_threads_that_started_its_workers():
    """``run_filter`` runs jobs from its executor's threads, which end with each call; reusing
    the pool in a second call (as a long-running loop does) must not turn a good task into a
    rejection. (Regression: bwrap's --die-with-parent fires when the *thread* that started the
    worker exits.)"""
    load_plugins()
    rows = [acceptance_task_copy()]
    with SandboxPool(get_sandbox(), Limits(), 1) as pool:
        first = run_filter(lines_of(rows), pool)
        second = run_filter(lines_of(rows), pool)
    assert [(v.kept, v.reason) for v in first.verdicts] == [(True, None)]
    assert [(v.kept, v.reason) for v in second.verdicts] == [(True, None)]


# -- pure parts -------------------------------------------------------------------------------


def test_stages_counts_survivors_and_is_monotone():
    verdicts = [
        Verdict("a", True),
        Verdict("b", False, "parses", "x"),
        Verdict("c", False, "failures_fail", "x"),
        Verdict("d", False, "unique", "x"),
        Verdict("e", True),
    ]
    report = FilterReport(verdicts)
    assert report.stages() == {
        "parses": 4,
        "verify_runs": 4,
        "solution_passes": 4,
        "failures_fail": 3,
        "deterministic": 3,
        "verifier_strict": 3,
        "unique": 2,
    }
    assert FilterReport([]).to_dict() == {
        "total": 0,
        "kept": 0,
        "stages": dict.fromkeys(STAGES, 0),
        "tasks": [],
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 1.0), (False, 0.0), (1, 1.0), (0, 0.0), (0.25, 0.25)],
)
def test_score_accepts_bools_and_numbers_in_range(value, expected):
    assert score(value) == expected


@pytest.mark.parametrize("value", ["yes", 2.5, -0.1, None, [1], {"ok": True}])
def test_score_rejects_everything_else(value):
    with pytest.raises(ValueError, match="not a bool or a number"):
        score(value)


def test_check_code_is_stage_one():
    toolset = load_toolset(THERMOSTAT).create()
    good = parse_line(1, json.dumps(acceptance_task_copy())).task
    check_code(good, toolset)  # no exception: it parses
    bad_failure = parse_line(
        1,
        json.dumps(dict(acceptance_task_copy(), failures=["def solve(tools):\n    tools.fly()\n"])),
    ).task
    with pytest.raises(Rejected) as caught:
        check_code(bad_failure, toolset)
    assert caught.value.stage == "parses"
    assert caught.value.reason == "failure case 1 calls unknown tool 'fly'"


def test_duplicates_are_judged_among_kept_tasks_only():
    first = parse_line(1, json.dumps(acceptance_task_copy()))
    rejected = Verdict(first.id, False, "failures_fail", "x", first)
    copy_line = parse_line(2, json.dumps(dict(acceptance_task_copy(), id="copy")))
    copy = Verdict("copy", True, item=copy_line)
    again = Verdict(
        "again", True, item=parse_line(3, json.dumps(dict(acceptance_task_copy(), id="again")))
    )
    other_seed_line = parse_line(4, json.dumps(dict(acceptance_task_copy(), id="seed4", seed=4)))
    other_seed = Verdict("seed4", True, item=other_seed_line)
    verdicts = [rejected, copy, again, other_seed]
    mark_duplicates(verdicts)
    assert (rejected.kept, rejected.stage) == (False, "failures_fail")
    assert copy.kept is True  # the earlier identical task was rejected, so this one stands
    assert (again.kept, again.stage, again.reason) == (
        False,
        "unique",
        "duplicate of copy (same instruction)",
    )
    assert other_seed.kept is True  # another seed is another environment


# -- the filter never dies of one task ---------------------------------------------------------

PICKY = '''
class Picky:
    """Knows scenarios 0 to 10 only; scenario 7's state cannot be read."""

    def reset(self, seed: int) -> None:
        if seed > 10:
            raise ValueError(f"no scenario {seed}")
        self.n = seed

    def state(self) -> dict:
        if self.n == 7:
            raise RuntimeError("state store offline")
        return {"n": self.n}

    def get(self) -> int:
        """The scenario number."""
        return self.n
'''


def picky_task(task_id: str, seed: int) -> dict:
    return {
        "id": task_id,
        "toolset": "picky",
        "seed": seed,
        "instruction": f"Which scenario is this ({task_id})?",
        "verify": f"def verify(state, answer):\n    return answer == {seed}\n",
        "solution": "def solve(tools):\n    return tools.get()\n",
        "failures": ["def solve(tools):\n    return -1\n"],
    }


def test_a_toolset_failing_on_one_task_rejects_that_task_only(pool, tmp_path):
    path = tmp_path / "picky.py"
    path.write_text(PICKY)
    rows = [picky_task("fine", 3), picky_task("no-such-seed", 99), picky_task("no-state", 7)]
    report = run_filter(lines_of(rows), pool, load_toolset(str(path)))
    verdicts = {v.id: v for v in report.verdicts}
    assert verdicts["fine"].kept is True
    assert verdicts["no-such-seed"].stage == "verify_runs"
    assert verdicts["no-such-seed"].reason == (
        "the toolset failed to reset to seed 99: ValueError: no scenario 99"
    )
    assert verdicts["no-state"].stage == "verify_runs"
    assert verdicts["no-state"].reason == (
        "the toolset's state() failed: RuntimeError: state store offline"
    )


def test_code_too_deep_for_python_is_rejected_or_kept_without_crashing(pool):
    too_deep = dict(
        acceptance_task_copy(),
        id="too-deep",
        verify="def verify(state, answer):\n    return " + "-" * 100_000 + "17 == answer\n",
    )
    chained = "+".join(["1"] * 999)  # parses and compiles, but ast.dump recurses too deeply
    long_sum = dict(
        acceptance_task_copy(),
        id="long-sum",
        instruction="What is the kitchen temperature, computed the long way?",
        verify=f"def verify(state, answer):\n    return answer == {chained} - 982\n",
    )
    report = run_filter(lines_of([too_deep, long_sum, dict(long_sum, id="long-sum-2")]), pool)
    verdicts = {v.id: v for v in report.verdicts}
    assert verdicts["too-deep"].stage == "parses"
    assert verdicts["too-deep"].reason == "verify is nested too deeply to parse"
    assert verdicts["long-sum"].kept is True
    assert (verdicts["long-sum-2"].stage, verdicts["long-sum-2"].reason) == (
        "unique",
        "duplicate of long-sum (same instruction)",
    )
