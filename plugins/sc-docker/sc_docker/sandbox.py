"""The ``docker`` sandbox: each worker is a locked-down container, driven over its attach stream.

The container runs sc's stdlib-only worker (``sc_core/sandbox_worker.py``, bind-mounted read-only
at ``/sc/worker.py``) with the image's Python, as ``python -I -S -B /sc/worker.py /tmp``. It has no
network, a read-only root file system, a small private ``/tmp``, no capabilities, no new
privileges, the ``nobody`` user, limits on memory, CPU and processes, and an environment that
holds only ``PATH`` and ``LANG`` beyond what the image itself declares (nothing of the host's).
Inside, the worker still forks each job with its own resource limits and seccomp filter.

The host talks to the worker over the container's attach socket, behind two ``os.pipe`` pairs so
that :class:`sc_core.sandbox.Worker` sees the same plain pipes as with a local process: one
thread copies the stdin pipe onto the socket; the output comes back multiplexed (no TTY), so
another splits it into the stdout pipe and a tail of stderr (for error messages). The
container is created with ``StdinOnce`` and ``AutoRemove``: if sc dies, its stdin closes, the
worker exits and the engine removes the container.

Settings (environment variables): ``SC_DOCKER_IMAGE`` (default ``python:3.12-slim``; any image
with ``python`` 3.10+ on its PATH), ``SC_DOCKER_MEMORY`` (default ``1g``), ``SC_DOCKER_CPUS``
(default ``1``). The engine is found the way the docker SDK finds it (``DOCKER_HOST``, else
``unix:///var/run/docker.sock``).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sc_core.errors import ScError
from sc_core.sandbox import WORKER_SCRIPT, Sandbox, WorkerProcess

from .stream import pump

DEFAULT_IMAGE = "python:3.12-slim"
CONTAINER_WORKER = "/sc/worker.py"
CONTAINER_WORKDIR = "/tmp"
CONTAINER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
COMMAND = ["python", "-I", "-S", "-B", CONTAINER_WORKER, CONTAINER_WORKDIR]
NOBODY = "65534:65534"  # nobody:nogroup, by number so that images without /etc/passwd work
LABEL = "sc.sandbox"
PIDS_LIMIT = 64  # the worker, its job's child and their threads
TMPFS_MB = 64
PING_TIMEOUT_S = 5
API_TIMEOUT_S = 60
STDERR_TAIL = 4096
ATTACH = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
_MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _root_cause(error: BaseException) -> BaseException:
    """The innermost OS error behind an SDK error (``No such file or directory``, ...)."""
    seen: set[int] = set()
    pending, found = [error], error
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current
        pending += [current.__cause__, current.__context__]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending = [item for item in pending if item is not None]
    return found


def engine_address(environ: Mapping[str, str] | None = None) -> str:
    """Where the SDK looks for the engine: ``DOCKER_HOST``, else the default Unix socket."""
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def no_engine_reason(error: BaseException, environ: Mapping[str, str] | None = None) -> str:
    cause = _root_cause(error)
    detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else None
    return (
        f"no Docker engine answers at {engine_address(environ)} "
        f"({detail or _one_line(error, 200)}); start Docker, or set DOCKER_HOST to a running one"
    )


@dataclass(frozen=True)
class DockerSettings:
    """What the containers look like; :meth:`from_env` reads the ``SC_DOCKER_*`` variables."""

    image: str = DEFAULT_IMAGE
    memory: str = "1g"
    """Memory (and memory+swap) limit of one container, in docker's notation: ``512m``, ``2g``."""
    cpus: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DockerSettings:
        environ = os.environ if environ is None else environ
        image = environ.get("SC_DOCKER_IMAGE", "").strip() or DEFAULT_IMAGE
        memory = environ.get("SC_DOCKER_MEMORY", "").strip() or cls.memory
        if not _MEMORY.match(memory):
            raise ScError(f"SC_DOCKER_MEMORY={memory!r} is not a size such as 512m or 2g")
        raw_cpus = environ.get("SC_DOCKER_CPUS", "").strip()
        try:
            cpus = float(raw_cpus) if raw_cpus else cls.cpus
        except ValueError:
            cpus = -1.0
        if not 0 < cpus <= 1024:
            raise ScError(f"SC_DOCKER_CPUS={raw_cpus!r} is not a positive number of CPUs")
        return cls(image=image, memory=memory.lower(), cpus=cpus)


