"""Shared fixtures of the sc-trl tests: a few real calculator tasks, a small toolset that keeps
prompts short (CPU training time grows with them), and a sandbox pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import CodeAsTask, read_tasks
from sc_core.tools import Tool, Toolset, ToolsetSpec

EVALS = Path(__file__).resolve().parents[3] / "evals"
MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)


@pytest.fixture(scope="session")
def calculator_tasks() -> list[CodeAsTask]:
    """The calculator evaluation tasks (their verifiers check the answer only)."""
    return [item.task for item in read_tasks(EVALS / "calculator.jsonl") if item.task]


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@pytest.fixture(scope="session")
def add_toolset() -> ToolsetSpec:
    """A one-tool toolset: the calculator tasks with a system prompt a third as long."""
    return ToolsetSpec("add", lambda: Toolset([Tool.from_function(add)]))


@pytest.fixture(scope="session")
def sandbox_pool():
    """One warm sandbox worker for the whole session (a generous wall limit: a verifier timing
    out on a busy machine would turn a scripted reward into 0)."""
    with SandboxPool(get_sandbox(None), Limits(wall_s=60), 1) as pool:
        yield pool


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted embedded model; the test is skipped where it is missing."""
    if not (MODEL_DIR / "tokenizer.json").is_file():
        pytest.skip(f"the converted SmolLM2 model is missing at {MODEL_DIR}")
    return MODEL_DIR
