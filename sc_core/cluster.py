"""A sandbox pool spread over a Ray cluster: what ``--ray [ADDRESS]`` opens.

Only ``api.open_pool`` imports this module, and only when Ray is asked for, so sc without Ray
installed never imports it. A :class:`RayPool` is a :class:`~sc_core.sandbox.SandboxPool`
whose :meth:`~RayPool.map` runs the job on every node: one actor per node holds a pool of
that node's own sandbox workers (the same sandbox plugin and the same :class:`Limits` as the
driver's, so isolation does not change with the node), opens the job there and runs items
through it. The CaT filter's per-task checks and the verifier scoring of episodes fan out this
way; what needs every result (the ``unique`` stage) stays on the driver.

Episodes themselves stay on the driver: their cost is the model's, which a GPU engine or a set
of inference servers carries, and their toolset instances live beside the agent loop that calls
them turn by turn.

A node or an actor process that dies takes its in-flight items with it: they go back to the
queue and run on another node (the actor restarts, and takes work again once it is back), so
every item still gets its result.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .errors import ScError
from .sandbox import Item, Limits, PoolJob, Result, SandboxPool, get_sandbox
from .tools import ToolsetSpec, load_toolset

LOCAL = "local"
"""``--ray`` with no address: start a cluster on this machine for the command, stop it after."""
ATTEMPTS = 3
"""Times one item may be lost with a dead node before the whole map fails."""
_LOST = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class NodePool:
    """One node's sandbox workers, running the items the driver sends through jobs it opens
    once per node. Its CPUs are the sandbox workers', so the actor itself reserves none (and
    can restart on any node when its own dies)."""

    def __init__(self, sandbox: str, limits: Limits, size: int, cwd: str):
        with suppress(OSError):  # relative task and toolset paths resolve as on the driver
            os.chdir(cwd)
        self.problem: str | None = None
        try:
            self.pool = SandboxPool(get_sandbox(sandbox), limits, size)
        except ScError as error:
            self.problem = str(error)
        self.jobs: dict[str, tuple[ExitStack, Callable[[Any], Any]]] = {}
        self.lock = threading.Lock()

    def ready(self) -> tuple[int, str | None]:
        """This actor's process id, and why it cannot run sandboxes (None when it can)."""
        return os.getpid(), self.problem

    def run(self, token: str, job: PoolJob, item: Any) -> Any:
        with self.lock:
            if token not in self.jobs:
                stack = ExitStack()
                self.jobs[token] = (stack, stack.enter_context(job(self.pool)))
        return self.jobs[token][1](item)

    def finish(self, token: str) -> None:
        with self.lock:
            opened = self.jobs.pop(token, None)
        if opened:
            opened[0].close()

    def close(self) -> None:
        for token in list(self.jobs):
            self.finish(token)
        if not self.problem:
            self.pool.close()


@dataclass
class _Node:
    actor: Any
    slots: int
    """Items in flight at once: twice the node's workers, so none waits for the round trip."""
    running: int = 0


