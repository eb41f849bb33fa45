"""Running model-written code: sandboxes, warm workers, and the tool-call channel.

A :class:`Sandbox` starts isolated worker processes (``sandbox_worker.py``). A :class:`Worker`
keeps one warm and runs jobs through it one at a time: each job forks inside the sandbox, and
its ``tools.x(...)`` calls come back over the pipe to be answered by the host's toolset, so
untrusted code never touches the toolset directly. A :class:`SandboxPool` holds several.

Every failure (timeout, limit, crash, protocol garbage, a dead worker) is an :class:`Outcome`
with a reason, never an exception: the worker is killed and restarted where needed.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

from . import sandbox_worker
from .errors import ScError
from .tools import ToolError, Toolset

WORKER_SCRIPT = Path(sandbox_worker.__file__).resolve()
SAFE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
HOST_GRACE_S = 5.0  # the worker enforces wall_s; the host steps in only if the worker does not
# bwrap's --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that started the worker
# exits, so every worker is started from this one thread, which lives as long as the process.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc-sandbox-spawner")


@dataclass(frozen=True)
class Limits:
    """Bounds on one sandboxed program."""

    wall_s: float = 10.0
    """Wall-clock seconds; the program's whole process tree is killed after it."""
    cpu_s: int = 5
    """CPU seconds."""
    memory_mb: int = 512
    """Address space in MiB."""
    output_kb: int = 64
    """Bytes it may print or write to any one file, in KiB."""
    max_tool_calls: int = 256
    """Tool calls per program."""
    max_message_kb: int = 1024
    """Size of one message (tool call or result) on the channel, in KiB."""


@dataclass
class Outcome:
    """What one program did: its return value, or why it has none."""

    ok: bool
    value: Any = None
    error: str | None = None
    output: str = ""
    tool_calls: int = 0
    calls: list[tuple[str, Any]] = field(default_factory=list)
    """The tool calls within ``max_tool_calls``, in order: ``(tool, arguments)`` as the host
    received them (positional arguments already named). The CaT filter compares solutions by
    them; ``tool_calls`` also counts the refused ones past the limit, kept out of memory."""


class WorkerProcess(ABC):
    """A started sandbox worker: binary pipes to and from it, and a way to kill it."""

    stdin: IO[bytes]
    stdout: IO[bytes]

    @abstractmethod
    def kill(self) -> None:
        """Kill the worker and everything it started; never raises."""

    def diagnostics(self) -> str:
        """What the worker printed on its own stderr, for error messages."""
        return ""

    def alive(self) -> bool:
        """Whether the worker still runs (an idle worker can die, or be killed)."""
        return True


