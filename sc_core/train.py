"""Training the executor: the contract RL backends implement, rewards, and the learnability filter.

An RL backend (the ``register_rl_backends`` hook) gets a :class:`TrainJob` (tasks, a starting
checkpoint, the sandbox pool, the reward shaper) and returns the path of a saved checkpoint that
``sc eval --model DIR`` and plain transformers can load. Rollouts for training go through
:func:`rollouts`, so every backend scores episodes the same way: the task's verifier in the
sandbox, then the shaper. A failed episode is a zero-reward sample with its reason, never an
exception.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from . import distributed
from .agent import Agent, AgentConfig
from .errors import ScError
from .evaluate import EvalReport, Scored, evaluate
from .models import ModelBackend
from .plugins import lookup
from .sandbox import SandboxPool
from .task import CodeAsTask
from .tools import ToolsetSpec

Shaper = Callable[[float, dict[str, Any]], float]
"""``shaper(score, episode) -> reward``: ``score`` is the verifier's result as a float,
``episode`` the rollout as plain data (:meth:`sc_core.agent.Episode.to_dict`)."""

DEFAULT_SHAPER = "binary"


def get_shaper(name: str | None) -> Shaper:
    return lookup("register_reward_shapers", "reward shaper", name or DEFAULT_SHAPER)


@dataclass
class Sample:
    """One scored rollout: what the trainer learns from."""

    scored: Scored
    reward: float
    demonstration: bool = False
    """The episode replays the task's example solution (:mod:`sc_core.demonstrations`); the
    model sampled none of it."""

    @property
    def episode(self):
        return self.scored.episode

    def to_dict(self) -> dict[str, Any]:
        return self.scored.to_dict() | {"reward": self.reward, "demonstration": self.demonstration}


def shape(scored: Scored, shaper: Shaper) -> float:
    """The training reward for a scored episode; a shaper that fails or returns junk gives 0."""
    if scored.error is not None and scored.score == 0:
        return 0.0
    try:
        reward = float(shaper(scored.score, scored.episode.to_dict()))
    except Exception:
        return 0.0
    return reward if math.isfinite(reward) else 0.0


def rollouts(
    tasks: list[CodeAsTask],
    agent: Agent,
    pool: SandboxPool,
    k: int,
    shaper: Shaper,
    tools: ToolsetSpec | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Sample]:
    """k scored episodes per task, in task order (the k of one task are adjacent)."""
    report = evaluate(tasks, agent, pool, k, tools, on_step)
    return [Sample(item, shape(item, shaper)) for item in report.scored]


@dataclass
class Learnability:
    """What the learnability filter saw: each task's pass rate over k samples."""

    k: int
    rates: dict[str, float]
    kept: list[CodeAsTask]

    def to_dict(self) -> dict[str, Any]:
        never = sum(rate == 0 for rate in self.rates.values())
        always = sum(rate == 1 for rate in self.rates.values())
        return {
            "k": self.k,
            "tasks": len(self.rates),
            "kept": len(self.kept),
            "never_solved": never,
            "always_solved": always,
            "rates": self.rates,
        }


def learnable(report: EvalReport, tasks: list[CodeAsTask]) -> Learnability:
    """Keep the tasks the executor solves sometimes but not always: a GRPO group whose rewards
    are all equal has zero advantage and teaches nothing."""
    rates = {row["id"]: row["pass_at_1"] for row in report.per_task()}
    kept = [task for task in tasks if 0 < rates.get(task.id, 0) < 1]
    return Learnability(report.k, rates, kept)


@dataclass
class TrainJob:
    """Everything a backend needs for one training run."""

    tasks: list[CodeAsTask]
    model: str
    """The starting checkpoint: a path, hub id or alias that transformers can load."""
    out_dir: Path
    """Where the final checkpoint is saved (``config.json`` and the tokenizer included)."""
    pool: SandboxPool
    shaper: Shaper
    tools: ToolsetSpec | None = None
    """One toolset for every task; None: each task's own spec."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """Turn and token limits of training rollouts."""
    on_metrics: Callable[[dict[str, Any]], None] = lambda row: None
    """Called with each logged figure set: ``step``, and ``reward`` (the mean shaped reward of
    the rollouts a step learned from) and ``loss`` where the step has them; the report plots
    ``reward`` over ``step``."""
    on_samples: Callable[[list[Sample]], None] = lambda samples: None
    """Called with every batch of scored rollouts, to save trajectories."""
    rollout_model: ModelBackend | None = None
    """A faster engine (vLLM) serving the starting weights, or a teacher: backends sample their
    first rollouts from it instead of from the weights they train."""
    release_rollout_model: Callable[[], None] = lambda: None
    """Called once the backend is done with ``rollout_model``, so that its owner can free it
    before training (a vLLM engine holds the model and its KV cache)."""

    def for_this_process(self) -> TrainJob:
        """The job as this training process runs it: under ``accelerate launch`` only the main
        process reports metrics and samples (which its owner writes to files); the others
        keep theirs silent, so that no two processes write the same file."""
        if distributed.is_main():
            return self
        return dataclasses.replace(
            self, on_metrics=lambda row: None, on_samples=lambda samples: None
        )


class RLBackend(ABC):
    """A trainer. Plugins register subclasses by name with a config dataclass of their own."""

    name: ClassVar[str]
    Config: ClassVar[type]
    """A dataclass whose documented fields are the backend's settings (``--option key=value``)."""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def train(self, job: TrainJob) -> Path:
        """Train on ``job.tasks`` and save the checkpoint in ``job.out_dir``; return its path."""


def get_backend(name: str, options: dict[str, str] | None = None) -> RLBackend:
    """The named RL backend with its config built from ``key=value`` strings."""
    hint = " (pip install sc-trl)" if name in ("grpo", "rft") else ""
    cls = lookup("register_rl_backends", "RL backend", name, hint)
    return cls(build_config(cls.Config, options or {}))


def build_config(config_class: type, options: dict[str, str]) -> Any:
    """A config dataclass from strings, each converted to its field's type."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = {}
    for key, raw in options.items():
        if key not in fields:
            raise ScError(
                f"{config_class.__name__} has no setting {key!r}; settings: {', '.join(fields)}"
            )
        values[key] = convert(raw, fields[key].default, key)
    return config_class(**values)


def convert(raw: str, default: Any, key: str) -> Any:
    """``raw`` as the type of ``default`` (bool, int, float, str, or None meaning str)."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (tuple, list)):
            return type(default)(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise ScError(f"setting {key}={raw!r}: expected {type(default).__name__}") from None
    return raw


def parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("lr=1e-5", "steps=10")`` as a dict; a pair without ``=`` is a one-line error."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ScError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options
