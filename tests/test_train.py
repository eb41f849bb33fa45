"""The training contract: reward shapers, rewards from scored episodes, the learnability filter,
and backend settings from strings."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sc_core.agent import Episode
from sc_core.errors import ScError
from sc_core.evaluate import EvalReport, Scored
from sc_core.task import CodeAsTask
from sc_core.train import build_config, get_backend, get_shaper, learnable, parse_options, shape


def episode(turns: int = 1) -> Episode:
    return Episode(task_id="t", seed=0, messages=[], prompt_ids=[1], turns=turns)


def scored(task_id: str, score: float, error: str | None = None, turns: int = 1) -> Scored:
    return Scored(task_id, episode(turns), score, error)


@pytest.mark.parametrize(
    ("name", "score", "turns", "expected"),
    [
        ("binary", 1.0, 1, 1.0),
        ("binary", 0.99, 1, 0.0),
        ("binary", True, 1, 1.0),
        ("partial", 0.4, 1, 0.4),
        ("partial", 7.0, 1, 1.0),
        ("partial", float("nan"), 1, 0.0),
        ("partial", "junk", 1, 0.0),
        ("turn_penalty", 1.0, 1, 1.0),
        ("turn_penalty", 1.0, 3, 0.8),
        ("turn_penalty", 1.0, 40, 0.1),
        ("turn_penalty", 0.5, 1, 0.0),
    ],
)
def test_builtin_shapers(name, score, turns, expected):
    shaper = get_shaper(name)
    assert shaper(score, {"turns": turns}) == pytest.approx(expected)


def test_unknown_shaper_is_a_one_line_error():
    with pytest.raises(ScError, match="unknown reward shaper 'nope'; available: .*binary"):
        get_shaper("nope")


def test_shape_turns_failures_and_broken_shapers_into_zero():
    assert shape(scored("t", 1.0), get_shaper("binary")) == 1.0
    assert shape(scored("t", 0.0, error="sandbox timed out"), get_shaper("binary")) == 0.0

    def broken(score, episode):
        raise RuntimeError("boom")

    assert shape(scored("t", 1.0), broken) == 0.0
    assert shape(scored("t", 1.0), lambda score, episode: float("inf")) == 0.0
    seen = {}

    def spy(score, episode):
        seen.update(episode)
        return 0.5

    assert shape(scored("t", 1.0, turns=3), spy) == 0.5
    assert seen["turns"] == 3 and seen["task_id"] == "t"  # the episode as plain data


def task(task_id: str) -> CodeAsTask:
    return CodeAsTask(task_id, "calculator", 0, "do it", "v", "s", ["f"])


def test_learnability_keeps_tasks_solved_sometimes():
    report = EvalReport(
        2,
        [
            scored("never", 0.0),
            scored("never", 0.0),
            scored("sometimes", 1.0),
            scored("sometimes", 0.0),
            scored("always", 1.0),
            scored("always", 1.0),
        ],
    )
    result = learnable(report, [task("never"), task("sometimes"), task("always")])
    assert [t.id for t in result.kept] == ["sometimes"]
    summary = result.to_dict()
    assert summary["never_solved"] == 1 and summary["always_solved"] == 1
    assert summary["rates"] == {"never": 0.0, "sometimes": 0.5, "always": 1.0}


@dataclass
class Settings:
    steps: int = 2
    learning_rate: float = 1e-5
    lora: bool = False
    name: str = "x"
    targets: tuple[str, ...] = ("q_proj",)


def test_build_config_converts_each_field_to_its_type():
    config = build_config(
        Settings,
        {"steps": "7", "learning_rate": "3e-4", "lora": "yes", "name": "y", "targets": "a, b"},
    )
    assert config == Settings(7, 3e-4, True, "y", ("a", "b"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stepz": "1"}, "Settings has no setting 'stepz'; settings: steps, "),
        ({"steps": "many"}, "setting steps='many': expected int"),
        ({"lora": "maybe"}, "setting lora='maybe': expected bool"),
    ],
)
def test_build_config_errors_name_the_setting(options, message):
    with pytest.raises(ScError, match=message):
        build_config(Settings, options)


def test_parse_options():
    assert parse_options(("a=1", " b = x=y ")) == {"a": "1", "b": "x=y"}
    with pytest.raises(ScError, match="--option expects KEY=VALUE"):
        parse_options(("novalue",))


def test_unknown_backend_names_the_package_to_install():
    with pytest.raises(ScError, match="unknown RL backend 'ppo'; available:"):
        get_backend("ppo")
