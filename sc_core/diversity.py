"""How varied a set of kept tasks is: the tools each one uses, its sequence of tool calls, and
how far apart the instructions are in meaning.

A challenger can pass the CaT filter with one task rewritten many times (the same tool, new
numbers); the filter's ``unique`` stage only catches exact repeats. These figures show it per
iteration (``filter.json``, the report) and per challenge (``sc challenge --json``):

- ``tools_per_task``: distinct tools each task's solution calls, as a mean and as counts
  (``{"2": 5}``: five tasks use two tools); ``tools``: how many tasks use each tool.
- ``tool_sequences``: distinct sequences of tool calls among the tasks, and that number as a
  share of the tasks (1.0: no two tasks call the same tools in the same order). A sequence is
  the tool calls the solution's source makes, in the order they are written (a loop's once):
  the verdicts keep only a digest of the calls the sandbox recorded.
- ``embedding_spread``: the mean pairwise cosine distance between the instructions'
  embeddings (0: all say the same; about 1: unrelated); None without an embedding model
  (:func:`sc_core.dedup.embed`) or with fewer than two tasks.
"""

from __future__ import annotations

import ast
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from . import syntax
from .dedup import embed as embed_instructions
from .task import CodeAsTask

Embedder = Callable[[list[str]], list[list[float]] | None]


def tool_sequence(solution: str) -> tuple[str, ...]:
    """The tool calls ``solve(tools)`` makes in its source, in the order they are written (a
    loop's calls once)."""
    try:
        tree = syntax.parse(solution)
    except (SyntaxError, RecursionError, MemoryError):
        return ()
    solve = next(
        (node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "solve"),
        None,
    )
    if solve is None or not (solve.args.posonlyargs + solve.args.args):
        return ()
    tools = (solve.args.posonlyargs + solve.args.args)[0].arg
    calls = [
        node
        for node in ast.walk(solve)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == tools
    ]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    return tuple(node.func.attr for node in calls)


def spread(vectors: Sequence[Sequence[float]]) -> float | None:
    """The mean cosine distance over all pairs of ``vectors``; None for fewer than two. The
    mean pairwise cosine similarity of unit vectors is ``(|sum|^2 - n) / (n(n-1))``, so this
    is linear in the number of vectors, not quadratic."""
    units = []
    for vector in vectors:
        norm = math.sqrt(sum(x * x for x in vector))
        units.append([x / norm for x in vector] if norm else list(vector))
    n = len(units)
    if n < 2:
        return None
    total = [sum(column) for column in zip(*units, strict=True)]
    self_similarity = sum(sum(x * x for x in unit) for unit in units)  # n, less any zero vector
    similarity = (sum(x * x for x in total) - self_similarity) / (n * (n - 1))
    return round(1 - similarity, 4)


def measure(tasks: list[CodeAsTask], embed: Embedder = embed_instructions) -> dict[str, Any]:
    """The diversity figures of kept ``tasks`` (see the module docstring); ``embed`` gives the
    instructions' embeddings (:func:`sc_core.dedup.embed`)."""
    sequences = [tool_sequence(task.solution) for task in tasks]
    used = [set(sequence) for sequence in sequences]
    counts = Counter(len(tools) for tools in used)
    vectors = embed([task.instruction for task in tasks]) if len(tasks) > 1 else None
    return {
        "tasks": len(tasks),
        "tools_per_task": {
            "mean": round(sum(map(len, used)) / len(used), 4) if used else None,
            "counts": {str(size): counts[size] for size in sorted(counts)},
        },
        "tools": dict(Counter(tool for tools in used for tool in sorted(tools)).most_common()),
        "tool_sequences": {
            "distinct": len(set(sequences)),
            "share": round(len(set(sequences)) / len(sequences), 4) if sequences else None,
        },
        "embedding_spread": spread(vectors) if vectors is not None else None,
    }
