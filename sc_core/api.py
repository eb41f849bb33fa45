"""The Python API: challenge, train and evaluate from an application, as the CLI does.

Every argument that names a part also takes the part itself, so an application can pass what it
already holds: ``tools`` is a spec string or a :class:`~sc_core.tools.ToolsetSpec` (for example
``sc_langchain.toolset_spec(my_langchain_tools)``), ``model`` a spec string or a loaded
:class:`~sc_core.models.ModelBackend` (for example ``sc_langchain.LangChainChatBackend(chat)``).
A sandbox pool is opened for the call unless one is passed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agent import Agent, AgentConfig
from .challenge import Attempt, AttemptLog, ChallengeConfig, Challenger, task_lines
from .errors import ScError
from .evaluate import EvalReport
from .evaluate import evaluate as run_episodes
from .models import ModelBackend, default_challenger, load_model, parse_model_spec
from .plugins import lookup
from .sandbox import Limits, SandboxPool, get_sandbox
from .task import CodeAsTask, TaskLine
from .tools import ToolsetSpec, load_toolset
from .train import RLBackend, Sample, TrainJob, get_backend, get_shaper
from .verify import FilterReport, Verdict, run_filter

Tools = str | ToolsetSpec
Model = str | ModelBackend | None


def toolset(tools: Tools) -> ToolsetSpec:
    return tools if isinstance(tools, ToolsetSpec) else load_toolset(tools)


def open_pool(
    sandbox: str | None = None,
    workers: int | None = None,
    wall_s: float = Limits.wall_s,
    ray: str | None = None,
) -> SandboxPool:
    """A pool of warm sandbox workers; use it as a context manager. ``ray``, a Ray cluster's
    address (``"local"``: start one here for the pool's lifetime), spreads the work of the
    filter and of scoring over that cluster's nodes instead."""
    size = max(1, workers or os.cpu_count() or 1)
    if not ray:
        return SandboxPool(get_sandbox(sandbox), Limits(wall_s=wall_s), size)
    try:
        from .cluster import RayPool
    except ImportError as error:
        if (error.name or "").partition(".")[0] != "ray":
            raise
        raise ScError("--ray needs Ray, which is not installed: pip install ray") from error
    return RayPool(sandbox, Limits(wall_s=wall_s), size, ray)


@contextmanager
def _model(model: Model) -> Iterator[ModelBackend]:
    """A backend for the call; one loaded here from a spec is freed after it (a vLLM engine
    holds memory and a process of its own)."""
    if isinstance(model, ModelBackend):
        yield model
        return
    backend = load_model(model)
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def _writer(model: Model, strategy: type[Challenger]) -> Iterator[ModelBackend | None]:
    """The model that writes a strategy's tasks (``None``: the default model's paired
    challenger, else the default model); None, and nothing loaded, for a strategy that needs
    no model."""
    if not strategy.needs_model:
        yield None
        return
    with _model(model or default_challenger() or None) as backend:
        yield backend


@contextmanager
def _pool(pool: SandboxPool | None) -> Iterator[SandboxPool]:
    if pool is not None:
        yield pool
        return
    with open_pool() as opened:
        yield opened


@dataclass
class ChallengeResult:
    """What a challenge produced: the filter's verdict on every attempt."""

    attempts: int
    report: FilterReport

    @property
    def kept(self) -> list[CodeAsTask]:
        return [verdict.item.task for verdict in self.report.kept]

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [rejected_row(verdict) for verdict in self.report.verdicts if not verdict.kept]

    def to_dict(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "kept": len(self.kept), "stages": self.report.stages()}


def rejected_row(verdict: Verdict) -> dict[str, Any]:
    """A rejected line as saved: the task (or the raw line when it did not parse) and why."""
    item = verdict.item
    row = item.task.to_dict() if item.task else {"line": item.line, "raw": item.raw} | item.origin
    row["rejection"] = {"stage": verdict.stage, "reason": verdict.reason}
    return row


def strategy_class(name: str) -> type[Challenger]:
    """The challenger strategy registered as ``name``; a one-line error naming the others."""
    return lookup("register_challengers", "strategy", name)


def default_strategy(tools: Tools, examples: tuple[CodeAsTask, ...] = ()) -> str:
    """The strategy used when none is named: ``seeded`` where example tasks are at hand
    (``examples``, or the toolset's own), else ``explore``, which needs none. Shown examples
    teach a small model the task format, so a toolset that has them is seeded; one without
    them (a user's module of functions) still gets tasks."""
    return "seeded" if examples or toolset(tools).examples() else "explore"


def challenge(
    tools: Tools,
    n: int = 20,
    model: Model = None,
    *,
    strategy: str | None = None,
    config: ChallengeConfig | None = None,
    seed: int = 0,
    pool: SandboxPool | None = None,
    on_attempts: Callable[[int], None] | None = None,
    on_verified: Callable[[Verdict], None] | None = None,
    extra: list[TaskLine] | None = None,
    attempts_file: str | os.PathLike | None = None,
    known: list[CodeAsTask] | None = None,
) -> ChallengeResult:
    """``n`` challenger attempts on ``tools``, each candidate through the CaT filter.

    ``model`` writes the tasks: for distillation, pass a stronger model than the executor's
    (None: :func:`~sc_core.models.default_challenger` of the default model, or that model).
    ``strategy`` None is :func:`default_strategy`.
    A strategy that needs no model (``needs_model = False``) ignores it, and none is loaded.
    ``extra`` task lines (written elsewhere) join the candidates and pass the same filter.
    ``attempts_file`` saves the attempts as each ``config.chunk`` of them is made; attempts
    already saved there are not made again, so a killed challenge resumes. ``known`` tasks,
    kept before (a run's earlier iterations), are not new: a copy of one is rejected.
    """
    spec = toolset(tools)
    config = config or ChallengeConfig()
    strategy = strategy or default_strategy(spec, config.examples)
    strategy_type = strategy_class(strategy)
    seeds = list(range(seed, seed + n))
    log = AttemptLog(attempts_file, spec.spec, strategy) if attempts_file else None
    made = log.attempts() if log else {}
    todo = [s for s in seeds if s not in made]
    author = log.model if log else None
    if on_attempts and len(todo) < n:
        on_attempts(n - len(todo))
    if todo:
        with _writer(model, strategy_type) as backend:
            challenger = strategy_type(backend, config)
            author = challenger.author
            if log:
                log.check(author)
            for attempt in _attempt_in_chunks(challenger, spec, todo, log, on_attempts, n):
                made[attempt.seed] = attempt
    lines = task_lines([made[s] for s in seeds], spec.spec, strategy, author)
    lines += extra or []
    with _pool(pool) as opened:
        shown = strategy_type.shown(spec, config)
        report = run_filter(
            lines, opened, spec, on_done=on_verified, examples=shown, known=known or []
        )
    return ChallengeResult(n, report)


def _attempt_in_chunks(
    challenger: Challenger,
    spec: ToolsetSpec,
    seeds: list[int],
    log: AttemptLog | None,
    on_attempts: Callable[[int], None] | None,
    n: int,
) -> list[Attempt]:
    """Attempts for ``seeds``, ``config.chunk`` at a time, each chunk saved to ``log`` before
    the next starts; ``on_attempts`` counts all ``n`` attempts, saved ones included."""
    made: list[Attempt] = []
    size = challenger.config.chunk
    for start in range(0, len(seeds), size):
        done = n - len(seeds) + start
        step = (lambda count, done=done: on_attempts(done + count)) if on_attempts else None
        chunk = seeds[start : start + size]
        attempts = challenger.attempt(spec, chunk, on_step=step)
        if [a.seed if isinstance(a, Attempt) else None for a in attempts] != chunk:
            raise ScError(
                f"strategy {challenger.name!r} broke its contract: attempt() must return one "
                "Attempt per seed it is given, in their order"
            )
        if log:
            log.add(attempts, challenger.author)
        made += attempts
    return made


def evaluate(
    tasks: list[CodeAsTask],
    tools: Tools | None = None,
    model: Model = None,
    *,
    k: int = 1,
    agent: AgentConfig | None = None,
    pool: SandboxPool | None = None,
    on_step: Callable[[int], None] | None = None,
) -> EvalReport:
    """Solve each task ``k`` times; ``tools`` None means each task's own toolset spec."""
    with _model(model) as backend, _pool(pool) as opened:
        executor = Agent(backend, agent or AgentConfig())
        return run_episodes(tasks, executor, opened, k, toolset(tools) if tools else None, on_step)


@contextmanager
def _sampler(given: ModelBackend | None, spec: Model) -> Iterator[ModelBackend | None]:
    """The engine training rollouts are sampled from: ``given``, else the model ``spec`` names,
    loaded (and closed) here; None when neither, and the trainer samples from the weights it
    trains."""
    if given is not None or spec is None:
        yield given
        return
    with _model(spec) as backend:
        yield backend


def _closer(backend: ModelBackend | None) -> Callable[[], None]:
    return backend.close if backend is not None else lambda: None


def train(
    tasks: list[CodeAsTask],
    out: str | os.PathLike,
    tools: Tools | None = None,
    model: str | None = None,
    *,
    backend: str | RLBackend = "rft",
    options: dict[str, str] | None = None,
    shaper: str | None = None,
    agent: AgentConfig | None = None,
    pool: SandboxPool | None = None,
    on_metrics: Callable[[dict[str, Any]], None] | None = None,
    on_samples: Callable[[list[Sample]], None] | None = None,
    rollout_model: ModelBackend | None = None,
    release_rollout_model: Callable[[], None] | None = None,
    teacher: Model = None,
) -> Path:
    """Train the executor ``model`` (a checkpoint path, hub id, alias or ``backend:model``
    spec) on ``tasks``; returns the saved checkpoint, which ``sc eval --model DIR`` and
    transformers load.

    Training runs in transformers. Where the spec's backend is another (vLLM, the default
    where it is installed), the first rollouts are sampled from that backend: from
    ``rollout_model`` when the caller already serves the model (``release_rollout_model``
    then frees it once sampling is done), else from one loaded here and closed as soon as
    sampling is done.
    ``teacher``, a stronger model with the same tokenizer, samples them instead (distillation:
    the executor imitates the teacher's successful episodes)."""
    if not tasks:
        raise ScError("no tasks to train on")
    trainer = backend if isinstance(backend, RLBackend) else get_backend(backend, options)
    reward = get_shaper(shaper)  # a mistyped name fails before any pool or model starts
    serving, path = parse_model_spec(model)
    sampler_spec = teacher or (None if serving == "transformers" else f"{serving}:{path}")
    with _pool(pool) as opened, _sampler(rollout_model, sampler_spec) as sampler:
        job = TrainJob(
            tasks=tasks,
            model=lookup("register_models", "model backend", serving).weights_of(path),
            rollout_model=sampler,
            release_rollout_model=release_rollout_model or _closer(sampler),
            out_dir=Path(out),
            pool=opened,
            shaper=reward,
            tools=toolset(tools) if tools else None,
            agent=agent or AgentConfig(),
        )
        if on_metrics:
            job.on_metrics = on_metrics
        if on_samples:
            job.on_samples = on_samples
        return trainer.train(job)
