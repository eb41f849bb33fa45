"""The CaT filter: which Code-as-Tasks are kept, and at which stage each other one fell.

Stages, in order (the paper reports the survivors of the first three):

1. ``parses``: a well-formed task whose code compiles, defines ``verify(state, answer)`` and
   ``solve(tools)``, and calls only tools the toolset has;
2. ``verify_runs``: the solution runs and calls at least one tool (a task it solves without the
   toolset teaches a tool-using agent nothing), and the verifier runs on its state and answer;
3. ``solution_passes``: the verifier gives the solution full credit;
4. ``failures_fail``: every failure case runs and the verifier does not give it full credit;
5. ``deterministic``: the solution, run again on a fresh reset, gives the same answer and state;
6. ``verifier_strict``: the verifier rejects the wrong answers sc derives from the solution's
   (nudged numbers, empty, None, the wrong type: ``strict.py``) and, where the solution acts,
   the state of a fresh reset; a task's ``lenient`` field names the kinds it allows;
7. ``unique``: no earlier kept task has the same instruction, code, behaviour (tool calls,
   answer and state) or meaning (``dedup.py``).

Each program runs in the sandbox against a freshly reset toolset.
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from . import syntax
from .dedup import Behaviour, behaviour, mark_duplicates, result_digest
from .errors import ScError
from .sandbox import Outcome, SandboxPool, Worker
from .strict import asks_for_answer, derive
from .task import CodeAsTask, TaskLine
from .tools import Toolset, ToolsetSpec, load_toolset

STAGES = (
    "parses",
    "verify_runs",
    "solution_passes",
    "failures_fail",
    "deterministic",
    "verifier_strict",
    "unique",
)


@dataclass
class Verdict:
    """The filter's decision on one task line."""

    id: str
    kept: bool
    stage: str | None = None
    """The stage that rejected it; None when kept."""
    reason: str | None = None
    item: TaskLine | None = None
    behaviour: Behaviour | None = None
    """What the solution of a task that passed the checks did, for the ``unique`` stage."""
    result: str | None = None
    """A digest of the solution's answer and final state, for the ``unique`` stage."""
    environment: str | None = None
    """A digest of the state of a fresh reset for the task's seed, for the ``unique`` stage: tasks
    compare where their environments are equal (every seed of a stateless toolset), not only
    where their seeds are."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kept": self.kept, "stage": self.stage, "reason": self.reason}


@dataclass
class FilterReport:
    """All verdicts, in input order, and the number surviving each stage."""

    verdicts: list[Verdict]

    @property
    def kept(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.kept]

    def stages(self) -> dict[str, int]:
        survived = dict.fromkeys(STAGES, 0)
        for verdict in self.verdicts:
            last = STAGES.index(verdict.stage) if verdict.stage else len(STAGES)
            for stage in STAGES[:last]:
                survived[stage] += 1
        return survived

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": len(self.verdicts),
            "kept": len(self.kept),
            "stages": self.stages(),
            "tasks": [verdict.to_dict() for verdict in self.verdicts],
        }


class Rejected(Exception):
    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def score(value: Any) -> float:
    """A verifier's return value as a score in [0, 1]; anything else is an error."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise ValueError(f"verify returned {json.dumps(value)[:80]}, not a bool or a number in [0, 1]")


def _function(source: str, name: str, arity: int, what: str) -> ast.FunctionDef:
    try:
        tree = syntax.parse(source)
    except SyntaxError as error:
        raise Rejected(
            "parses", f"{what} has a syntax error: {error.msg} (line {error.lineno})"
        ) from error
    except (RecursionError, MemoryError) as error:  # the parser gives up on deep nesting
        raise Rejected("parses", f"{what} is nested too deeply to parse") from error
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            if len(node.args.posonlyargs) + len(node.args.args) != arity:
                raise Rejected("parses", f"{what}: {name}() must take {arity} argument(s)")
            return node
    raise Rejected("parses", f"{what} does not define {name}()")


def _check_tools(source: str, node: ast.FunctionDef, toolset: Toolset, what: str) -> None:
    tools_param = (node.args.posonlyargs + node.args.args)[0].arg
    for sub in ast.walk(syntax.parse(source)):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == tools_param
            and sub.attr not in toolset.tools
        ):
            raise Rejected("parses", f"{what} calls unknown tool {sub.attr!r}")


