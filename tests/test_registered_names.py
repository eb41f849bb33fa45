"""Names that plugins register (toolsets, strategies, shapers, sandboxes, RL and model backends):
every option that takes one lists them in its --help, and a mistyped one is a one-line error
with the closest registered name, never a Python import error."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from sc_core.api import strategy_class
from sc_core.cli import cli
from sc_core.errors import ScError
from sc_core.models import default_backend, load_model, parse_model_spec
from sc_core.plugins import registry
from sc_core.sandbox import get_sandbox
from sc_core.tools import load_toolset
from sc_core.train import get_backend, get_shaper

TASK = {
    "id": "calc",
    "toolset": "calculator",
    "instruction": "What is 6 times 7?",
    "verify": "def verify(state, answer):\n    return answer == 42\n",
    "solution": "def solve(tools):\n    return tools.multiply(a=6, b=7)\n",
    "failures": ["def solve(tools):\n    return tools.add(a=6, b=7)\n"],
}
QUICK_POOL = ("--sandbox", "subprocess", "--workers", "1")


def help_of(command: str, option: str) -> str:
    """The help text ``sc COMMAND --help`` shows for ``option``."""
    command_object = cli.commands[command]
    param = next(param for param in command_object.params if option in param.opts)
    return param.get_help_record(click.Context(command_object))[1]


def listed(hook: str) -> str:
    return f"Registered: {', '.join(sorted(registry(hook)))}."


# -- --help lists the registered names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "option", "hook"),
    [
        ("verify", "--sandbox", "register_sandboxes"),
        ("eval", "--sandbox", "register_sandboxes"),
        ("challenge", "--strategy", "register_challengers"),
        ("run", "--strategy", "register_challengers"),
        ("train", "--shaper", "register_reward_shapers"),
        ("run", "--shaper", "register_reward_shapers"),
        ("train", "--backend", "register_rl_backends"),
        ("run", "--backend", "register_rl_backends"),
    ],
)
def test_help_lists_the_registered_names(command, option, hook):
    assert listed(hook) in help_of(command, option)


@pytest.mark.parametrize("command", ["verify", "challenge", "eval", "train", "run"])
def test_tools_help_lists_toolsets_and_schemes_and_says_python_works(command):
    text = help_of(command, "--tools")
    assert "Registered: calculator, " in text and "shop" in text
    assert "py:SPEC" in text
    assert "A module, file.py or module:attr works too." in text


def test_backend_help_tells_rl_backends_from_model_backends():
    text = help_of("train", "--backend")
    assert "transformers" not in text  # a model backend: --model's prefix picks it
    assert "--model's prefix" in text


def test_help_as_the_user_sees_it(run_sc):
    result = run_sc("train", "--help", env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    assert "Reward shaper. Registered: binary, " in result.stdout


def test_importing_the_cli_loads_no_plugin():
    code = "import sc_core.cli, sc_core.plugins as p; print(len(p.pm.get_plugins()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


# -- a mistyped name: the registered names and the closest one --------------------------------


@pytest.mark.parametrize(
    ("find", "message"),
    [
        (
            lambda: load_toolset("calculater"),
            "no toolset or module named 'calculater'; available: calculator, ",
        ),
        (lambda: get_sandbox("subproces"), "unknown sandbox 'subproces'; available: "),
        (lambda: strategy_class("explor"), "unknown strategy 'explor'; available: explore, "),
        (lambda: get_shaper("binery"), "unknown reward shaper 'binery'; available: binary, "),
        (lambda: parse_model_spec("transformer:smollm2"), "unknown model backend 'transformer'"),
        (lambda: load_model("transformer:smollm2"), "unknown model backend 'transformer'"),
    ],
)
def test_a_mistyped_name_gets_the_closest(find, message):
    with pytest.raises(ScError) as raised:
        find()
    assert str(raised.value).startswith(message)
    close = {
        "calculater": "calculator",
        "subproces": "subprocess",
        "explor": "explore",
        "binery": "binary",
        "transformer": "transformers",
    }
    typed = message.split("'")[1]
    assert str(raised.value).endswith(f" (did you mean {close[typed]!r}?)")


def test_a_mistyped_rl_backend_gets_the_closest():
    if "rft" not in registry("register_rl_backends"):
        pytest.skip("sc-trl is not installed")
    with pytest.raises(ScError, match=r"unknown RL backend 'rtf'; .*\(did you mean 'rft'\?\)$"):
        get_backend("rtf")


def test_a_mistyped_sc_backend_gets_the_closest(monkeypatch):
    monkeypatch.setenv("SC_BACKEND", "transformer")
    with pytest.raises(
        ScError,
        match=r"SC_BACKEND='transformer' is not a model backend; available: .*"
        r"\(did you mean 'transformers'\?\)$",
    ):
        default_backend()


def test_nothing_close_lists_the_names_only():
    with pytest.raises(ScError) as raised:
        get_sandbox("zzzz")
    assert "did you mean" not in str(raised.value)
    assert "subprocess" in str(raised.value)


def test_a_spec_that_means_a_module_keeps_the_import_error(tmp_path, monkeypatch):
    with pytest.raises(ScError, match="could not import toolset 'no_such.module': Module"):
        load_toolset("no_such.module")
    (tmp_path / "raising_tools.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScError, match="'raising_tools': RuntimeError: half-written"):
        load_toolset("raising_tools")


def test_a_model_spec_that_is_a_path_or_has_no_backend_shape_is_left_alone(tmp_path):
    odd = tmp_path / "my:model"
    odd.mkdir()
    assert parse_model_spec(str(odd))[1] == str(odd)
    assert parse_model_spec("nope:x")[1] == "nope:x"  # no backend is a typo away
    assert parse_model_spec("name@http://127.0.0.1:8000/v1")[1] == "name@http://127.0.0.1:8000/v1"


# -- the same through the CLI: one line on stderr ----------------------------------------------


def last_error(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_cli_tools_did_you_mean(run_sc, write_tasks):
    line = last_error(run_sc("tools", "calculater"))
    assert line.startswith("error: no toolset or module named 'calculater'; available: ")
    assert line.endswith("(did you mean 'calculator'?)")
    line = last_error(run_sc("verify", str(write_tasks([TASK])), "--tools", "calculater"))
    assert line.endswith("(did you mean 'calculator'?)")


def test_cli_sandbox_did_you_mean(run_sc, write_tasks):
    line = last_error(run_sc("verify", str(write_tasks([TASK])), "--sandbox", "subproces"))
    assert line.startswith("error: unknown sandbox 'subproces'; available: ")
    assert line.endswith("(did you mean 'subprocess'?)")


def test_cli_strategy_did_you_mean(run_sc, tmp_path):
    out = str(tmp_path / "tasks.jsonl")
    result = run_sc(
        "challenge", "--tools", "calculator", "--strategy", "explor", "-n", "1", "--out", out,
        *QUICK_POOL,
    )  # fmt: skip
    line = last_error(result)
    assert line.startswith("error: unknown strategy 'explor'; available: explore, ")
    assert line.endswith("(did you mean 'explore'?)")


def test_run_checks_the_strategy_before_making_the_run(run_sc, tmp_path):
    result = run_sc(
        "run", "--tools", "calculator", "--strategy", "seded", "--name", "typo", cwd=tmp_path
    )
    assert last_error(result).endswith("(did you mean 'seeded'?)")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("option", "typed", "close"),
    [("--shaper", "binery", "binary"), ("--backend", "rtf", "rft")],
)
def test_cli_train_did_you_mean(run_sc, write_tasks, tmp_path, option, typed, close):
    if option == "--backend" and "rft" not in registry("register_rl_backends"):
        pytest.skip("sc-trl is not installed")
    result = run_sc(
        "train", str(write_tasks([TASK])), "--out", str(tmp_path / "out"), "--model", "smollm2",
        option, typed, *QUICK_POOL,
    )  # fmt: skip
    assert last_error(result).endswith(f"(did you mean {close!r}?)")


def test_cli_model_backend_did_you_mean(run_sc, write_tasks):
    result = run_sc(
        "eval", "--tasks", str(write_tasks([TASK])), "--model", "transformer:smollm2", *QUICK_POOL
    )
    line = last_error(result)
    assert line.startswith("error: unknown model backend 'transformer'; available: ")
    assert line.endswith("(did you mean 'transformers'?)")
