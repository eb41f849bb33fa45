"""The ``verifier_strict`` stage: a verifier must reject the wrong answers sc derives from the
solution's answer (and, for an action, the state of a fresh reset), unless the instruction
allows them.

Hand-written lenient verifiers are rejected with the answer that got through; strict ones, and
tolerant ones whose instruction asks for the tolerance, are kept; the ``lenient`` opt-out
works; and no good task is lost: the seed tasks and the example file keep every task they kept
before (the evaluation sets are checked by tests/test_evals.py, which runs the same filter).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from sc_core.default_plugins import seed_tasks
from sc_core.plugins import load_plugins
from sc_core.sandbox import Limits, SandboxPool, Worker, get_sandbox
from sc_core.strict import KINDS, Tolerance, asks_for_answer, derive, tolerance
from sc_core.task import CodeAsTask, TaskFormatError, parse_line, read_tasks
from sc_core.verify import run_filter

ROOT = Path(__file__).resolve().parent.parent
THERMOSTAT = str(ROOT / "tests" / "fixtures" / "thermostat.py")
SEED_FILES = sorted(Path(seed_tasks.__path__[0]).glob("*.jsonl"))
EXAMPLES = ROOT / "examples" / "calculator_tasks.jsonl"


def code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def task(task_id, instruction, verify, solution, failures, **extra) -> dict:
    row = {
        "id": task_id,
        "toolset": "calculator",
        "seed": 0,
        "instruction": instruction,
        "verify": code(verify),
        "solution": code(solution),
        "failures": [code(failure) for failure in failures],
    }
    return row | extra


MULTIPLY = "def solve(tools):\n    return tools.multiply(a=17, b=23)\n"  # 391
ADD = "def solve(tools):\n    return tools.add(a=17, b=23)\n"  # 40


def third(a: int, b: int) -> tuple[str, str]:
    """A solution that rounds a / b to one decimal, and a verifier that accepts 0.1 around it."""
    return (
        f"def verify(state, answer):\n    return abs(answer - {a} / {b}) < 0.1\n",
        f"def solve(tools):\n    return round(tools.divide(a={a}, b={b}), 1)\n",
    )


def heat(celsius: float) -> str:
    """An action: heat the bedroom to ``celsius``, answer "done"."""
    return f"""
        def solve(tools):
            tools.set_target(room="bedroom", celsius={celsius})
            tools.set_mode(room="bedroom", mode="heat")
            return "done"
    """


HEATED = """
    def verify(state, answer):
        bedroom = state["rooms"]["bedroom"]
        return bedroom["mode"] == "heat" and bedroom["target"] == 22.5
