"""The example as a user gets it: built by pip, found by sc through its entry point.

The distribution is built and installed with pip into a temporary folder (``--target``), and
``sc`` runs in subprocesses with that folder on ``PYTHONPATH``: the same wheel and the same
entry-point discovery as ``pip install sc-plugin-example``, without changing the environment
that other tests and other programs share. Slow (marked ``pip_install``): pip builds a wheel,
and downloads setuptools for it unless the environment already has a recent enough one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

DISTRIBUTION = Path(__file__).resolve().parents[1]
SC = Path(sys.executable).parent / "sc"
TOOLS = {"add_todo", "list_todos", "find_todos", "complete_todo", "set_due_date", "delete_todo"}
SETUPTOOLS_NEEDED = (77,)  # pyproject.toml's build-system.requires

pytestmark = pytest.mark.pip_install


def _setuptools_is_recent() -> bool:
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        return False
    parts = tuple(int(part) for part in found.split(".")[:1] if part.isdigit())
    return parts >= SETUPTOOLS_NEEDED


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A folder holding the installed distribution; put it on PYTHONPATH to use the plugin."""
    root = tmp_path_factory.mktemp("sc-plugin-example")
    source = root / "source"  # a copy: an in-tree build would leave build/ and *.egg-info behind
    shutil.copytree(
        DISTRIBUTION,
        source,
        ignore=shutil.ignore_patterns("tests", "build", "dist", "*.egg-info", "__pycache__"),
    )
    target = root / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
    command += ["--disable-pip-version-check", "--target", str(target)]
    if _setuptools_is_recent():  # build offline with the environment's setuptools
        command.append("--no-build-isolation")
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"pip could not install the example:\n{result.stderr}"
    assert list(target.glob("sc_plugin_example-0.1.0.dist-info/entry_points.txt"))
    return target


def run_sc(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SC_")}
    env["PYTHONPATH"] = str(site)
    command = [str(SC)] if SC.exists() else [sys.executable, "-m", "sc_core.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=DISTRIBUTION,
        timeout=300,
    )


def test_sc_plugins_lists_it(installed):
    result = run_sc(installed, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["version"] == "0.1.0"
    assert rows["example"]["builtin"] is False
    assert rows["example"]["hooks"] == [
        "register_challengers",
        "register_reward_shapers",
        "register_toolsets",
    ]
    assert "error" not in rows["example"]


def test_sc_tools_shows_its_toolset(installed):
    result = run_sc(installed, "tools", "todo", "--json")
    assert result.returncode == 0, result.stderr
    specs = json.loads(result.stdout)
    assert {spec["function"]["name"] for spec in specs} == TOOLS
    assert all(spec["type"] == "function" for spec in specs)


def test_sc_verify_keeps_its_example_tasks(installed):
    result = run_sc(installed, "verify", "tasks.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"] == report["kept"] == 3, report
    assert {task["id"] for task in report["tasks"]} == {
        "todo-soonest-open",
        "todo-finish-high",
        "todo-add-passport",
    }


def test_sc_challenge_writes_from_its_template_without_a_model(installed, tmp_path):
    out = tmp_path / "tasks.jsonl"
    result = run_sc(
        installed, "challenge", "--tools", "todo", "--strategy", "example_template", "-n", "8",
        "--json", "--out", str(out), "--model", "no-such-model",  # never loaded
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["attempts"] == 8, report
    assert report["stages"]["parses"] == report["stages"]["deterministic"] == 6  # 5, 7 declined
    rejected = (tmp_path / "tasks.rejected.jsonl").read_text().splitlines()
    assert [json.loads(row)["rejection"]["reason"] for row in rejected] == [
        "declined: no open high-priority to-do to finish",
        "declined: no open normal-priority to-do to finish",
    ]


def test_its_reward_shaper_is_registered(installed):
    script = (
        "import json\n"
        "from sc_core.plugins import registry\n"
        "shaper = registry('register_reward_shapers')['example_turn_penalty']\n"
        "print(json.dumps([shaper(1.0, {'turns': 1}), shaper(1.0, {'turns': 6})]))\n"
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("SC_")}
    env["PYTHONPATH"] = str(installed)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1.0, pytest.approx(0.8)]
