"""The documentation's shell commands run as written.

Every ```bash, ```sh and ```console block of ``DOCS`` is split into commands: one per line (a
line ending in ``\\`` continues on the next; in a console block only ``$ `` lines are commands,
the rest is output). Each command takes the rule of the longest ``COMMANDS`` prefix it starts
with: ``RUN`` runs it, anything else is the reason it is skipped (it loads a model, runs for
long, or changes the checkout). A command no prefix matches fails, so a new command in the docs
is classified on purpose and never skipped silently; ``test_enough_commands_run`` keeps the
test from passing on nothing.

The commands run in order within their block, each in ``bash`` from a stand-in for the
repository root: a temporary folder linking every top-level entry of the checkout, with a copy
of ``examples/``, so that what they write (``kept.jsonl``, pip's build of the example plugin)
stays out of the checkout. First on ``PATH`` is a temporary virtual environment made from this
Python, which sees this environment's packages through a ``.pth`` file and has its own ``pip``
and ``sc``: ``pip install -e examples/sc-plugin-example`` installs there, never into ``.venv``.
pip runs offline: no index, and no build isolation (this environment's setuptools builds).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "CONTRIBUTING.md", "examples/sc-plugin-example/README.md")

RUN = None
COMMANDS: dict[str, str | None] = {
    "sc plugins": RUN,
    "sc tools": RUN,
    "sc verify": RUN,
    "sc models": RUN,
    "pip install -e examples/sc-plugin-example": RUN,
    "sc challenge --tools todo --strategy example_template": RUN,  # needs no model
    "sc challenge": "loads a model",
    "sc eval": "loads a model",
    "sc train": "loads a model and trains it",
    "sc run": "loads models and runs the whole loop",
    "sc report": "needs a finished run",
    "python3 -m venv .venv": "sets up the environment: downloads, then installs into .venv",
    "scripts/setup-dev": "sets up the environment: downloads, then installs into .venv",
    "bash .ci/run": "rebuilds .venv, then runs the whole suite",
    ".venv/bin/pytest": "runs the whole suite",
    "pytest": "runs test suites",
    ".venv/bin/ruff": "reformats the checkout",
}
UNCLASSIFIED = "no rule in COMMANDS matches it"
MIN_BLOCKS, MIN_RUN = 3, 13
"""Blocks with a command to run, and such commands, in the docs when this test was written:
fewer means the docs lost some, or the parsing broke."""

BLOCK = re.compile(r"^```(bash|sh|console)\n(.*?)^```", re.M | re.S)


@dataclass
class Command:
    where: str
    """``FILE:LINE`` of the block."""
    text: str

    @property
    def rule(self) -> str | None:
        """``RUN``, or why the command does not run: its longest matching prefix's rule."""
        matches = [p for p in COMMANDS if self.text == p or self.text.startswith(p + " ")]
        return COMMANDS[max(matches, key=len)] if matches else UNCLASSIFIED


def commands(kind: str, body: str, where: str) -> list[Command]:
    """The commands of one block, in order."""
    lines = body.replace("\\\n", " ").splitlines()
    if kind == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    texts = [line.strip() for line in lines]
    return [Command(where, text) for text in texts if text and not text.startswith("#")]


def blocks() -> list[list[Command]]:
    """Every shell block of the docs, as its commands."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            where = f"{doc}:{text.count(chr(10), 0, match.start()) + 1}"
            found.append(commands(match[1], match[2], where))
    return found


BLOCKS = blocks()


ALL = [command for block in BLOCKS for command in block]
RUNNABLE = [block for block in BLOCKS if any(command.rule is RUN for command in block)]


def test_every_command_has_a_rule():
    unclassified = [f"{c.where}: {c.text}" for c in ALL if c.rule == UNCLASSIFIED]
    assert not unclassified, "add a rule to COMMANDS for:\n" + "\n".join(unclassified)


def test_enough_commands_run():
    run = [command.text for command in ALL if command.rule is RUN]
    assert len(RUNNABLE) >= MIN_BLOCKS and len(run) >= MIN_RUN, run


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """``shell(command)``: the command in bash, from the stand-in root, with the temporary
    environment first on PATH."""
    base = tmp_path_factory.mktemp("docs")
    root = base / "root"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "examples"):
            (root / entry.name).symlink_to(entry)
    ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    shutil.copytree(ROOT / "examples", root / "examples", ignore=ignored)
    bin_dir = _environment(base / "venv")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SC_", "PIP_")) and name not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env |= {
        "SC_BACKEND": os.environ["SC_BACKEND"],  # set by the root conftest.py
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads its "no-" options inverted: this turns it off
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )

    return run


def _environment(venv: Path) -> Path:
    """A virtual environment seeing this one's packages, with ``pip`` and ``sc`` of its own;
    returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_dir = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    lines = [f"import site; site.addsitedir({path!r})" for path in ours]
    Path(site_dir, "sc-docs-test.pth").write_text("\n".join(lines) + "\n")
    for name, module in (("pip", "pip"), ("sc", "sc_core.cli")):
        script = venv / "bin" / name
        script.write_text(f'#!/bin/sh\nexec "{python}" -m {module} "$@"\n')
        script.chmod(0o755)
    return venv / "bin"


@pytest.mark.parametrize("block", RUNNABLE, ids=[block[0].where for block in RUNNABLE])
def test_the_block_runs(block, shell):
    for command in (command for command in block if command.rule is RUN):
        result = shell(command.text)
        assert result.returncode == 0, (
            f"{command.where}: `{command.text}` exited {result.returncode}\n{result.stderr[-3000:]}"
        )


def test_the_architecture_links_only_into_the_repository():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert not re.findall(r"\w+://", text)
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        assert (ROOT / "docs" / target).resolve().is_relative_to(ROOT), target
        assert (ROOT / "docs" / target).exists(), target