"""
SAYS_DONE = "def verify(state, answer):\n    return answer == 'done'\n"
DOES_NOTHING = "def solve(tools):\n    return 'done'\n"


def thermostat(task_id, instruction, verify, solution, failures, **extra) -> dict:
    # With seed 3 the rooms read: kitchen 17, bedroom 23, office 22 (°C).
    return task(
        task_id, instruction, verify, solution, failures, toolset=THERMOSTAT, seed=3, **extra
    )


# (task, stage, reason): stage and reason None where it is kept
CASES = [
    (
        task(
            "any-positive",
            "What is 17 times 23?",
            "def verify(state, answer):\n    return isinstance(answer, int) and answer > 0\n",
            MULTIPLY,
            ["def solve(tools):\n    return '391'\n"],  # wrong only in type: failures_fail passes
        ),
        "verifier_strict",
        "verifier too lenient: accepted 392 (the solution's answer 391, +1)",
    ),
    (
        task(
            "any-float",
            "What is 40 divided by 8?",
            "def verify(state, answer):\n    return isinstance(answer, float)\n",
            "def solve(tools):\n    return tools.divide(a=40, b=8)\n",
            ["def solve(tools):\n    return 5\n"],
        ),
        "verifier_strict",
        "verifier too lenient: accepted 6.0 (the solution's answer 5.0, +1)",
    ),
    (
        task(
            "anything",
            "What is 17 plus 23?",
            "def verify(state, answer):\n    return answer is not None\n",
            ADD,
            ["def solve(tools):\n    return None\n"],
        ),
        "verifier_strict",
        "verifier too lenient: accepted 41 (the solution's answer 40, +1)",
    ),
    (
        task(
            "any-yes-or-no",
            "Is 17 times 23 more than 400?",
            "def verify(state, answer):\n    return isinstance(answer, bool)\n",
            "def solve(tools):\n    return tools.multiply(a=17, b=23) > 400\n",
            ["def solve(tools):\n    return 'no'\n"],
        ),
        "verifier_strict",
        "verifier too lenient: accepted true (the solution's answer false, flipped)",
    ),
    (
        task(
            "any-wrapping",
            "What is 17 times 23, in digits?",
            "def verify(state, answer):\n    return str(answer).strip('[]') == '391'\n",
            MULTIPLY,
            [ADD],
        ),
        "verifier_strict",
        "verifier too lenient: accepted [391] (the solution's answer 391, in a list)",
    ),
    (
        task(
            "strict",
            "What is 17 times 23 exactly?",
            "def verify(state, answer):\n    return answer == 391\n",
            MULTIPLY,
            [ADD],
        ),
        None,
        None,
    ),
    (
        task("one-decimal", "What is 10 divided by 3, to one decimal place?", *third(10, 3), [ADD]),
        None,
        None,
    ),
    (
        task("no-decimals-asked", "What is 10 divided by 3?", *third(10, 3), [ADD]),
        "verifier_strict",
        "verifier too lenient: accepted 3.333 (the solution's answer 3.3, ×1.01)",
    ),
    (
        task(
            "no-decimals-asked-but-allowed",
            "What is 20 divided by 7? Anything close is fine.",
            *third(20, 7),
            [ADD],
            lenient=["nudged"],
        ),
        None,
        None,
    ),
    (
        task(
            "hangs-on-none",
            "What is 17 times 23, or nothing?",
            """
            def verify(state, answer):
                while answer is None:
                    pass
                return answer == 391
            """,
            MULTIPLY,
            [ADD],
        ),
        "verifier_strict",
        "verify failed on sc's wrong answers: wall-clock limit",
    ),
    (
        thermostat("heat", "Heat the bedroom to 22.5 °C.", HEATED, heat(22.5), [DOES_NOTHING]),
        None,
        None,
    ),
    (
        thermostat(
            "heat-unchecked",
            "Heat the bedroom to 21 °C and say done.",
            SAYS_DONE,
            heat(21),
            ["def solve(tools):\n    return 'ok'\n"],
        ),
        "verifier_strict",
        'verifier too lenient: accepted the solution\'s answer "done" with the state of a fresh '
        "reset (it does not check that the action happened)",
    ),
    (
        thermostat(
            "heat-unchecked-allowed",
            "Heat the bedroom to 24 °C and say done (only the word is checked).",
            SAYS_DONE,
            heat(24),
            ["def solve(tools):\n    return 'ok'\n"],
            lenient=["state"],
        ),
        None,
        None,
    ),
    (
        thermostat(
            "heat-and-ignore-the-question",
            "Switch the bedroom to heating, then tell me the kitchen's temperature.",
            'def verify(state, answer):\n    return state["rooms"]["bedroom"]["mode"] == "heat"\n',
            """
            def solve(tools):
                tools.set_mode(room="bedroom", mode="heat")
                return tools.get_room(room="kitchen")["current"]
            """,
            ["def solve(tools):\n    return 17\n"],
        ),
        "verifier_strict",
        "verifier too lenient: accepted 18 (the solution's answer 17, +1)",
    ),
]


def lines_of(rows: list[dict]) -> list:
    return [parse_line(number, json.dumps(row)) for number, row in enumerate(rows, 1)]


@pytest.fixture(scope="module")
def verdicts() -> dict:
    """One filter run over every case, with the default (bwrap) sandbox."""
    load_plugins()
    with SandboxPool(get_sandbox(), Limits(wall_s=2), 2) as pool:
        report = run_filter(lines_of([row for row, _, _ in CASES]), pool)
    return {verdict.id: verdict for verdict in report.verdicts}


@pytest.mark.parametrize(("row", "stage", "reason"), CASES, ids=[row["id"] for row, _, _ in CASES])
def test_lenient_verifiers_are_rejected_with_the_answer_that_got_through(
    verdicts, row, stage, reason
):
    verdict = verdicts[row["id"]]
    assert (verdict.kept, verdict.stage) == (stage is None, stage), verdict
    assert verdict.reason == reason or stage and verdict.reason.startswith(reason), verdict


def test_the_stage_is_one_sandbox_job_per_task(monkeypatch):
    """All derived answers, and the fresh state, go to the sandbox in one job."""
    entries = []
    run = Worker.run

    def counting(self, source, entry, args, toolset=None):
        entries.append(entry)
        return run(self, source, entry, args, toolset)

    monkeypatch.setattr(Worker, "run", counting)
    load_plugins()
    row = thermostat("heat", "Heat the bedroom to 22.5 °C.", HEATED, heat(22.5), [DOES_NOTHING])
    with SandboxPool(get_sandbox(), Limits(), 1) as pool:
        (verdict,) = run_filter(lines_of([row]), pool).verdicts
    assert verdict.kept
    # solve and verify for the solution and the failure case, the determinism run, and one more
    assert entries == ["solve", "verify", "solve", "verify", "solve", "verify_each"]


@pytest.mark.parametrize(
    ("path", "kept"),
    [*((path, len(list(read_tasks(path)))) for path in SEED_FILES), (EXAMPLES, 2)],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_no_good_task_is_lost(path, kept):
    """Each seed task file, and examples/calculator_tasks.jsonl, keeps the tasks it kept before
    this stage (the evaluation sets: tests/test_evals.py, which checks every task is kept)."""
    load_plugins()
    with SandboxPool(get_sandbox(), Limits(), 2) as pool:
        report = run_filter(read_tasks(path), pool)
    assert [v.to_dict() for v in report.verdicts if v.stage == "verifier_strict"] == []
    assert len(report.kept) == kept


# -- the derived answers, without a sandbox ------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [
        ("What is 1624 + 1?", Tolerance()),
        ("Give the answer to 2 decimal places.", Tolerance(0.01)),
        ("Round to one decimal.", Tolerance(0.1)),
        ("To the nearest cent, what do I pay?", Tolerance(0.01)),
        ("To the nearest whole number, please.", Tolerance(1.0)),
        ("Rounded, how many buses are needed?", Tolerance(1.0)),
        ("Rounded to the nearest thousand.", Tolerance(1000.0)),
        ("Give it to 3 significant figures.", Tolerance(relative=0.01)),
        ("Within 0.5 of the true value is fine.", Tolerance(0.5)),
        ("Within 5% is fine.", Tolerance(relative=0.05)),
        ("Approximately how many seconds are in a year?", Tolerance(relative=0.1)),
        ("A town of about 50000 people...", Tolerance(relative=0.1)),
        # words that ask for no tolerance
        ("What does the round trip cost?", Tolerance()),
        ("She is thinking about returning it.", Tolerance()),
        ("As a percentage (for example 7.5 for 7.5%).", Tolerance()),
        ("Within 2 decimal places.", Tolerance(0.01)),
    ],
)
def test_tolerance_comes_from_the_instruction(instruction, expected):
    assert tolerance(instruction) == Tolerance(
        max(expected.absolute, Tolerance().absolute), max(expected.relative, Tolerance().relative)
    )


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        ("", 1624),
        ("", 21.15),
        ("", 12.999999999999998),  # float noise: 13 is no wrong answer
        ("", 0.15),
        ("", -3.75),
        ("", 1048576),
        ("to one decimal place", 3.3),
        ("to the nearest whole number", 7),
        ("within 1%", 31536000),
        ("approximately", 8.45),
    ],
)
def test_every_nudge_lands_past_the_tolerance(instruction, answer):
    allowed = tolerance(instruction)
    nudged = [item for item in derive(answer, instruction) if item.kind == "nudged"]
    assert [item.how[0] for item in nudged][:2] == ["+", "-"]
    for item in nudged:
        assert abs(item.value - answer) > max(allowed.absolute, allowed.relative * abs(answer))


def test_derived_answers_of_each_kind_none_equal_to_the_answer():
    derived = derive(1624, "")
    assert [(item.kind, item.value, item.how) for item in derived] == [
        ("nudged", 1625, "+1"),
        ("nudged", 1623, "-1"),
        ("nudged", 1640, "×1.01"),
        ("nudged", 1620, "rounded"),
        ("empty", "", "empty"),
        ("none", None, "no answer"),
        ("type", [1624], "in a list"),
    ]
    assert "1624" not in [item.value for item in derived]  # the same number as text is fine
    for answer in (None, "", "pending", [], {}, True, [1, "a"], {"total": 3.5}):
        values = [json.dumps(item.value) for item in derive(answer, "")]
        assert json.dumps(answer) not in values and len(values) == len(set(values))
    assert {item.kind for item in derive(True, "")} <= set(KINDS)


def test_nested_answers_move_every_number_at_once():
    """A verifier may check one number of an answer only (an order's total, not its id), so a
    nudge moves them all, and a way that cannot move one (scaling an id) is left out."""
    answer = {"order_id": "O1017", "total": 132.96, "items": [2, True]}
    nudged = [item for item in derive(answer, "") if item.kind == "nudged"]
    assert [item.value for item in nudged] == [
        {"order_id": "O1018", "total": 133.96, "items": [3, False]},
        {"order_id": "O1016", "total": 131.96, "items": [1, False]},
    ]
    assert nudged[0].how == "+1 on each of 4 values"
    empties = [item.value for item in derive(answer, "") if item.kind == "empty"]
    assert empties == ["", {}]


@pytest.mark.parametrize(
    ("instruction", "asks"),
    [
        ("Cancel order O1013 and tell me its total.", True),
        ("What is the new order's total?", True),
        ("How many units are left afterwards?", True),
        ("Give me the new order id.", True),
        ("Place the order, then report the new total.", True),
        ("Please cancel order O1013; the customer changed their mind about it.", False),
        ("Cancel the order which has the tent in it.", False),
        ("Could you set the kitchen to what the office reads?", False),
    ],
)
def test_asks_for_answer(instruction, asks):
    assert asks_for_answer(instruction) is asks


# -- the opt-out field ---------------------------------------------------------------------------


def test_lenient_field_is_validated_and_saved_only_where_set():
    row = task(
        "t", "What is 17 times 23?", "def verify(s, a):\n    return a == 391\n", MULTIPLY, [ADD]
    )
    assert CodeAsTask.from_dict(row).lenient == []
    assert "lenient" not in CodeAsTask.from_dict(row).to_dict()
    allowed = CodeAsTask.from_dict(row | {"lenient": ["nudged", "state"]})
    assert allowed.to_dict()["lenient"] == ["nudged", "state"]
    with pytest.raises(TaskFormatError) as unknown:
        CodeAsTask.from_dict(row | {"lenient": ["nudged", "rounding"]})
    assert str(unknown.value) == (
        "field 'lenient': unknown kind 'rounding' (known: nudged, empty, none, type, state)"
    )
    for bad in ("nudged", [1], {"nudged": True}):
        with pytest.raises(TaskFormatError, match="field 'lenient' must be a list of strings"):
            CodeAsTask.from_dict(row | {"lenient": bad})
    line = parse_line(1, json.dumps(row | {"lenient": ["rounding"]}))
    assert line.task is None and "unknown kind 'rounding'" in line.error
