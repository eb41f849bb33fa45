"""End to end against a real Docker engine: jobs through sc's Worker, in real containers.

Skipped, with the reason, where no engine answers (``DOCKER_HOST`` or the default socket), except
where ``SC_REQUIRE_DOCKER=1`` (CI, which starts an engine) makes that a failure. The first run
pulls ``SC_DOCKER_IMAGE`` (default python:3.12-slim) if the engine lacks it; CI builds its image
with ``python -m sc_docker.image`` instead, as no registry answers there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sc_docker import DockerSandbox, DockerSettings
from sc_docker.image import build_image
from sc_docker.sandbox import LABEL

from sc_core.default_plugins.calculator import make_toolset
from sc_core.sandbox import Limits, Worker

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def sandbox() -> DockerSandbox:
    reason = DockerSandbox.unavailable()
    if reason and os.environ.get("SC_REQUIRE_DOCKER") == "1":
        pytest.fail(f"SC_REQUIRE_DOCKER=1, but {reason}")
    if reason:
        pytest.skip(f"docker sandbox end-to-end tests: {reason}")
    return DockerSandbox()


@pytest.fixture
def worker(sandbox):
    worker = Worker(sandbox, Limits(wall_s=20))
    yield worker
    worker.close()


def run(worker: Worker, body: str, *args):
    source = "def f(*args):\n" + "".join(f"    {line}\n" for line in body.splitlines())
    outcome = worker.run(source, "f", list(args))
    assert outcome.ok, outcome.error
    return outcome.value


def wait_gone(sandbox: DockerSandbox, container_id: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not sandbox.client.containers.list(all=True, filters={"id": container_id}):
            return True
        time.sleep(0.2)
    return False


def test_a_job_runs_and_calls_host_tools(worker):
    assert run(worker, "return sum(args)", 1, 2, 3) == 6
    value = run(worker, "import sys\nreturn sys.version_info[:2]")
    assert tuple(value) >= (3, 10)
    outcome = worker.run(
        "def solve(tools):\n    return tools.sqrt(x=tools.add(a=81, b=0))\n",
        "solve",
        [],
        make_toolset(),
    )
    assert outcome.ok, outcome.error
    assert (outcome.value, outcome.tool_calls) == (9, 2)


def test_the_container_is_isolated(worker, monkeypatch):
    monkeypatch.setenv("SC_DOCKER_TEST_HOST_ONLY", "secret")  # before the container starts
    seen = run(
        worker,
        """import os
facts = {"uid": os.getuid(), "gid": os.getgid(), "env": sorted(os.environ)}
try:
    open("/etc/sc-probe", "w")
    facts["root_writable"] = True
except OSError:
    facts["root_writable"] = False
facts["writable"] = []
for folder in ("/", "/etc", "/usr", "/dev", "/dev/shm", "/var/tmp", "/run", "/sc"):
    try:
        with open(folder.rstrip("/") + "/sc-probe", "w"):
            facts["writable"].append(folder)
    except OSError:
        pass
with open("/tmp/probe", "w") as handle:
    handle.write("ok")
facts["tmp_writable"] = True
facts["worker_mode"] = oct(os.stat("/sc/worker.py").st_mode & 0o777)
try:
    open("/sc/worker.py", "a")
    facts["worker_writable"] = True
except OSError:
    facts["worker_writable"] = False
with open("/proc/self/status") as handle:
    caps = [line.split()[1] for line in handle if line.startswith("CapEff")]
facts["cap_eff"] = caps[0]
return facts""",
    )
    assert (seen["uid"], seen["gid"]) == (65534, 65534)
    assert seen["root_writable"] is False
    assert seen["tmp_writable"] is True
    assert seen["writable"] == []  # /tmp is the only writable place
    assert seen["worker_writable"] is False
    assert int(seen["cap_eff"], 16) == 0
    assert "SC_DOCKER_TEST_HOST_ONLY" not in seen["env"]


def test_no_network_interfaces_but_loopback(worker):
    interfaces = run(worker, "import os\nreturn sorted(os.listdir('/sys/class/net'))")
    assert interfaces in (["lo"], [])


def test_close_removes_the_container(sandbox):
    worker = Worker(sandbox, Limits())
    assert run(worker, "return 1") == 1
    container_id = worker._process.container.id
    worker.close()
    assert wait_gone(sandbox, container_id), f"container {container_id} exists after close()"
    leftovers = sandbox.client.containers.list(all=True, filters={"label": LABEL})
    assert container_id not in [container.id for container in leftovers]


def test_sc_verify_with_the_docker_sandbox(sandbox):
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "sc"),
            "verify",
            str(REPO / "examples" / "calculator_tasks.jsonl"),
            "--sandbox",
            "docker",
            "--workers",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kept = [task["id"] for task in report["tasks"] if task["kept"]]
    assert kept == ["calc-area", "calc-hypotenuse"]


def test_limits_hold_inside_the_container(sandbox):
    worker = Worker(sandbox, Limits(wall_s=2, cpu_s=1))
    try:
        spin = worker.run("def f():\n    while True:\n        pass\n", "f", [])
        fork = worker.run("def f():\n    import os\n    return os.fork()\n", "f", [])
        after = worker.run("def f():\n    return 'alive'\n", "f", [])
    finally:
        worker.close()
    assert not spin.ok and "limit" in spin.error
    assert not fork.ok
    assert after.value == "alive"


def test_a_killed_host_leaves_no_container(sandbox):
    script = (
        "import os, signal\n"
        "from sc_core.sandbox import Limits, Worker\n"
        "from sc_docker import DockerSandbox\n"
        "worker = Worker(DockerSandbox(), Limits())\n"
        "assert worker.run('def f():\\n    return 1\\n', 'f', []).value == 1\n"
        "print(worker._process.container.id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    container_id = result.stdout.strip()
    assert container_id, result.stderr
    assert wait_gone(sandbox, container_id), f"container {container_id} outlived its host"


def test_the_local_image_is_built_without_a_registry_and_runs_jobs(sandbox):
    tag = f"sc-sandbox:test-{uuid.uuid4().hex[:8]}"
    image_id = build_image(sandbox.client, tag)
    try:
        image = sandbox.client.images.get(tag)
        assert image.id == image_id and not image.attrs["Parent"]  # imported, from nothing
        built = DockerSandbox(sandbox.client, DockerSettings(image=tag))
        worker = Worker(built, Limits(wall_s=20))
        try:
            assert (
                tuple(run(worker, "import sys\nreturn sys.version_info[:3]"))
                == sys.version_info[:3]
            )
            assert run(worker, "import os\nreturn os.path.exists('/etc/passwd')") is False
        finally:
            worker.close()
    finally:
        sandbox.client.images.remove(tag, force=True)
