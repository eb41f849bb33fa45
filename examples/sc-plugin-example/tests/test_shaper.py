"""The ``example_turn_penalty`` reward shaper: ``(score, episode) -> reward`` in [0, 1]."""

from __future__ import annotations

import math

import pytest
from sc_plugin_example import turn_penalty
from sc_plugin_example.shapers import FREE_TURNS, PER_TURN


@pytest.mark.parametrize(
    ("score", "turns", "reward"),
    [
        (1.0, 0, 1.0),
        (1.0, FREE_TURNS, 1.0),
        (1.0, FREE_TURNS + 1, 1.0 - PER_TURN),
        (1.0, FREE_TURNS + 4, 1.0 - 4 * PER_TURN),
        (0.5, FREE_TURNS + 2, 0.5 - 2 * PER_TURN),
        (1.0, 1000, 0.0),  # never below zero
        (0.0, 1, 0.0),  # a failure stays a failure
        (0.0, 50, 0.0),
    ],
)
def test_turns_past_the_free_ones_cost_reward(score, turns, reward):
    assert turn_penalty(score, {"turns": turns}) == pytest.approx(reward)


def test_shorter_successes_rank_higher():
    rewards = [turn_penalty(1.0, {"turns": turns}) for turns in range(1, 12)]
    assert rewards == sorted(rewards, reverse=True)
    assert rewards[0] > rewards[-1]


@pytest.mark.parametrize(
    ("score", "episode", "reward"),
    [
        (True, {}, 1.0),  # a verifier may return a bool
        (False, {}, 0.0),
        (1.7, {}, 1.0),  # out-of-range scores are clipped
        (-0.3, {}, 0.0),
        (math.nan, {"turns": 1}, 0.0),
        ("oops", {"turns": 1}, 0.0),
        (None, {}, 0.0),
        (1.0, {}, 1.0),  # no turns recorded: no penalty
        (1.0, {"turns": None}, 1.0),
        (1.0, {"turns": "3"}, 1.0),
        (1.0, {"turns": True}, 1.0),
        (1.0, {"turns": -5}, 1.0),
        (1.0, {"turns": math.inf}, 0.0),
        (1.0, {"turns": math.nan}, 1.0),
        (1.0, None, 1.0),
    ],
)
def test_odd_input_never_raises(score, episode, reward):
    assert turn_penalty(score, episode) == pytest.approx(reward)


def test_registered_through_the_hook():
    from sc_plugin_example import register_reward_shapers

    registered = {}
    register_reward_shapers(register=lambda name, shaper: registered.setdefault(name, shaper))
    assert registered == {"example_turn_penalty": turn_penalty}
