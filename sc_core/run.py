"""The self-challenge loop and its run directory.

Each iteration: the challenger writes tasks → the CaT filter keeps some → the executor is
evaluated → (optionally) the learnability filter picks the tasks worth training on → the RL
backend trains → the new checkpoint is evaluated. Every phase leaves one file under
``iterations/NNN/`` and counts as done when that file exists, so ``--resume`` after a kill
repeats only the phase that was cut; a cut challenge phase keeps the attempts it saved
(``attempts.jsonl``, a chunk at a time). The files at the top of the run directory
(``tasks.jsonl``, ``rejected.jsonl``, ``metrics.jsonl``) are rebuilt from the phase files after
each phase, so they are always whole and always agree with them.

With ``curriculum`` on, the challenger of iteration 2 and later is told how the executor did
on the tasks of the last iteration that checked learnability: which it solved (almost)
always, sometimes or (almost) never, with a few of each, and asked for tasks in the learnable
band (:data:`LEARNABLE`). What it was told is saved as ``curriculum.json``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import api, distributed, diversity
from .agent import AgentConfig
from .challenge import ChallengeConfig
from .errors import ScError
from .models import (
    ModelBackend,
    default_challenger,
    default_model,
    load_model,
    parse_model_spec,
)
from .plugins import lookup
from .sandbox import SandboxPool
from .task import CodeAsTask, TaskLine, read_tasks, write_json, write_jsonl, write_text
from .train import Sample, learnable


@dataclass
class RunConfig:
    """Every setting of a run; saved as ``config.toml`` and read back by ``--resume``."""

    tools: str
    """The toolset spec."""
    model: str = field(default_factory=default_model)
    """The starting executor, ``[backend:]model``; training always runs in transformers. The
    default is resolved when the run is made, so its config.toml (and a resume) names it."""
    name: str = ""
    """The run directory is ``runs/<name>``."""
    iterations: int = 1
    tasks_per_iteration: int = 48
    """Challenger attempts per iteration."""
    strategy: str = ""
    """Challenger strategy; empty: :func:`sc_core.api.default_strategy` (``seeded`` where the
    toolset ships example tasks, else ``explore``), resolved when the run is made."""
    challenger_model: str | None = None
    """A fixed model that writes the tasks (distillation); empty: the executor's. None: the
    executor's paired challenger (:func:`sc_core.models.default_challenger`), resolved when
    the config is made."""
    teacher: str = ""
    """A stronger model whose training rollouts the executor learns from (distillation; its
    tokenizer must be the executor's); empty: the executor's own rollouts."""
    challenger_follows: bool = True
    """With no challenger model: the challenger is the latest checkpoint (else the start model)."""
    constrained: bool = False
    """Grammar-constrained decoding of the tasks (vllm backends)."""
    challenge_chunk: int = ChallengeConfig.chunk
    """Challenger attempts generated, then saved, together (a cut challenge phase keeps the
    chunks it saved); more keeps a GPU busier."""
    backend: str = "rft"
    """RL backend: ``rft`` (the paper's main setting) or ``grpo``."""
    options: dict[str, str] = field(default_factory=dict)
    """The RL backend's settings, ``key = "value"``."""
    shaper: str = "binary"
    """Reward shaper."""
    learnability: bool = False
    """Train only on tasks the executor solves sometimes but not always."""
    learnability_k: int = 4
    """Samples per task for the learnability filter."""
    curriculum: bool = False
    """From iteration 2 on, tell the challenger which of its recent tasks the executor solved
    always, sometimes or never, and ask for tasks it solves sometimes. The pass rates are the
    learnability check's, so this turns ``learnability`` on."""
    tasks: str = ""
    """A task file added to the first iteration's candidates (for example from a stronger
    challenger); its tasks pass the same filter."""
    eval_tasks: str = ""
    """A fixed evaluation set; empty: a held-out split of the generated tasks."""
    holdout: float = 0.25
    """Share of each iteration's kept tasks held out for evaluation (without ``eval_tasks``)."""
    eval_k: int = 2
    """Episodes per evaluation task (pass@k)."""
    max_turns: int = 6
    """Assistant turns per episode, and the challenger's exploration turns."""
    max_new_tokens: int = 256
    """Tokens per assistant turn (exploration turns included)."""
    max_total_tokens: int = AgentConfig.max_total_tokens
    """Prompt plus everything after it, per episode (explorations included)."""
    answer_protocol: str = AgentConfig.answer_protocol
    """How the executor is told to answer (``sc_core.toolcalls.ANSWER_PROTOCOLS``)."""
    task_tokens: int = 640
    """Tokens for each task the challenger writes."""
    temperature: float = 0.7
    seed: int = 0
    sandbox: str = ""
    workers: int = 2
    timeout: float = 10.0
    ray: str = ""
    """A Ray cluster's address for the filter and the verifiers (``local``: one started for
    the run); empty: the local pool."""
    processes: int = 1
    """Training processes (one per GPU; gloo on CPU): the training phase runs ``sc train``
    under ``accelerate launch``."""
    accelerate_config: str = ""
    """An accelerate config file for the training processes (e.g. DeepSpeed ZeRO-2)."""

    def __post_init__(self) -> None:
        if self.challenger_model is None:
            self.challenger_model = default_challenger(self.model)
        if self.curriculum:  # its pass rates come from the learnability check
            self.learnability = True

    def agent(self) -> AgentConfig:
        return AgentConfig(
            max_turns=self.max_turns,
            max_new_tokens=self.max_new_tokens,
            max_total_tokens=self.max_total_tokens,
            temperature=self.temperature,
            answer_protocol=self.answer_protocol,
        )

    def to_toml(self) -> str:
        lines, tables = [], []
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                tables += [f"\n[{key}]"] + [f"{k} = {json.dumps(v)}" for k, v in value.items()]
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines + tables) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> RunConfig:
        data = tomllib.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Events:
    """How the loop reports progress; the CLI draws progress bars from these."""

    phase: Callable[[int, str], None] = lambda iteration, phase: None
    """A phase starts (``challenge``, ``filter``, ``eval-before``, ...)."""
    progress: Callable[[int, int], None] = lambda done, total: None
    """Work done in the current phase."""
    note: Callable[[str], None] = lambda message: None
    """Something the user should know (a skipped phase and why)."""


class RunDir:
    """The files of one run."""

    def __init__(self, path: Path):
        self.path = path

    def iteration(self, number: int) -> Path:
        return self.path / "iterations" / f"{number:03d}"

    def checkpoint(self, number: int) -> Path:
        return self.path / "checkpoints" / f"iter-{number:03d}"

    def trajectories(self, number: int, phase: str) -> Path:
        return self.path / "trajectories" / f"iter-{number:03d}-{phase}.jsonl"

    def rebuild(self, iterations: int) -> None:
        """Top-level tasks, rejections and metrics, from the phase files."""
        tasks, rejected, metrics = [], [], []
        for number in range(1, iterations + 1):
            folder = self.iteration(number)
            tasks += [row | {"iteration": number} for row in _rows(folder / "kept.jsonl")]
            rejected += [row | {"iteration": number} for row in _rows(folder / "rejected.jsonl")]
            metrics += _metrics(folder, number)
        write_jsonl(self.path / "tasks.jsonl", tasks)
        write_jsonl(self.path / "rejected.jsonl", rejected)
        write_jsonl(self.path / "metrics.jsonl", metrics)


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _metrics(folder: Path, number: int) -> list[dict[str, Any]]:
    """The figures the report plots, one row per fact, each tagged with its kind."""
    rows = []
    if (filtered := _load(folder / "filter.json")) is not None:
        rows.append({"kind": "filter", "iteration": number} | filtered)
    for when in ("before", "after"):
        if (result := _load(folder / f"eval-{when}.json")) is not None:
            summary = {key: value for key, value in result.items() if key != "tasks"}
            rows.append({"kind": "eval", "iteration": number, "when": when} | summary)
    if (learn := _load(folder / "learnability.json")) is not None:
        rows.append({"kind": "learnability", "iteration": number} | learn)
    if (trained := _load(folder / "train.json")) is not None:
        steps = trained.get("steps", [])
        rows += [{"kind": "train", "iteration": number} | step for step in steps]
        rows.append({"kind": "train_summary", "iteration": number} | {
            key: value for key, value in trained.items() if key != "steps"
        })  # fmt: skip
    return rows


class Run:
    """One self-challenge run; :meth:`go` runs (or resumes) every iteration."""

    def __init__(self, config: RunConfig, root: Path, events: Events | None = None):
        self.config = config
        self.dir = RunDir(root)
        self.events = events or Events()
        self._serving: tuple[str, ModelBackend] | None = None

    @classmethod
    def create(cls, config: RunConfig, runs: Path = Path("runs"), **kwargs: Any) -> Run:
        root = runs / config.name
        if root.exists() and any(root.iterdir()):
            raise ScError(f"{root} already exists: pass --resume, or choose another --name")
        config.strategy = config.strategy or api.default_strategy(config.tools)
        validate(config)
        write_text(root / "config.toml", config.to_toml())
        return cls(config, root, **kwargs)

    @classmethod
    def resume(cls, root: Path, iterations: int | None = None, **kwargs: Any) -> Run:
        """The run saved in ``root``; ``iterations``, when given, replaces its count (saved),
        so that a finished run can go on for more."""
        path = root / "config.toml"
        if not path.is_file():
            raise ScError(f"{root} is not a run directory (no config.toml)")
        try:
            config = RunConfig.from_toml(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, TypeError) as error:
            raise ScError(f"{path}: {error}") from None
        if iterations is not None and iterations != config.iterations:
            config.iterations = iterations
            validate(config)
            write_text(path, config.to_toml())
        return cls(config, root, **kwargs)

    def go(self) -> dict[str, Any]:
        """Run every iteration not yet done; returns the summary ``sc run --json`` prints."""
        with api.open_pool(
            self.config.sandbox or None,
            self.config.workers,
            self.config.timeout,
            self.config.ray or None,
        ) as pool:
            try:
                for number in range(1, self.config.iterations + 1):
                    self.iterate(number, pool)
            finally:
                self.release()
        return self.summary()

    def serve(self, spec: str) -> ModelBackend:
        """The loaded model ``spec`` names. One engine serves every phase that uses the same
        model (an iteration's challenge, evaluation, learnability check and first training
        rollouts) instead of one start per phase, which costs about a minute for vLLM on a
        CPU; loading another model closes it."""
        if self._serving is None or self._serving[0] != spec:
            self.release()
            self._serving = (spec, load_model(spec))
        return self._serving[1]

    def release(self) -> None:
        """Close the model :meth:`serve` holds, if any."""
        if self._serving is not None:
            backend = self._serving[1]
            self._serving = None
            backend.close()

    def summary(self) -> dict[str, Any]:
        iterations = []
        for number in range(1, self.config.iterations + 1):
            folder = self.dir.iteration(number)
            before = _load(folder / "eval-before.json") or {}
            after = _load(folder / "eval-after.json") or {}
            iterations.append(
                {
                    "iteration": number,
                    "kept": len(_rows(folder / "kept.jsonl")),
                    "pass_at_1_before": before.get("pass_at_1"),
                    "pass_at_1_after": after.get("pass_at_1"),
                }
            )
        return {"run_dir": str(self.dir.path), "iterations": iterations}

    # --- one iteration -------------------------------------------------------------------

    def iterate(self, number: int, pool: SandboxPool) -> None:
        folder = self.dir.iteration(number)
        folder.mkdir(parents=True, exist_ok=True)
        start = self.model_for(number)
        self.challenge(number, folder, pool)
        eval_set = self.eval_set(number)
        before = folder / "eval-before.json"
        # the last iteration's "after" evaluated this same model
        last = self.dir.iteration(number - 1) / "eval-after.json"
        self.evaluate(number, before, start, eval_set, pool, last)
        train_set = self.train_set(number, folder, start, pool)
        self.train(number, folder, start, train_set, pool)
        trained = self.model_for(number + 1)
        same = before if trained == start else None  # nothing trained: nothing changed
        self.evaluate(number, folder / "eval-after.json", trained, eval_set, pool, same)

    def model_for(self, number: int) -> str:
        """The executor at the start of iteration ``number``: the last saved checkpoint, with
        the backend the run's model spec names."""
        for earlier in range(number - 1, 0, -1):
            trained = _load(self.dir.iteration(earlier) / "train.json")
            if trained and trained.get("checkpoint"):
                backend, model = parse_model_spec(self.config.model)
                served = lookup("register_models", "model backend", backend)
                return f"{backend}:{served.with_weights(model, trained['checkpoint'])}"
        return self.config.model

    def _phase(self, number: int, name: str) -> None:
        self.events.phase(number, name)

    def challenge(self, number: int, folder: Path, pool: SandboxPool) -> None:
        if (folder / "filter.json").is_file():
            return
        config = self.config
        writer = config.challenger_model or (
            self.model_for(number) if config.challenger_follows else config.model
        )
        self._phase(number, "challenge")
        extra = self.extra_tasks() if number == 1 else []
        guidance = self.curriculum(number, folder)
        needs_model = api.strategy_class(config.strategy).needs_model
        result = api.challenge(
            config.tools,
            config.tasks_per_iteration,
            self.serve(writer) if needs_model else None,
            strategy=config.strategy,
            config=ChallengeConfig(
                explore_turns=config.max_turns,
                explore_tokens=config.max_new_tokens,
                explore_total_tokens=config.max_total_tokens,
                max_new_tokens=config.task_tokens,
                temperature=config.temperature,
                constrained=config.constrained,
                chunk=config.challenge_chunk,
                guidance=guidance,
            ),
            seed=config.seed + 100_000 * number,
            pool=pool,
            on_attempts=lambda done: self.events.progress(done, config.tasks_per_iteration),
            extra=extra,
            attempts_file=folder / "attempts.jsonl",
            known=self.kept_before(number),
        )
        kept = result.kept
        heldout = [] if config.eval_tasks else self.split(kept, number)
        write_jsonl(folder / "kept.jsonl", [task.to_dict() for task in kept])
        write_jsonl(folder / "heldout.jsonl", [task.to_dict() for task in heldout])
        write_jsonl(folder / "rejected.jsonl", result.rejected)
        figures = {"extra_tasks": len(extra), "diversity": diversity.measure(result.kept)}
        write_json(folder / "filter.json", result.to_dict() | figures)
        (folder / "attempts.jsonl").unlink(missing_ok=True)  # the phase files hold them all
        self.dir.rebuild(number)

    def curriculum(self, number: int, folder: Path) -> str:
        """The challenger's guidance for iteration ``number`` (saved as ``curriculum.json``):
        empty without ``curriculum``, and before any iteration has checked learnability."""
        if not self.config.curriculum:
            return ""
        for earlier in range(number - 1, 0, -1):
            source = self.dir.iteration(earlier)
            if (learn := _load(source / "learnability.json")) is not None:
                instructions = {
                    row["id"]: row["instruction"] for row in _rows(source / "kept.jsonl")
                }
                guidance = curriculum_guidance(learn["rates"], instructions, learn["k"])
                write_json(
                    folder / "curriculum.json", {"from_iteration": earlier, "guidance": guidance}
                )
                return guidance
        return ""

    def extra_tasks(self) -> list[TaskLine]:
        if not self.config.tasks:
            return []
        return list(read_tasks(self.config.tasks))

    def split(self, kept: list[CodeAsTask], number: int) -> list[CodeAsTask]:
        """A seeded share of the kept tasks, held out for evaluation (at least one when two or
        more survive, so that training keeps the rest)."""
        if len(kept) < 2 or self.config.holdout <= 0:
            return []
        size = max(1, round(len(kept) * self.config.holdout))
        return random.Random(self.config.seed + number).sample(kept, min(size, len(kept) - 1))

    def tasks_in(self, name: str, last: int) -> list[CodeAsTask]:
        """The tasks of iterations 1 to ``last`` in their ``name`` files (``kept.jsonl``...)."""
        rows = []
        for number in range(1, last + 1):
            rows += _rows(self.dir.iteration(number) / name)
        return [CodeAsTask.from_dict(row) for row in rows]

    def kept_before(self, number: int) -> list[CodeAsTask]:
        """The tasks earlier iterations kept (held out ones too): iteration 2 of a calculator
        run kept, among its 4, the same tax question as iteration 1 and a reworded one."""
        return self.tasks_in("kept.jsonl", number - 1)

    def eval_set(self, number: int) -> list[CodeAsTask]:
        if self.config.eval_tasks:
            return [line.task for line in read_tasks(self.config.eval_tasks) if line.task]
        return self.tasks_in("heldout.jsonl", number)

    def evaluate(
        self,
        number: int,
        target: Path,
        model: str,
        tasks: list[CodeAsTask],
        pool: SandboxPool,
        same: Path | None = None,
    ) -> None:
        """Evaluate ``model`` into ``target`` (``eval-before.json`` or ``eval-after.json``),
        unless ``same``, a result of the same model, covers the same tasks."""
        if target.is_file():
            return
        when = target.stem.removeprefix("eval-")
        if not tasks:
            self.events.note(f"iteration {number}: no evaluation tasks yet; eval-{when} skipped")
            write_json(target, {"pass_at_1": None, "pass_at_k": None, "k": 0, "tasks": []})
            self.dir.rebuild(number)
            return
        previous = _load(same) if same else None
        if previous and sorted(row["id"] for row in previous["tasks"]) == sorted(
            task.id for task in tasks
        ):
            write_json(target, previous)
            self.dir.rebuild(number)
            return
        self._phase(number, f"eval-{when}")
        total = len(tasks) * self.config.eval_k
        report = api.evaluate(
            tasks,
            self.config.tools,
            self.serve(model),
            k=self.config.eval_k,
            agent=self.config.agent(),
            pool=pool,
            on_step=lambda done: self.events.progress(done, total),
        )
        write_jsonl(self.dir.trajectories(number, when), [s.to_dict() for s in report.scored])
        write_json(target, report.to_dict() | {"n_tasks": len(tasks)})
        self.dir.rebuild(number)

    def train_set(
        self, number: int, folder: Path, model: str, pool: SandboxPool
    ) -> list[CodeAsTask]:
        heldout = {row["id"] for row in _rows(folder / "heldout.jsonl")}
        evaluated = {" ".join(task.instruction.lower().split()) for task in self.eval_set(number)}
        tasks = [
            CodeAsTask.from_dict(row)
            for row in _rows(folder / "kept.jsonl")
            if row["id"] not in heldout
            and " ".join(row["instruction"].lower().split()) not in evaluated
        ]
        if not self.config.learnability or not tasks:
            return tasks
        target = folder / "learnability.json"
        if not target.is_file():
            self._phase(number, "learnability")
            k = self.config.learnability_k
            report = api.evaluate(
                tasks,
                self.config.tools,
                self.serve(model),
                k=k,
                agent=self.config.agent(),
                pool=pool,
                on_step=lambda done: self.events.progress(done, len(tasks) * k),
            )
            write_jsonl(self.dir.trajectories(number, "learnability"), [
                s.to_dict() for s in report.scored
            ])  # fmt: skip
            write_json(target, learnable(report, tasks).to_dict())
            self.dir.rebuild(number)
        rates = _load(target)["rates"]
        return [task for task in tasks if 0 < rates.get(task.id, 0) < 1]

    def train(
        self,
        number: int,
        folder: Path,
        model: str,
        tasks: list[CodeAsTask],
        pool: SandboxPool,
    ) -> None:
        target = folder / "train.json"
        if target.is_file():
            return
        if not tasks:
            reason = "no task to train on" + (
                " after the learnability filter" if (folder / "learnability.json").is_file() else ""
            )
            self.events.note(f"iteration {number}: {reason}; the executor stays as it was")
            write_json(target, {"skipped": reason, "checkpoint": None, "tasks": 0, "steps": []})
            self.dir.rebuild(number)
            return
        self._phase(number, "train")
        checkpoint = self.dir.checkpoint(number)
        partial = checkpoint.with_name(checkpoint.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        steps: list[dict[str, Any]] = []
        samples_path = self.dir.trajectories(number, "train")
        samples: list[dict[str, Any]] = []

        def on_samples(batch: list[Sample]) -> None:
            samples.extend(sample.to_dict() for sample in batch)
            write_jsonl(samples_path, samples)

        launched = self.config.processes > 1 or bool(self.config.accelerate_config)
        if launched:
            self.release()  # each process samples from the copy it trains
            steps = self.train_in_processes(tasks, folder, partial, model, samples_path)
        elif self.config.teacher:
            sampler = self.serve(self.config.teacher)
        elif parse_model_spec(model)[0] == "transformers":
            self.release()  # the trainer samples from the copy it trains; no second copy
            sampler = None
        else:
            sampler = self.serve(model)
        if not launched:
            api.train(
                tasks,
                partial,
                self.config.tools,
                model,
                backend=self.config.backend,
                options=self.config.options,
                shaper=self.config.shaper,
                agent=self.config.agent(),
                pool=pool,
                on_metrics=steps.append,
                on_samples=on_samples,
                rollout_model=sampler,
                release_rollout_model=self.release,
            )
        self.release()  # the starting model is done with; the next phase uses the new one
        if steps and not any(step.get("trained", True) for step in steps):
            # no step changed the weights (rft with no successful rollout): keep no copy, so
            # that the next phases reuse the starting model and its evaluation
            shutil.rmtree(partial, ignore_errors=True)
            reason = "no training step changed the weights (no rollout succeeded)"
            self.events.note(f"iteration {number}: {reason}; the executor stays as it was")
            write_json(
                target, {"skipped": reason, "checkpoint": None, "tasks": len(tasks), "steps": steps}
            )
            self.dir.rebuild(number)
            return
        shutil.rmtree(checkpoint, ignore_errors=True)
        partial.rename(checkpoint)
        write_json(
            target,
            {"checkpoint": str(checkpoint.resolve()), "tasks": len(tasks), "steps": steps},
        )
        self.dir.rebuild(number)

    def train_in_processes(
        self, tasks: list[CodeAsTask], folder: Path, out: Path, model: str, samples: Path
    ) -> list[dict[str, Any]]:
        """The training phase as ``sc train`` under ``accelerate launch`` (``processes``,
        ``accelerate_config``) with this run's settings; its rank 0 alone writes the
        checkpoint, the trajectories and the metrics, returned here as the steps."""
        config = self.config
        tasks_path = folder / "train-tasks.jsonl"
        write_jsonl(tasks_path, [task.to_dict() for task in tasks])
        line = ["train", str(tasks_path), "--out", str(out), "--trajectories", str(samples)]
        # each process samples from the weights it trains, in transformers
        line += ["--model", f"transformers:{parse_model_spec(model)[1]}"]
        line += ["--backend", config.backend, "--shaper", config.shaper]
        for key, value in config.options.items():
            line += ["--option", f"{key}={value}"]
        line += ["--max-turns", str(config.max_turns)]
        line += ["--max-new-tokens", str(config.max_new_tokens)]
        line += ["--max-total-tokens", str(config.max_total_tokens)]
        line += ["--answer-protocol", config.answer_protocol]
        line += ["--workers", str(config.workers), "--timeout", str(config.timeout)]
        for flag, value in (("--tools", config.tools), ("--teacher", config.teacher)):
            line += [flag, value] if value else []
        line += ["--sandbox", config.sandbox] if config.sandbox else []
        command = distributed.launch_command(
            line, config.processes, config.accelerate_config or None
        )
        env = os.environ | {distributed.LAUNCHED: "1"}
        # its stdout (the checkpoint line) to stderr: sc run --json prints JSON alone
        done = subprocess.run(command, env=env, stdout=sys.stderr)
        if done.returncode != 0:
            raise ScError(
                f"training in {config.processes} processes failed (exit {done.returncode})"
            )
        metrics = out / "train_metrics.jsonl"
        steps = _rows(metrics)
        metrics.unlink()
        return steps


LEARNABLE = (0.2, 0.8)
"""Pass rates of the tasks the curriculum asks for: solved sometimes, so that training on
them has something to learn (a task solved always or never gives every rollout the same
reward)."""

BANDS = (
    ("almost always (too easy)", lambda rate: rate > LEARNABLE[1]),
    ("sometimes (the right difficulty)", lambda rate: LEARNABLE[0] <= rate <= LEARNABLE[1]),
    ("almost never (too hard)", lambda rate: rate < LEARNABLE[0]),
)
"""How the curriculum groups the executor's pass rates, in the words the challenger reads."""


def curriculum_guidance(
    rates: dict[str, float], instructions: dict[str, str], k: int, examples: int = 3
) -> str:
    """What the curriculum tells the challenger: how many of its recent tasks (``rates``, by
    id, over ``k`` tries) the executor solved almost always, sometimes or almost never, up to
    ``examples`` instructions of each, shortened, and a request for tasks of the right
    difficulty. Only instructions are shown, so it says the same for any toolset."""
    tried = [(instructions[key], rate) for key, rate in rates.items() if key in instructions]
    if not tried:
        return ""
    low, high = (round(100 * bound) for bound in LEARNABLE)
    times = "once" if k == 1 else f"{k} times"
    lines = [f"The executor tried each of your last {len(tried)} tasks {times}."]
    for label, within in BANDS:
        group = [text for text, rate in tried if within(rate)]
        lines.append(f"It solved {len(group)} of them {label}" + (":" if group else "."))
        lines += [f"- {_shorten(text)}" for text in group[:examples]]
    lines.append(
        "Write a task of the right difficulty: one the executor would solve in "
        f"{low}% to {high}% of its tries, harder than the first group and easier than the last."
    )
    return "\n".join(lines)


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def validate(config: RunConfig) -> None:
    """Fail before any work on a setting that would fail later."""
    from .train import get_backend, get_shaper

    api.toolset(config.tools)
    api.strategy_class(config.strategy)
    get_backend(config.backend, config.options)
    get_shaper(config.shaper)
    for path in (config.tasks, config.eval_tasks):
        if path and not Path(path).is_file():
            raise ScError(f"no such task file: {path}")
    if config.iterations < 1 or config.tasks_per_iteration < 0:
        raise ScError("--iterations must be at least 1 and --tasks-per-iteration at least 0")
    if config.challenge_chunk < 1:
        raise ScError("--challenge-chunk must be at least 1")