class PopenWorker(WorkerProcess):
    """A worker that is a local process (tree) started from ``argv``."""

    def __init__(self, argv: list[str], cwd: str | None = None, cleanup: str | None = None):
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        self._cleanup = cleanup
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=SAFE_ENV,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            bufsize=0,
        )
        self.stdin, self.stdout = self.process.stdin, self.process.stdout

    def kill(self) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.stdin, self.stdout):
            stream.close()
        if self._cleanup:
            subprocess.run(["rm", "-rf", self._cleanup], check=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def diagnostics(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-500:].decode("utf-8", "replace").strip()


class Sandbox(ABC):
    """A way to start isolated workers. Plugins register subclasses by name."""

    name: ClassVar[str]
    weaker: ClassVar[str | None] = None
    """Set on sandboxes with weaker isolation; shown to the user who picks one."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this sandbox cannot run here (shown to the user), or None when it can."""
        return None

    @abstractmethod
    def start(self) -> WorkerProcess:
        """Start one worker running ``sandbox_worker.py``; it speaks the frame protocol on its
        stdin and stdout."""


class _Broken(Exception):
    """The worker misbehaved or died: it is killed, and the job fails with this reason."""


class _FrameReader:
    def __init__(self, stream: IO[bytes], limit: int):
        self.fd, self.limit, self.buffer = stream.fileno(), limit, b""

    def _fill(self, size: int, deadline: float) -> None:
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                raise _Broken("no answer from the sandbox in time")
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise _Broken("the sandbox worker died")
            self.buffer += chunk

    def read(self, deadline: float) -> dict[str, Any]:
        header_size = sandbox_worker.HEADER.size
        self._fill(header_size, deadline)
        (size,) = sandbox_worker.HEADER.unpack(self.buffer[:header_size])
        if size > self.limit:
            raise _Broken(f"a message of {size} bytes exceeds the {self.limit}-byte limit")
        self._fill(header_size + size, deadline)
        body, self.buffer = (
            self.buffer[header_size : header_size + size],
            self.buffer[header_size + size :],
        )
        try:
            message = json.loads(body)
        except ValueError as error:
            raise _Broken(f"malformed message from the sandbox: {error}") from error
        if not isinstance(message, dict):
            raise _Broken("malformed message from the sandbox: not an object")
        return message


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return sandbox_worker.HEADER.pack(len(body)) + body


_STATUS = {
    "timeout": "wall-clock limit of {wall_s}s exceeded",
    "cpu": "CPU limit of {cpu_s}s exceeded",
    "killed": "killed (memory limit or signal)",
    "forbidden": "killed for a forbidden system call",
    "crashed": "crashed (segmentation fault)",
    "oversized": "sent a message over the {max_message_kb} KiB limit",
    "garbage": "sent a malformed message to the host",
}
_PROTOCOL_ERRORS = ("oversized", "garbage")


class Worker:
    """One warm sandboxed interpreter, started lazily and restarted after any misbehaviour."""

    def __init__(self, sandbox: Sandbox, limits: Limits):
        self.sandbox, self.limits = sandbox, limits
        self._process: WorkerProcess | None = None
        self._reader: _FrameReader | None = None
        self._twin: Worker | None = None

    @property
    def twin(self) -> Worker:
        """A second worker (another process), for runs that must not share this one's process:
        the CaT filter's determinism check."""
        if self._twin is None:
            self._twin = Worker(self.sandbox, self.limits)
        return self._twin

    def run(
        self, source: str, entry: str, args: list[Any], toolset: Toolset | None = None
    ) -> Outcome:
        """Run ``entry(*args)`` from ``source``; with a toolset, ``entry(tools, *args)``."""
        job_id = secrets.token_hex(8)
        tools = None
        if toolset is not None:
            tools = [
                {"name": tool.name, "params": list(tool.parameters.get("properties", {}))}
                for tool in toolset.tools.values()
            ]
        job = {"op": "run", "id": job_id, "source": source, "entry": entry, "args": args}
        job.update(tools=tools, limits=asdict(self.limits))
        try:
            self._ensure_started()
            deadline = time.monotonic() + self.limits.wall_s + HOST_GRACE_S
            self._send(_frame(job), deadline)
            return self._serve(job_id, toolset, deadline)
        except (_Broken, OSError) as error:
            reason = str(error) if isinstance(error, _Broken) else f"sandbox I/O failed: {error}"
            details = self._process.diagnostics() if self._process else ""
            self._stop()
            return Outcome(False, error=reason + (f" ({details})" if details else ""))

    def _ensure_started(self) -> None:
        if self._process is not None and not self._process.alive():
            self._stop()
        if self._process is None:
            self._process = _SPAWNER.submit(self.sandbox.start).result()
            self._reader = _FrameReader(self._process.stdout, self.limits.max_message_kb * 1024)
            os.set_blocking(self._process.stdin.fileno(), False)

    def _send(self, data: bytes, deadline: float) -> None:
        """Write to the worker; a worker that stops reading (while it writes to us: a
        deadlock) is given up at ``deadline``."""
        fd = self._process.stdin.fileno()
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
                raise _Broken("the sandbox stopped reading its input")
            with suppress(BlockingIOError):
                data = data[os.write(fd, data) :]

    def _serve(self, job_id: str, toolset: Toolset | None, deadline: float) -> Outcome:
        outcome = None
        calls = 0
        recorded: list[tuple[str, Any]] = []
        while True:
            message = self._reader.read(deadline)
            op = message.get("op")
            if message.get("id") != job_id:
                raise _Broken("the sandbox answered for another job")
            if op == "call":
                calls += 1
                if calls <= self.limits.max_tool_calls:
                    recorded.append((str(message.get("tool")), message.get("args")))
                self._send(_frame(self._answer(message, toolset, calls)), deadline)
            elif op == "result" and outcome is None:
                outcome = Outcome(bool(message.get("ok")), message.get("value"))
                if not outcome.ok:
                    outcome.error = str(message.get("error", "failed"))[:1000]
            elif op == "done":
                break
            else:
                raise _Broken(f"unexpected message {str(op)[:40]!r} from the sandbox")
        status = str(message.get("status"))
        if outcome is None or status in _PROTOCOL_ERRORS:  # a result then garbage fails too
            reason = _STATUS.get(status, "exited without a result ({status})")
            outcome = Outcome(False, error=reason.format(status=status, **asdict(self.limits)))
        outcome.output = str(message.get("output", ""))
        outcome.tool_calls, outcome.calls = calls, recorded
        return outcome

    def _answer(self, message: dict[str, Any], toolset: Toolset | None, calls: int) -> dict:
        if toolset is None:
            return {"op": "error", "message": "no tools are available here"}
        if calls > self.limits.max_tool_calls:
            return {"op": "error", "message": f"more than {self.limits.max_tool_calls} tool calls"}
        try:
            return {
                "op": "return",
                "value": toolset.call(str(message.get("tool")), message.get("args")),
            }
        except ToolError as error:
            return {"op": "error", "message": str(error)[:2000]}

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None

    def close(self) -> None:
        self._stop()
        if self._twin is not None:
            self._twin.close()


Item = TypeVar("Item")
Result = TypeVar("Result")
PoolJob = Callable[["SandboxPool"], AbstractContextManager[Callable[[Item], Result]]]
"""Work for :meth:`SandboxPool.map`: given a pool, opens a function of one item that runs its
programs with that pool's workers. A job is opened where the pool is, so it must be picklable
(a module-level function or a dataclass) for a pool whose workers are on other machines."""


class SandboxPool:
    """Warm workers shared by threads: ``with pool.worker() as w: w.run(...)``."""

    def __init__(self, sandbox: Sandbox, limits: Limits, size: int):
        self.sandbox, self.limits, self.size = sandbox, limits, size
        self._all = [Worker(sandbox, limits) for _ in range(size)]
        self._idle: queue.Queue[Worker] = queue.Queue()
        for worker in self._all:
            self._idle.put(worker)

    @contextmanager
    def worker(self) -> Iterator[Worker]:
        worker = self._idle.get()
        try:
            yield worker
        finally:
            self._idle.put(worker)

    def map(
        self,
        job: PoolJob[Item, Result],
        items: Sequence[Item],
        on_done: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        """``job`` on every item, ``size`` at a time; results in input order, ``on_done`` on
        each as it comes. A pool spread over a cluster (``cluster.RayPool``) overrides this:
        callers fan out through it, not through ``worker()``, to run wherever the pool is."""

        with job(self) as run, ThreadPoolExecutor(max_workers=self.size) as executor:

            def one(item: Item) -> Result:
                result = run(item)
                if on_done:
                    on_done(result)
                return result

            return list(executor.map(one, items))

    def close(self) -> None:
        for worker in self._all:
            worker.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_sandbox_name() -> str:
    return "bwrap" if sys.platform == "linux" else "subprocess"


def get_sandbox(name: str | None = None) -> Sandbox:
    """The sandbox registered as ``name`` (default: bwrap on Linux), ready to start workers."""
    from .plugins import lookup

    name = name or default_sandbox_name()
    cls = lookup("register_sandboxes", "sandbox", name)
    reason = cls.unavailable()
    if reason:
        raise ScError(f"sandbox {name!r} cannot run here: {reason}")
    return cls()
