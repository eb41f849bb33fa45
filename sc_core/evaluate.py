"""Evaluation: the executor solves each task k times; the task's verifier, run in the sandbox,
scores each episode; pass@1 and pass@k summarise it.

pass@k is the unbiased estimator of Chen et al. (2021): with n samples of which c pass,
``1 - C(n - c, k) / C(n, k)``, averaged over tasks. An episode passes when its verifier gives
full credit. A failed episode (no answer, a crashed tool, an unusable turn) is still scored:
its verifier sees whatever state and answer it left, and usually says no.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from math import comb
from typing import Any

from .agent import Agent, Episode, EpisodeSpec
from .sandbox import SandboxPool
from .task import CodeAsTask
from .tools import Toolset, ToolsetSpec, load_toolset
from .verify import run_verifier


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples out of n (c of them correct) passes."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass
class Scored:
    """One episode and what its task's verifier made of it."""

    task_id: str
    episode: Episode
    score: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.score >= 1

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "score": self.score, "verify_error": self.error} | {
            "episode": self.episode.to_dict()
        }


@dataclass
class EvalReport:
    """Scores per task, pass@1 and pass@k."""

    k: int
    scored: list[Scored]

    def per_task(self) -> list[dict[str, Any]]:
        tasks: dict[str, list[Scored]] = {}
        for item in self.scored:
            tasks.setdefault(item.task_id, []).append(item)
        rows = []
        for task_id, items in tasks.items():
            n, c = len(items), sum(item.passed for item in items)
            rows.append(
                {
                    "id": task_id,
                    "n": n,
                    "passed": c,
                    "pass_at_1": c / n,
                    "pass_at_k": pass_at_k(n, c, min(self.k, n)),
                    "scores": [item.score for item in items],
                    "finish": [item.episode.finish for item in items],
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        rows = self.per_task()

        def mean(key: str) -> float:
            return sum(row[key] for row in rows) / len(rows) if rows else 0.0

        return {
            "pass_at_1": mean("pass_at_1"),
            "pass_at_k": mean("pass_at_k"),
            "k": self.k,
            "tasks": rows,
        }


def episode_specs(
    tasks: list[CodeAsTask], k: int, tools: ToolsetSpec | None = None
) -> list[tuple[CodeAsTask, EpisodeSpec]]:
    """k episodes per task, each on its own fresh toolset instance."""
    specs: dict[str, ToolsetSpec] = {}
    pairs = []
    for task in tasks:
        if tools is None and task.toolset not in specs:  # load (import) each toolset once
            specs[task.toolset] = load_toolset(task.toolset)
        spec = tools or specs[task.toolset]
        for _ in range(k):
            pairs.append((task, EpisodeSpec(task.instruction, _create(spec), task.seed, task.id)))
    return pairs


def _create(spec: ToolsetSpec) -> Toolset:
    """A fresh instance; a factory that fails gives a stand-in whose reset repeats the error, so
    the episode fails with its reason (a zero-reward sample) instead of the whole run."""
    try:
        return spec.create()
    except Exception as error:
        return _Unavailable(error)


class _Unavailable(Toolset):
    """The toolset that could not be created."""

    def __init__(self, error: Exception):
        self.tools, self.error = {}, error

    def reset(self, seed: int) -> None:
        raise self.error

    def close(self) -> None:
        pass


def score_episodes(pairs: list[tuple[CodeAsTask, Episode]], pool: SandboxPool) -> list[Scored]:
    """Run each task's verifier on its episode's final state and answer, in the sandbox."""
    scored: list[Scored | None] = [None] * len(pairs)
    checks = []
    for index, (task, episode) in enumerate(pairs):
        if episode.state is None:
            scored[index] = Scored(
                task.id, episode, 0.0, episode.error or "the episode has no state"
            )
        else:
            checks.append((index, (task.verify, episode.state, episode.answer)))
    results = pool.map(_scoring, [check for _, check in checks])
    for (index, _), (value, error) in zip(checks, results, strict=True):
        task, episode = pairs[index]
        scored[index] = Scored(task.id, episode, value, error)
    return scored


@contextmanager
def _scoring(
    pool: SandboxPool,
) -> Iterator[Callable[[tuple[str, Any, Any]], tuple[float, str | None]]]:
    """The job that scores one ``(verify, state, answer)``: a score and the verifier's error,
    if any. Only these travel to the pool, not the episode with its tokens."""

    def score(check: tuple[str, Any, Any]) -> tuple[float, str | None]:
        verify, state, answer = check
        with pool.worker() as worker:
            try:
                return run_verifier(worker, verify, state, answer), None
            except ValueError as error:
                return 0.0, str(error)

    yield score


def evaluate(
    tasks: list[CodeAsTask],
    agent: Agent,
    pool: SandboxPool,
    k: int = 1,
    tools: ToolsetSpec | None = None,
    on_step: Callable[[int], None] | None = None,
) -> EvalReport:
    """Solve every task k times with ``agent`` and score the episodes."""
    pairs = episode_specs(tasks, k, tools)
    try:
        episodes = agent.run([spec for _, spec in pairs], on_step)
    finally:
        for _, spec in pairs:
            with suppress(Exception):
                spec.toolset.close()
    finished = [(task, episode) for (task, _), episode in zip(pairs, episodes, strict=True)]
    scored = score_episodes(finished, pool)
    return EvalReport(k, scored)
