"""The ``example_turn_penalty`` reward shaper.

A reward shaper turns the verifier's score for one episode into the training reward, with
sc's shaper signature (``register_reward_shapers`` in CONTRIBUTING.md)::

    def shaper(score: float, episode: dict) -> float

- ``score``: what ``verify(state, answer)`` returned, as a float (``True`` is 1.0, partial credit
  lies in [0, 1]);
- ``episode``: facts about the rollout that earned it, as plain JSON data; this shaper reads
  ``episode["turns"]``, the number of model turns (missing means 0);
- the result is the reward, a float in [0, 1].

A shaper must be a pure function of its arguments (no state, no I/O), cheap, and must never raise
on odd input: a rollout that went wrong is data, and its reward is simply low.
"""

from __future__ import annotations

import math
from typing import Any

FREE_TURNS = 2
"""Turns that cost nothing: one to act, one to answer."""
PER_TURN = 0.05
"""Reward taken off for each turn past ``FREE_TURNS``."""


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def turn_penalty(score: float, episode: dict[str, Any]) -> float:
    """The score minus ``PER_TURN`` for every turn past ``FREE_TURNS``, clipped to [0, 1].

    A failed episode stays at 0, and a success is never worth less than nothing, so the
    penalty only ranks successes: the shorter, the better.
    """
    try:
        score = float(score)
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(score):
        return 0.0
    turns = episode.get("turns", 0) if isinstance(episode, dict) else 0
    if isinstance(turns, bool) or not isinstance(turns, (int, float)) or math.isnan(turns):
        turns = 0
    extra = max(0, math.ceil(turns) - FREE_TURNS) if math.isfinite(turns) else 10**6
    return _clip(_clip(score) - PER_TURN * extra)
