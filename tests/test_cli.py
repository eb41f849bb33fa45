"""The ``sc`` command as a user meets it: help, and errors as one line, never a traceback."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from sc_core.cli import cli
from sc_core.plugins import load_plugins

FIXTURES = Path(__file__).resolve().parent / "fixtures"

TASK = {
    "id": "calc",
    "toolset": "calculator",
    "instruction": "What is 6 times 7?",
    "verify": "def verify(state, answer):\n    return answer == 42\n",
    "solution": "def solve(tools):\n    return tools.multiply(a=6, b=7)\n",
    "failures": ["def solve(tools):\n    return tools.add(a=6, b=7)\n"],
}


def one_line_error(result, fragment: str, code: int = 1) -> str:
    """The command failed with ``code``, saying ``fragment`` on one stderr line, no trace."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert fragment in lines[0], lines[0]
    return lines[0]


def test_help_lists_the_commands(run_sc):
    result = run_sc("--help")
    assert result.returncode == 0, result.stderr
    for command in ("plugins", "tools", "verify"):
        assert f"  {command} " in result.stdout
    assert "sc: train tool-using agents" in result.stdout


def test_version(run_sc):
    result = run_sc("--version")
    assert result.returncode == 0
    assert version("sc-core") in result.stdout


@pytest.mark.parametrize("command", ["tools", "verify", "plugins"])
def test_each_command_has_help(run_sc, command):
    result = run_sc(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: sc " + command in result.stdout


def test_tools_unknown_module(run_sc):
    line = one_line_error(run_sc("tools", "nonexistent_module"), "nonexistent_module")
    assert line.startswith("error: no toolset or module named 'nonexistent_module'; available:")
    assert "calculator" in line


def test_tools_missing_file(run_sc):
    one_line_error(run_sc("tools", "no/such/tools.py"), "toolset file not found: no/such/tools.py")


def test_tools_file_with_a_syntax_error(run_sc, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    pass\n")
    one_line_error(run_sc("tools", str(broken)), "SyntaxError")


def test_tools_several_classes(run_sc):
    one_line_error(
        run_sc("tools", str(FIXTURES / "two_homes.py")), "defines several toolset classes"
    )


def test_verify_missing_task_file(run_sc):
    line = one_line_error(run_sc("verify", "missing.jsonl"), "missing.jsonl")
    assert line == "error: cannot read task file missing.jsonl: No such file or directory"


def test_verify_unknown_sandbox(run_sc, write_tasks):
    line = one_line_error(
        run_sc("verify", str(write_tasks([TASK])), "--sandbox", "nope"), "unknown sandbox 'nope'"
    )
    assert "available:" in line and "bwrap" in line and "subprocess" in line


def test_verify_unknown_tools_spec(run_sc, write_tasks):
    one_line_error(
        run_sc("verify", str(write_tasks([TASK])), "--tools", "nonexistent_module"),
        "no toolset or module named 'nonexistent_module'",
    )


def test_verify_a_directory_is_a_usage_error(run_sc, tmp_path):
    result = run_sc("verify", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is a directory" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["nosuchcommand"], ["verify"], ["verify", "x.jsonl", "--workers", "many"], ["tools"]],
)
def test_usage_errors_exit_2_without_a_traceback(run_sc, args):
    result = run_sc(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Error:" in result.stderr


def test_internal_errors_are_one_line_unless_debugging(run_sc, tmp_path):
    """A bug outside sc's control (here a toolset whose close() fails) is still one line."""
    path = tmp_path / "leaky.py"
    path.write_text(
        "class Leaky:\n"
        "    def reset(self, seed): pass\n"
        "    def state(self): return {}\n"
        "    def close(self): raise RuntimeError('connection already closed')\n"
        "    def ping(self) -> str:\n"
        "        '''Ping.'''\n"
        "        return 'pong'\n"
    )
    result = run_sc("tools", str(path), "--json")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "internal error: RuntimeError: connection already closed" in result.stderr
    assert "SC_DEBUG=1" in result.stderr
    debug = run_sc("tools", str(path), "--json", env={"SC_DEBUG": "1"})
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_verify_empty_file(run_sc, write_tasks, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    result = run_sc("verify", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"] == report["kept"] == 0 and report["tasks"] == []
    human = run_sc("verify", str(path))
    assert human.returncode == 0, human.stderr
    assert "0 of 0 kept" in human.stdout


def test_verify_json_stdout_is_pure_json(run_sc, write_tasks, tmp_path):
    kept = tmp_path / "out" / "kept.jsonl"
    result = run_sc("verify", str(write_tasks([TASK])), "--json", "--kept", str(kept))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kept"] == 1
    assert json.loads(kept.read_text())["id"] == "calc"  # parent directory created


def test_cli_runner_in_process(write_tasks):
    load_plugins()
    result = CliRunner().invoke(cli, ["verify", str(write_tasks([TASK])), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tasks"] == [
        {"id": "calc", "kept": True, "stage": None, "reason": None}
    ]


def six_times(n: int) -> dict:
    """A valid task that differs for every ``n``."""
    return {
        "id": f"calc-{n}",
        "toolset": "calculator",
        "instruction": f"What is 6 times {n}?",
        "verify": f"def verify(state, answer):\n    return answer == {6 * n}\n",
        "solution": f"def solve(tools):\n    return tools.multiply(a=6, b={n})\n",
        "failures": [f"def solve(tools):\n    return tools.add(a=6, b={n})\n"],
    }


def test_verify_reports_progress_as_lines_when_stderr_is_not_a_terminal(run_sc, write_tasks):
    tasks = [six_times(n) for n in (7, 8, 9)]
    result = run_sc("verify", str(write_tasks(tasks)), "--workers", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "sc: verify: started (3 tasks)"
    assert lines[-1].startswith("sc: verify: 3/3 tasks (")
    assert lines[-1].endswith("elapsed), 3 pass so far")
    assert "\x1b" not in result.stderr  # no cursor movement or colour in a log


def test_eval_limit_must_be_at_least_one(run_sc, write_tasks):
    one_line_error(
        run_sc("eval", "--tasks", str(write_tasks([TASK])), "--limit", "0"),
        "error: --limit must be at least 1",
    )


@pytest.mark.parametrize("command", ["eval", "train", "run", "challenge"])
def test_every_command_that_runs_episodes_takes_the_episode_limits(run_sc, command):
    result = run_sc(command, "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--max-turns", "--max-new-tokens", "--max-total-tokens"):
        assert option in result.stdout