def container_config(
    settings: DockerSettings, worker_script: str | os.PathLike = WORKER_SCRIPT
) -> dict[str, Any]:
    """The keyword arguments of ``client.containers.create`` for one worker container."""
    from docker.types import Mount

    return {
        "image": settings.image,
        "command": list(COMMAND),
        "user": NOBODY,
        "environment": dict(CONTAINER_ENV),
        "use_config_proxy": False,  # no proxy variables from ~/.docker/config.json either
        "working_dir": CONTAINER_WORKDIR,
        "hostname": "sandbox",
        "labels": {LABEL: "worker"},
        # stdin open, no TTY; not detached, so that the engine sets StdinOnce: the worker's
        # stdin closes when sc's attach connection does, and the worker exits
        "stdin_open": True,
        "tty": False,
        "detach": False,
        "auto_remove": True,
        "network_mode": "none",
        "ipc_mode": "none",  # a private IPC namespace without /dev/shm: /tmp is all it can write
        "read_only": True,
        "tmpfs": {CONTAINER_WORKDIR: f"rw,nosuid,nodev,size={TMPFS_MB}m,mode=1777"},
        # a bind Mount (not a volume string): a missing source is an error, never an empty dir
        "mounts": [
            Mount(
                CONTAINER_WORKER,
                str(Path(worker_script).resolve()),
                type="bind",
                read_only=True,
            )
        ],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": PIDS_LIMIT,
        "mem_limit": settings.memory,
        "memswap_limit": settings.memory,
        "nano_cpus": int(settings.cpus * 1e9),
        "log_config": {"type": "none"},  # the protocol is not worth a copy in the engine's logs
    }


def _docker_client(timeout: int):
    import docker

    return docker.from_env(timeout=timeout)


def _raw_socket(attached: Any) -> Any:
    """The socket under what ``attach_socket`` returned (a SocketIO on Unix sockets)."""
    sock = getattr(attached, "_sock", attached)
    for method in ("recv", "sendall", "fileno"):
        if not callable(getattr(sock, method, None)):
            raise OSError(f"the docker attach stream has no {method}() ({type(sock).__name__})")
    return sock


