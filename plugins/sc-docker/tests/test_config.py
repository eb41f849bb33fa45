"""The container the docker sandbox asks for, its settings, and its errors (no engine needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from sc_docker import DockerSandbox, DockerSettings, container_config
from sc_docker.sandbox import DEFAULT_IMAGE, no_engine_reason

from sc_core.errors import ScError
from sc_core.plugins import registry
from sc_core.sandbox import WORKER_SCRIPT, get_sandbox

REPO = Path(__file__).resolve().parents[3]
NO_ENGINE = "unix:///nonexistent/sc-docker-test.sock"


def create_body(settings: DockerSettings, monkeypatch) -> dict:
    """The JSON body the SDK would POST to /containers/create for our configuration."""
    client = docker.DockerClient(base_url=NO_ENGINE, version="1.45")
    captured = {}

    def create_from_config(config, name=None, platform=None):
        captured["config"] = config
        return {"Id": "c0ffee"}

    monkeypatch.setattr(client.api, "create_container_from_config", create_from_config)
    containers = client.containers  # a new collection at each access: patch this one
    monkeypatch.setattr(containers, "get", lambda container_id: container_id)
    assert containers.create(**container_config(settings)) == "c0ffee"
    return captured["config"]


def test_the_container_is_locked_down(monkeypatch):
    body = create_body(DockerSettings(), monkeypatch)
    host = body["HostConfig"]
    assert body["Image"] == DEFAULT_IMAGE == "python:3.12-slim"
    assert body["Cmd"] == ["python", "-I", "-S", "-B", "/sc/worker.py", "/tmp"]
    assert body["User"] == "65534:65534"  # nobody
    assert sorted(body["Env"]) == ["LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"]
    assert body["Tty"] is False
    assert body["OpenStdin"] is True and body["AttachStdin"] is True
    assert body["StdinOnce"] is True  # the worker sees EOF when sc goes away
    assert host["NetworkMode"] == "none"
    assert host["IpcMode"] == "none"  # no /dev/shm
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host.get("CapAdd") is None
    assert host.get("Privileged") in (None, False)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 64
    assert host["Memory"] == host["MemorySwap"] == 1024**3
    assert host["NanoCpus"] == 10**9
    assert host["AutoRemove"] is True
    assert host["LogConfig"]["Type"] == "none"
    tmpfs = host["Tmpfs"]["/tmp"].split(",")
    assert "size=64m" in tmpfs and "nosuid" in tmpfs and "nodev" in tmpfs
    assert host["Mounts"] == [
        {
            "Target": "/sc/worker.py",
            "Source": str(WORKER_SCRIPT),
            "Type": "bind",
            "ReadOnly": True,
        }
    ]
    assert not host.get("Binds")  # nothing else of the host is visible


def test_no_host_environment_reaches_the_container(monkeypatch):
    monkeypatch.setenv("SC_DOCKER_TEST_SECRET", "hunter2")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    body = create_body(DockerSettings(), monkeypatch)
    assert not any("hunter2" in entry or "proxy" in entry.lower() for entry in body["Env"])


def test_settings_from_the_environment(monkeypatch):
    settings = DockerSettings.from_env(
        {"SC_DOCKER_IMAGE": "python:3.11-alpine", "SC_DOCKER_MEMORY": "512M", "SC_DOCKER_CPUS": "2"}
    )
    assert settings == DockerSettings(image="python:3.11-alpine", memory="512m", cpus=2.0)
    body = create_body(settings, monkeypatch)
    assert body["Image"] == "python:3.11-alpine"
    assert body["HostConfig"]["Memory"] == 512 * 1024**2
    assert body["HostConfig"]["NanoCpus"] == 2 * 10**9


def test_default_settings():
    assert DockerSettings.from_env({}) == DockerSettings()
    assert DockerSettings.from_env({"SC_DOCKER_IMAGE": "  "}).image == DEFAULT_IMAGE


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SC_DOCKER_MEMORY", "lots"),
        ("SC_DOCKER_MEMORY", "0"),
        ("SC_DOCKER_CPUS", "zero"),
        ("SC_DOCKER_CPUS", "-1"),
    ],
)
def test_bad_settings_are_one_line_errors(variable, value):
    with pytest.raises(ScError, match=variable):
        DockerSettings.from_env({variable: value})


def test_registered_as_docker():
    assert registry("register_sandboxes")["docker"] is DockerSandbox


def test_unavailable_names_the_engine_address_and_the_cause(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    reason = DockerSandbox.unavailable()
    assert reason == (
        f"no Docker engine answers at {NO_ENGINE} (No such file or directory); "
        "start Docker, or set DOCKER_HOST to a running one"
    )
    with pytest.raises(ScError, match="sandbox 'docker' cannot run here: no Docker engine"):
        get_sandbox("docker")


def test_no_engine_reason_digs_out_the_os_error():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("Error while fetching server API version: (...)") from inner
    except RuntimeError as error:
        reason = no_engine_reason(error, {"DOCKER_HOST": "tcp://10.0.0.1:2375"})
    assert reason.startswith("no Docker engine answers at tcp://10.0.0.1:2375 (Connection refused)")


def test_cli_without_an_engine_prints_one_line():
    env = dict(os.environ, DOCKER_HOST=NO_ENGINE)
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "sc"),
            "verify",
            str(REPO / "examples" / "calculator_tasks.jsonl"),
            "--sandbox",
            "docker",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "no Docker engine answers" in lines[0]
