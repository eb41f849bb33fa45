"""The docker sandbox driving real workers through sc's Worker, against a fake engine.

The fake (conftest.py) speaks docker's attach protocol over a socket pair and runs the worker
locally, so everything but the engine itself is exercised: the container configuration's
command line and mount, attach-before-start, the stdin and stdout threads and the pipes that
Worker uses, stderr diagnostics, kill, and the error paths.
"""

from __future__ import annotations

import sys
from pathlib import Path

import docker.errors
import pytest
from sc_docker import DockerSandbox, DockerSettings, DockerWorker, container_config
from sc_docker.sandbox import ATTACH

from sc_core.default_plugins.calculator import make_toolset
from sc_core.errors import ScError
from sc_core.sandbox import Limits, SandboxPool, Worker
from sc_core.task import read_tasks
from sc_core.tools import load_toolset
from sc_core.verify import run_filter

REPO = Path(__file__).resolve().parents[3]
SETTINGS = DockerSettings()


def test_a_job_runs_in_a_fresh_container(fake_client):
    client = fake_client()
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    try:
        outcome = worker.run("def f(x):\n    print('hi')\n    return x * 2\n", "f", [21])
    finally:
        worker.close()
    assert outcome.ok, outcome.error
    assert outcome.value == 42
    assert outcome.output.strip() == "hi"
    [container] = client.containers.created
    assert container.config == container_config(SETTINGS)
    assert container.attach_params == ATTACH
    assert container.started


def test_one_warm_container_serves_many_jobs(fake_client):
    client = fake_client()
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    try:
        values = [worker.run(f"def f():\n    return {n}\n", "f", []).value for n in range(5)]
    finally:
        worker.close()
    assert values == [0, 1, 2, 3, 4]
    assert len(client.containers.created) == 1


def test_tool_calls_go_back_to_the_host(fake_client):
    worker = Worker(DockerSandbox(client=fake_client(), settings=SETTINGS), Limits())
    toolset = make_toolset()
    source = "def solve(tools):\n    return tools.multiply(a=tools.add(a=2, b=3), b=4)\n"
    try:
        outcome = worker.run(source, "solve", [], toolset)
    finally:
        worker.close()
    assert outcome.ok, outcome.error
    assert outcome.value == 20
    assert outcome.tool_calls == 2


@pytest.mark.parametrize("frame_size", [1, 8, 1000, 1 << 16])
def test_large_messages_survive_any_framing(fake_client, frame_size):
    client = fake_client(frame_size=frame_size)
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    size = 20_000 if frame_size == 1 else 300_000
    try:
        outcome = worker.run(f"def f(s):\n    return s * {size // 4}\n", "f", ["abcd"])
    finally:
        worker.close()
    assert outcome.ok, outcome.error
    assert outcome.value == "abcd" * (size // 4)


def test_a_runaway_job_is_stopped_and_the_container_lives_on(fake_client):
    client = fake_client()
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits(wall_s=1, cpu_s=1))
    try:
        stuck = worker.run("def f():\n    while True:\n        pass\n", "f", [])
        after = worker.run("def f():\n    return 'fine'\n", "f", [])
    finally:
        worker.close()
    assert not stuck.ok
    assert "limit" in stuck.error
    assert after.value == "fine"
    assert len(client.containers.created) == 1


def test_a_dying_worker_is_a_failed_job_with_its_stderr(fake_client):
    client = fake_client()
    client.containers.argv = [sys.executable, "-c", "import sys; sys.exit('python: not found')"]
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    outcome = worker.run("def f():\n    return 1\n", "f", [])
    assert not outcome.ok
    assert "the sandbox worker died" in outcome.error
    assert "python: not found" in outcome.error
    [container] = client.containers.created
    assert container.remove_calls == 1  # Worker killed it: kill() removes the container


def test_kill_removes_the_container_and_ends_the_demultiplexer(fake_client):
    client = fake_client()
    process = DockerSandbox(client=client, settings=SETTINGS).start()
    assert isinstance(process, DockerWorker)
    process.stdout.fileno()  # Worker selects on it
    process.stdin.fileno()
    process.kill()
    process.kill()  # twice is harmless
    [container] = client.containers.created
    assert container.remove_calls == 1
    assert not any(thread.is_alive() for thread in process._threads)
    assert process.stdout.closed and process.stdin.closed


def test_a_container_that_cannot_be_created_is_a_failed_job(fake_client):
    client = fake_client()
    client.containers.fail_create = docker.errors.APIError("500 Server Error: no space left")
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    outcome = worker.run("def f():\n    return 1\n", "f", [])
    assert not outcome.ok
    assert outcome.error.startswith("sandbox I/O failed: could not start a python:3.12-slim")
    assert "no space left" in outcome.error


def test_a_failed_attach_removes_the_container(fake_client):
    client = fake_client()
    client.containers.fail_attach = docker.errors.APIError("409 Conflict")
    worker = Worker(DockerSandbox(client=client, settings=SETTINGS), Limits())
    outcome = worker.run("def f():\n    return 1\n", "f", [])
    assert not outcome.ok and "409 Conflict" in outcome.error
    [container] = client.containers.created
    assert container.remove_calls == 1 and not container.started


def test_a_missing_image_is_pulled_once(fake_client):
    client = fake_client(present=False)
    DockerSandbox(client=client, settings=SETTINGS)
    DockerSandbox(client=client, settings=SETTINGS)
    assert client.images.pulled == ["python:3.12-slim"]


def test_an_image_that_cannot_be_pulled_is_a_one_line_error(fake_client):
    client = fake_client(present=False, pullable=False)
    with pytest.raises(ScError, match=r"'python:3.12-slim' is not present and could not be pulled"):
        DockerSandbox(client=client, settings=SETTINGS)
    with pytest.raises(ScError, match=r"build one from this Python: python -m sc_docker.image$"):
        DockerSandbox(client=client, settings=SETTINGS)


def test_the_cat_filter_keeps_the_same_tasks_as_the_subprocess_sandbox(fake_client):
    items = list(read_tasks(REPO / "examples" / "calculator_tasks.jsonl"))
    sandbox = DockerSandbox(client=fake_client(), settings=SETTINGS)
    with SandboxPool(sandbox, Limits(), 2) as pool:
        report = run_filter(items, pool, load_toolset("calculator"))
    assert [verdict.id for verdict in report.kept] == ["calc-area", "calc-hypotenuse"]
