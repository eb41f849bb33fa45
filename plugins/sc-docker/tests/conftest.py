"""A fake Docker engine that speaks the real attach protocol, for testing without Docker.

:class:`FakeContainer` runs the worker command from the container configuration as a local
process (``python`` is this interpreter, the mounted worker script its host source, ``/tmp`` a
temporary folder) and multiplexes its stdout and stderr into docker frames on a socket pair,
split into small frames and odd-sized writes so that every path of the demultiplexer is used.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from contextlib import suppress
from itertools import count
from typing import Any

import docker.errors
import pytest
from sc_docker.sandbox import CONTAINER_WORKDIR, CONTAINER_WORKER
from sc_docker.stream import STDERR, STDOUT, frame


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "engine: needs a running Docker engine (and pulls SC_DOCKER_IMAGE); skipped where none "
        "answers, failed instead under SC_REQUIRE_DOCKER=1 (CI)",
    )


class FakeContainer:
    _ids = count(1)

    def __init__(self, config: dict[str, Any], frame_size: int, argv: list[str] | None = None):
        self.config, self.frame_size, self.argv = config, frame_size, argv
        self.id = f"fake{next(self._ids)}"
        self.started = self.removed = False
        self.remove_calls = 0
        self.attach_params: dict | None = None
        self.process: subprocess.Popen | None = None
        self._engine, self._host = socket.socketpair()
        self._send_lock = threading.Lock()
        self._workdir = tempfile.mkdtemp(prefix="sc-fake-container-")

    def attach_socket(self, params: dict) -> Any:
        self.attach_params = params
        return socket.SocketIO(self._host, "rwb")  # what the SDK returns on a Unix socket

    def _command(self) -> list[str]:
        source = self.config["mounts"][0]["Source"]
        mapping = {"python": sys.executable, CONTAINER_WORKER: source}
        mapping[CONTAINER_WORKDIR] = self._workdir
        return [mapping.get(arg, arg) for arg in self.config["command"]]

    def start(self) -> None:
        assert self.attach_params is not None, "attach before start, or output may be lost"
        self.started = True
        self.process = subprocess.Popen(
            self.argv or self._command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.config["environment"],
            cwd=self._workdir,
            bufsize=0,
        )
        outputs = [
            threading.Thread(target=self._copy_out, args=(self.process.stdout, STDOUT)),
            threading.Thread(target=self._copy_out, args=(self.process.stderr, STDERR)),
        ]
        for thread in [threading.Thread(target=self._copy_in), *outputs]:
            thread.daemon = True
            thread.start()
        threading.Thread(target=self._end_stream, args=(outputs,), daemon=True).start()

    def _copy_in(self) -> None:
        try:
            while data := self._engine.recv(65536):
                self.process.stdin.write(data)
        except OSError:
            pass
        finally:  # StdinOnce: the client went away, the worker's stdin closes
            self.process.stdin.close()

    def _copy_out(self, pipe, stream: int) -> None:
        try:
            while data := pipe.read(65536):
                for start in range(0, len(data), self.frame_size):
                    piece = frame(stream, data[start : start + self.frame_size])
                    with self._send_lock:  # frames of two streams never interleave mid-frame
                        self._engine.sendall(piece[:5])
                        self._engine.sendall(piece[5:])
        except OSError:
            pass

    def _end_stream(self, outputs: list[threading.Thread]) -> None:
        for thread in outputs:
            thread.join()
        self.process.wait()
        with suppress(OSError):
            self._engine.shutdown(socket.SHUT_WR)
        if self.config.get("auto_remove"):
            self.removed = True

    def remove(self, force: bool = False) -> None:
        assert force
        self.remove_calls += 1
        self.removed = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with suppress(OSError):
            self._engine.shutdown(socket.SHUT_RDWR)
        self._engine.close()
        shutil.rmtree(self._workdir, ignore_errors=True)


class FakeImages:
    def __init__(self, present: bool, pullable: bool):
        self.present, self.pullable, self.pulled = present, pullable, []

    def get(self, name: str) -> str:
        if not self.present:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return name

    def pull(self, name: str) -> str:
        if not self.pullable:
            raise docker.errors.APIError(f"pull access denied for {name}")
        self.pulled.append(name)
        self.present = True
        return name


class FakeContainers:
    def __init__(self, frame_size: int):
        self.frame_size = frame_size
        self.created: list[FakeContainer] = []
        self.fail_create: Exception | None = None
        self.fail_attach: Exception | None = None
        self.argv: list[str] | None = None

    def create(self, **config: Any) -> FakeContainer:
        if self.fail_create:
            raise self.fail_create
        container = FakeContainer(config, self.frame_size, self.argv)
        if self.fail_attach:
            error = self.fail_attach

            def attach_socket(params):
                raise error

            container.attach_socket = attach_socket
        self.created.append(container)
        return container


class FakeClient:
    def __init__(self, frame_size: int = 4096, present: bool = True, pullable: bool = True):
        self.images = FakeImages(present, pullable)
        self.containers = FakeContainers(frame_size)


@pytest.fixture
def fake_client():
    """A fake engine; its containers are all removed afterwards."""
    clients: list[FakeClient] = []

    def make(**kwargs: Any) -> FakeClient:
        clients.append(FakeClient(**kwargs))
        return clients[-1]

    yield make
    for client in clients:
        for container in client.containers.created:
            if not container.removed or (container.process and container.process.poll() is None):
                container.remove(force=True)