class RayPool(SandboxPool):
    """Sandbox workers on every node of a Ray cluster; ``worker()`` still lends the driver's
    own (``size`` of them, started only if asked for)."""

    def __init__(self, sandbox: str | None, limits: Limits, size: int, address: str = LOCAL):
        super().__init__(get_sandbox(sandbox), limits, size)
        self._owns_connection = connect(address)
        self.nodes: list[_Node] = []
        self.requeued = 0
        """Items that went back to the queue because their node died."""
        try:
            self._start_nodes()
        except BaseException:
            self.close()
            raise

    def _start_nodes(self) -> None:
        cwd = os.getcwd()
        for node in ray.nodes():
            cpus = int(node["Resources"].get("CPU", 0)) if node["Alive"] else 0
            if cpus < 1:
                continue
            place = NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
            options = {"scheduling_strategy": place, "max_concurrency": cpus}
            actor = NodePool.options(**options).remote(self.sandbox.name, self.limits, cpus, cwd)
            self.nodes.append(_Node(actor, 2 * cpus))
        if not self.nodes:
            raise ScError("the Ray cluster has no node with a CPU to run sandboxes on")
        for node in self.nodes:
            _, problem = ray.get(node.actor.ready.remote())
            if problem:
                raise ScError(f"a Ray node cannot run the sandbox: {problem}")

    def pids(self) -> list[int]:
        """The process id of each node's actor (a test kills one to see nothing is lost)."""
        return [ray.get(node.actor.ready.remote())[0] for node in self.nodes]

    def map(
        self,
        job: PoolJob[Item, Result],
        items: Sequence[Item],
        on_done: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        """``job`` on every item, across the cluster; results in input order. Each node takes
        a new item as one of its own finishes, so a faster node takes more."""
        token, shipped = secrets.token_hex(8), ray.put(job)
        results: list[Any] = [None] * len(items)
        todo, lost = deque(range(len(items))), Counter()
        running: dict[Any, tuple[int, _Node]] = {}
        try:
            while todo or running:
                for node in self.nodes:
                    while todo and node.running < node.slots:
                        index = todo.popleft()
                        ref = node.actor.run.remote(token, shipped, items[index])
                        running[ref], node.running = (index, node), node.running + 1
                [ref], _ = ray.wait(list(running), num_returns=1)
                index, node = running.pop(ref)
                node.running -= 1
                try:
                    results[index] = ray.get(ref)
                except _LOST as error:
                    lost[index] += 1
                    if lost[index] >= ATTEMPTS:
                        raise ScError(
                            f"item {index} was lost with a Ray node {ATTEMPTS} times: "
                            f"{_first_line(error)}"
                        ) from error
                    todo.appendleft(index)
                    self.requeued += 1
                    continue
                except ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None
                if on_done:
                    on_done(results[index])
        finally:
            for node in self.nodes:
                node.actor.finish.remote(token)
                node.running = 0
        return results

    def close(self) -> None:
        super().close()
        for node in self.nodes:
            with suppress(ray.exceptions.RayError):
                ray.get(node.actor.close.remote(), timeout=30)
            ray.kill(node.actor)
        self.nodes = []
        if self._owns_connection:
            ray.shutdown()
            self._owns_connection = False


def connect(address: str) -> bool:
    """Connect to the cluster at ``address`` (``LOCAL``: start one here); whether this call
    made the connection, and so is the one to shut it down. A connection the application
    already made is used as it is."""
    if ray.is_initialized():
        return False
    check_reachable(address)
    ray.util.register_serializer(ToolsetSpec, serializer=_pack_spec, deserializer=_unpack_spec)
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == LOCAL:
        options["include_dashboard"] = False
    on_term = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise ScError(f"could not reach the Ray cluster at {address!r}: {error}") from error
    finally:
        # Ray's driver takes SIGTERM over (it dumps a stack and dies); sc's own handler
        # unwinds, so the pool closes and a cluster started here is shut down
        if on_term is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_term)
    _cluster_messages_to_stderr()
    return True


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """A one-line error for a ``HOST:PORT`` nobody answers at: ``ray.init`` would retry such
    an address for minutes without a word on why (``local`` and ``auto`` are not probed)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if address in (LOCAL, "auto") or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ScError(f"could not reach the Ray cluster at {address!r}: {reason}") from None


def _cluster_messages_to_stderr() -> None:
    """Ray's driver prints what the cluster reports (``(raylet) A worker died ...``) on
    stdout, where ``--json`` output goes; sc sends it to stderr, with its other messages."""
    from ray._private import worker

    show = getattr(worker, "print_to_stdstream", None)  # not public: absent, nothing to do
    if show is None or getattr(show, "sc_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        show(data | {"is_err": True}, ignore_prefix)

    to_stderr.sc_stderr = True
    worker.print_to_stdstream = to_stderr


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _pack_spec(spec: ToolsetSpec) -> tuple[str, Any]:
    """A toolset spec as it travels to a node: a toolset loaded from a file by path is loaded
    again there from the same (absolute) path, since its module cannot be imported by name;
    any other travels with its factory."""
    whole = spec.spec.endswith(".py")
    target, colon, attr = (spec.spec, "", "") if whole else spec.spec.partition(":")
    if target.endswith(".py") or "/" in target:
        return str(Path(target).resolve()) + colon + attr, None
    return spec.spec, spec.factory


def _unpack_spec(packed: tuple[str, Any]) -> ToolsetSpec:
    spec, factory = packed
    return load_toolset(spec) if factory is None else ToolsetSpec(spec, factory)