def check_code(task: CodeAsTask, toolset: Toolset) -> None:
    """Stage 1 beyond the JSON: the code compiles, has the right functions, knows the tools."""
    _function(task.verify, "verify", 2, "verify")
    for what, source in [("solution", task.solution)] + [
        (f"failure case {n}", failure) for n, failure in enumerate(task.failures, 1)
    ]:
        _check_tools(source, _function(source, "solve", 1, what), toolset, what)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class TaskChecker:
    """Runs every stage but ``unique`` on one task at a time; thread-safe, one toolset instance
    per thread."""

    def __init__(self, pool: SandboxPool, tools: ToolsetSpec | None = None):
        self.pool, self.tools = pool, tools
        self._specs: dict[str, ToolsetSpec | ScError] = {}
        self._local = threading.local()
        self._created: list[Toolset] = []
        self._lock = threading.Lock()

    def _toolset(self, spec: str) -> Toolset:
        if self.tools is not None:
            spec = self.tools.spec
        with self._lock:
            if spec not in self._specs:
                try:
                    self._specs[spec] = self.tools if self.tools else load_toolset(spec)
                except ScError as error:
                    self._specs[spec] = error
        loaded = self._specs[spec]
        if isinstance(loaded, ScError):
            raise Rejected("parses", f"toolset {spec!r}: {loaded}")
        instances = self._local.__dict__.setdefault("toolsets", {})
        if spec not in instances:
            try:
                instances[spec] = loaded.create()
            except Exception as error:  # a toolset that fails to start rejects its tasks only
                raise Rejected("parses", f"toolset {spec!r} failed to start: {error}") from error
            with self._lock:
                self._created.append(instances[spec])
        return instances[spec]

    def close(self) -> None:
        """Close every toolset instance the checker's threads created."""
        for toolset in self._created:
            with suppress(Exception):
                toolset.close()
        self._created.clear()

    def check(self, item: TaskLine) -> Verdict:
        try:
            if item.task is None:
                raise Rejected("parses", item.error or "not a task")
            done, result, environment = self._check(item.task)
        except Rejected as rejection:
            return Verdict(item.id, False, rejection.stage, rejection.reason, item)
        return Verdict(item.id, True, None, None, item, done, result, environment)

    def _solve(
        self, worker: Worker, toolset: Toolset, task: CodeAsTask, source: str | None, stage: str
    ):
        """Run ``source`` on a fresh reset (None: run nothing, for the state of a fresh reset);
        the toolset's own failures reject at ``stage``."""
        try:
            toolset.reset(task.seed)
        except Exception as error:
            raise Rejected(
                stage, f"the toolset failed to reset to seed {task.seed}: {_describe(error)}"
            ) from error
        outcome = worker.run(source, "solve", [], toolset) if source is not None else None
        try:
            return outcome, toolset.state()
        except ScError as error:  # not JSON data: the message names the bad value
            raise Rejected(stage, str(error)) from error
        except Exception as error:
            raise Rejected(stage, f"the toolset's state() failed: {_describe(error)}") from error

    def _check(self, task: CodeAsTask) -> tuple[Behaviour | None, str, str]:
        """Every stage but ``unique`` on ``task``; what its solution did, the digest of its
        result, and that of its environment (the state of a fresh reset)."""
        toolset = self._toolset(task.toolset)
        check_code(task, toolset)
        with self.pool.worker() as worker:
            solved, state = self._solve(worker, toolset, task, task.solution, "verify_runs")
            if not solved.ok:
                raise Rejected("verify_runs", f"solution: {solved.error}")
            if not solved.tool_calls:
                raise Rejected("verify_runs", "the solution calls no tool: the task needs none")
            try:
                solution_score = run_verifier(worker, task.verify, state, solved.value)
            except ValueError as error:
                raise Rejected("verify_runs", str(error)) from error
            if solution_score < 1:
                answer = json.dumps(solved.value)[:80]
                raise Rejected(
                    "solution_passes",
                    f"verify gave the solution {solution_score:g} (answer {answer})",
                )
            expected = _canonical([solved.value, state])  # what a copy and a rerun give
            for number, failure in enumerate(task.failures, 1):
                failed, failed_state = self._solve(worker, toolset, task, failure, "failures_fail")
                if not failed.ok:
                    raise Rejected("failures_fail", f"failure case {number}: {failed.error}")
                try:
                    failure_score = run_verifier(worker, task.verify, failed_state, failed.value)
                except ValueError:
                    failure_score = 0.0  # a verifier that chokes on a wrong answer rejects it
                if failure_score >= 1:
                    same = _canonical([failed.value, failed_state]) == expected
                    # a copy of the solution (the usual case with small challengers) says nothing
                    # of the verifier: say so, rather than leave it to look lenient
                    copy = ": it gives the solution's answer and state" if same else ""
                    raise Rejected("failures_fail", f"failure case {number} passes verify{copy}")
            # in another process: ids, hashes and addresses differ between processes, not runs
            again, again_state = self._solve(
                worker.twin, toolset, task, task.solution, "deterministic"
            )
            if not again.ok or _canonical([again.value, again_state]) != expected:
                raise Rejected("deterministic", "a second run of the solution gave another result")
            fresh = self._check_strict(worker, toolset, task, solved.value, state)
        environment = hashlib.sha256(_canonical(fresh).encode()).hexdigest()
        result = result_digest(solved.value, state)
        return behaviour(solved.calls, solved.value, state), result, environment

    def _check_strict(
        self, worker: Worker, toolset: Toolset, task: CodeAsTask, answer: Any, state: Any
    ) -> Any:
        """Stage ``verifier_strict``: the verifier rejects the wrong answers derived from the
        solution's and, where the solution changed the state, its answer with the state of a
        fresh reset; all in one sandbox job. A verifier that ignores the answer (accepts every
        derived one) is right only for an action it checks, on an instruction asking no answer.
        Returns the state of a fresh reset."""
        derived = [
            item for item in derive(answer, task.instruction) if item.kind not in task.lenient
        ]
        fresh = self._solve(worker, toolset, task, None, "verifier_strict")[1]
        acted = "state" not in task.lenient and _canonical(fresh) != _canonical(state)
        cases = [[0, item.value] for item in derived] + ([[1, answer]] if acted else [])
        try:
            passed = run_verifier_cases(worker, task.verify, [state, fresh], cases)
        except ValueError as error:
            raise Rejected("verifier_strict", str(error)) from error
        if acted and passed.pop():
            raise Rejected(
                "verifier_strict",
                f"verifier too lenient: accepted the solution's answer {_short(answer)} with the "
                "state of a fresh reset (it does not check that the action happened)",
            )
        accepted = [item for item, ok in zip(derived, passed, strict=True) if ok]
        ignores_answer = len(accepted) == len(derived)
        if accepted and not (acted and ignores_answer and not asks_for_answer(task.instruction)):
            raise Rejected(
                "verifier_strict",
                f"verifier too lenient: accepted {_short(accepted[0].value)} "
                f"(the solution's answer {_short(answer)}, {accepted[0].how})",
            )
        return fresh


