"""The diversity figures of kept tasks (sc_core.diversity): tools per task, distinct tool
sequences and the instructions' embedding spread. Pure functions: no model, no sandbox."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from sc_core.diversity import measure, spread, tool_sequence
from sc_core.task import CodeAsTask


def kept(instruction: str, solution: str) -> CodeAsTask:
    return CodeAsTask.from_dict(
        {
            "toolset": "calculator",
            "instruction": instruction,
            "verify": "def verify(state, answer):\n    return True\n",
            "solution": solution,
            "failures": ["def solve(tools):\n    return 0\n"],
        }
    )


def test_static_sequence_follows_the_source_order_of_tool_calls():
    source = """
def helper(tools):
    return tools.sqrt(x=4)

def solve(t):
    total = t.add(a=1, b=2)
    for value in [1, 2]:
        total = t.multiply(a=total, b=value)
    tools = {"not": "the tools"}
    return t.add(a=total, b=len(tools.keys()))
"""
    # the tools parameter's name is what counts; the helper and other attributes are not calls
    assert tool_sequence(source) == ("add", "multiply", "add")
    assert tool_sequence("def solve(tools):\n    return 1\n") == ()
    assert tool_sequence("not python (") == ()


def test_spread_is_the_mean_pairwise_cosine_distance():
    assert spread([[1.0, 0.0]]) is None
    assert spread([[1.0, 0.0], [2.0, 0.0]]) == 0
    assert spread([[1.0, 0.0], [0.0, 3.0]]) == 1
    rng = random.Random(0)
    vectors = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(12)]

    def cosine(u, v):
        dot = sum(a * b for a, b in zip(u, v, strict=True))
        return dot / math.hypot(*u) / math.hypot(*v)

    pairs = list(itertools.combinations(vectors, 2))
    brute = sum(1 - cosine(u, v) for u, v in pairs) / len(pairs)
    assert spread(vectors) == pytest.approx(brute, abs=1e-4)


def test_measure_counts_tools_sequences_and_spread():
    tasks = [
        kept("Add 1 and 2.", "def solve(tools):\n    return tools.add(a=1, b=2)\n"),
        kept("Add 3 and 4.", "def solve(tools):\n    return tools.add(a=3, b=4)\n"),
        kept(
            "Add 1 and 2, then double it.",
            "def solve(tools):\n    return tools.multiply(a=tools.add(a=1, b=2), b=2)\n",
        ),
    ]
    seen = []

    def embed(texts):
        seen.extend(texts)
        return [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]

    figures = measure(tasks, embed)
    assert seen == ["Add 1 and 2.", "Add 3 and 4.", "Add 1 and 2, then double it."]
    assert figures == {
        "tasks": 3,
        "tools_per_task": {"mean": pytest.approx(4 / 3, abs=1e-4), "counts": {"1": 2, "2": 1}},
        "tools": {"add": 3, "multiply": 1},
        "tool_sequences": {"distinct": 2, "share": pytest.approx(2 / 3, abs=1e-4)},
        "embedding_spread": pytest.approx(2 / 3, abs=1e-4),  # two of three pairs are orthogonal
    }


def test_measure_without_an_embedder_or_tasks():
    add = "def solve(tools):\n    return tools.add(a=1, b=2)\n"
    two = [kept("Add 1 and 2.", add), kept("Sum 1 and 2.", add)]
    assert measure(two, lambda texts: None)["embedding_spread"] is None
    assert measure(two[:1], lambda texts: pytest.fail("one task has no pairs"))["tasks"] == 1
    assert measure([], lambda texts: pytest.fail("nothing to embed")) == {
        "tasks": 0,
        "tools_per_task": {"mean": None, "counts": {}},
        "tools": {},
        "tool_sequences": {"distinct": 0, "share": None},
        "embedding_spread": None,
    }