class DockerWorker(WorkerProcess):
    """A started worker container: binary ``stdin``/``stdout`` pipes over its attach socket.

    Both ends the host sees are plain pipes, as with a local process: :class:`~sc_core.sandbox.
    Worker` may select on them, set them non-blocking and ``os.write``/``os.read`` them, none of
    which must touch the socket that two threads share. One thread feeds the stdin pipe into
    the socket; the other splits the socket's multiplexed output into the stdout pipe.
    """

    def __init__(self, container: Any, attached: Any):
        self.container = container
        self._attached = attached  # holds the SDK's HTTP response, which owns the connection
        self._socket = _raw_socket(attached)
        with suppress(AttributeError, OSError):
            self._socket.settimeout(None)  # the API timeout must not end an idle worker
        stdout_r, self._stdout_w = os.pipe()
        self._stdin_r, stdin_w = os.pipe()
        self.stdout = os.fdopen(stdout_r, "rb", buffering=0)
        self.stdin = os.fdopen(stdin_w, "wb", buffering=0)
        self._stderr = bytearray()
        self._lock = threading.Lock()
        self._end: str | None = None
        self._killed = False
        self._threads = [
            threading.Thread(target=self._demultiplex, name="sc-docker-out", daemon=True),
            threading.Thread(target=self._feed, name="sc-docker-in", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _demultiplex(self) -> None:
        try:
            self._end = pump(self._socket.recv, self._stdout_w, self._on_stderr)
        finally:
            os.close(self._stdout_w)  # the reader now sees end-of-file

    def _feed(self) -> None:
        try:
            while data := os.read(self._stdin_r, 1 << 16):
                self._socket.sendall(data)
            with suppress(OSError):  # the host closed stdin: so does the container's
                self._socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the container is gone; the host's next write fails on the closed pipe
        finally:
            os.close(self._stdin_r)

    def _on_stderr(self, data: bytes) -> None:
        with self._lock:
            self._stderr += data
            del self._stderr[:-STDERR_TAIL]

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        # Connection first: an engine blocked writing output nobody reads (a job that floods
        # and never reads its replies) holds the container's removal until the API timeout.
        with suppress(Exception):
            self._socket.shutdown(socket.SHUT_RDWR)  # ends recv and sendall in the threads
        for stream in (self.stdout, self.stdin):  # and a thread blocked on a full pipe
            with suppress(OSError):
                stream.close()
        with suppress(Exception):
            self.container.remove(force=True)
        for thread in self._threads:
            thread.join(timeout=5)
        for closeable in (self._attached, self._socket):
            with suppress(Exception):
                closeable.close()

    def diagnostics(self) -> str:
        with self._lock:
            stderr = bytes(self._stderr).decode("utf-8", "replace").strip()
        parts = [self._end] if self._end else []
        if stderr:
            parts.append(stderr[-500:])
        return "; ".join(parts)


class DockerStartError(OSError):
    """A worker container could not be created, attached to or started."""


class DockerSandbox(Sandbox):
    """Workers in containers: no network, read-only root, no capabilities, user nobody."""

    name = "docker"

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            import docker  # noqa: F401
        except ImportError:
            return "the docker package is missing; pip install sc-docker"
        try:
            client = _docker_client(PING_TIMEOUT_S)
        except Exception as error:
            return no_engine_reason(error)
        try:
            client.ping()
        except Exception as error:
            return no_engine_reason(error)
        finally:
            with suppress(Exception):
                client.close()
        return None

    def __init__(self, client: Any = None, settings: DockerSettings | None = None):
        self.settings = settings or DockerSettings.from_env()
        if client is None:
            try:
                client = _docker_client(API_TIMEOUT_S)
            except Exception as error:
                raise ScError(f"cannot reach the Docker engine: {_one_line(error)}") from error
        self.client = client
        self._ensure_image()

    def _ensure_image(self) -> None:
        from docker.errors import ImageNotFound

        image = self.settings.image
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        except Exception as error:
            raise ScError(f"cannot inspect docker image {image!r}: {_one_line(error)}") from error
        try:
            self.client.images.pull(image)
        except Exception as error:
            raise ScError(
                f"docker image {image!r} is not present and could not be pulled "
                f"({_one_line(error)}); pull it, set SC_DOCKER_IMAGE to an image with python, "
                "or build one from this Python: python -m sc_docker.image"
            ) from error

    def start(self) -> DockerWorker:
        """Create, attach to and start one worker container.

        Attaching before starting means no output can be missed, and the SDK's HTTP reader has
        nothing buffered past the response headers. Any failure is an ``OSError``, which the
        :class:`~sc_core.sandbox.Worker` turns into a failed job with the reason.
        """
        container = worker = None
        try:
            container = self.client.containers.create(**container_config(self.settings))
            worker = DockerWorker(container, container.attach_socket(params=dict(ATTACH)))
            container.start()
            return worker
        except Exception as error:
            if worker is not None:
                worker.kill()
            elif container is not None:
                with suppress(Exception):
                    container.remove(force=True)
            raise DockerStartError(
                f"could not start a {self.settings.image} container: {_one_line(error)}"
            ) from error