VERIFY_EACH = """
def verify_each(source, states, cases):
    # Whether verify(states[i], answer) gives full credit, for each [i, answer] in cases. Each
    # case gets a fresh copy of the verifier and of the state, so none sees another's changes;
    # one that raises, or returns anything but full credit, did not pass.
    import copy
    passed = []
    for index, answer in cases:
        namespace = {"__name__": "__task__", "__builtins__": __builtins__}
        try:
            exec(compile(source, "<task>", "exec"), namespace)
            value = namespace["verify"](copy.deepcopy(states[index]), answer)
        except BaseException:
            value = None
        passed.append(value is True or (type(value) in (int, float) and value == 1))
    return passed
"""
"""The sandboxed program that runs a verifier on many (state, answer) cases in one job: the
``verifier_strict`` stage costs one round trip, not one per derived answer."""


def run_verifier_cases(
    worker: Worker, verify: str, states: list[Any], cases: list[list[Any]]
) -> list[bool]:
    """Whether ``verify`` gives full credit to each ``[state index, answer]`` case, in one
    sandbox job; ValueError if the job fails (a verifier that hangs on a wrong answer)."""
    if not cases:
        return []
    outcome: Outcome = worker.run(VERIFY_EACH, "verify_each", [verify, states, cases])
    passed = outcome.value
    if not outcome.ok:
        raise ValueError(f"verify failed on sc's wrong answers: {outcome.error}")
    if not (isinstance(passed, list) and len(passed) == len(cases)):
        raise ValueError("verify tampered with the check of sc's wrong answers")
    return [value is True for value in passed]


def _short(value: Any) -> str:
    return json.dumps(value)[:80]


def run_verifier(worker: Worker, verify: str, state: dict, answer: Any) -> float:
    """The score ``verify(state, answer)`` gives, run in the sandbox; ValueError if it fails."""
    outcome: Outcome = worker.run(verify, "verify", [state, answer])
    if not outcome.ok:
        raise ValueError(f"verify: {outcome.error}")
    return score(outcome.value)


@dataclass(frozen=True)
class CheckTasks:
    """Every stage but ``unique``, as a job for :meth:`SandboxPool.map`: opened in each
    process that holds a pool (one per node of a Ray cluster), where it builds that process's
    checker and toolset instances, and closes them when the work is done."""

    tools: ToolsetSpec | None = None

    @contextmanager
    def __call__(self, pool: SandboxPool) -> Iterator[Callable[[TaskLine], Verdict]]:
        checker = TaskChecker(pool, self.tools)
        try:
            yield checker.check
        finally:
            checker.close()


def run_filter(
    items: Iterable[TaskLine],
    pool: SandboxPool,
    tools: ToolsetSpec | None = None,
    on_done: Callable[[Verdict], None] | None = None,
    examples: Sequence[CodeAsTask] = (),
    known: Sequence[CodeAsTask] = (),
) -> FilterReport:
    """Check every task with the pool's workers in parallel; verdicts keep the input order.
    ``unique`` compares every task with every other, so it runs here, after the others.
    ``examples``, the tasks a challenger was shown, and ``known`` tasks, kept before, are not
    new: a copy of one is a duplicate."""
    verdicts = pool.map(CheckTasks(tools), list(items), on_done)
    mark_duplicates(verdicts, tools.spec if tools else None, examples, known)
    return FilterReport(verdicts)
