"""The built-in reward shapers: ``binary``, ``partial`` and ``turn_penalty``.

A shaper is ``shaper(score, episode) -> reward``: ``score`` is what the task's verifier
returned, as a float; ``episode`` is the rollout as plain data. Shapers are pure and never raise.
"""

from __future__ import annotations

import math
from typing import Any

from sc_core import hookimpl

TURN_COST = 0.1
"""What ``turn_penalty`` takes off for each assistant turn after the first."""


def _unit(score: Any) -> float:
    try:
        value = float(score)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def binary(score: float, episode: dict[str, Any]) -> float:
    """1 for full credit, else 0: the paper's reward."""
    return 1.0 if _unit(score) >= 1 else 0.0


def partial(score: float, episode: dict[str, Any]) -> float:
    """The verifier's float score in [0, 1], for verifiers that give partial credit."""
    return _unit(score)


def turn_penalty(score: float, episode: dict[str, Any]) -> float:
    """Full credit minus ``TURN_COST`` per extra turn, never below 0.1 for a success: among
    successes the shorter ranks higher, and any success still beats a failure."""
    if binary(score, episode) == 0:
        return 0.0
    turns = episode.get("turns", 1) if isinstance(episode, dict) else 1
    extra = max(0, int(turns) - 1) if isinstance(turns, int) else 0
    return max(0.1, 1.0 - TURN_COST * extra)


@hookimpl
def register_reward_shapers(register):
    register("binary", binary)
    register("partial", partial)
    register("turn_penalty", turn_penalty)
