"""sc-langchain against real langchain-core tools: in process, and through the real ``sc`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sc_langchain.adapter import langchain_toolset

from sc_core.errors import ScError
from sc_core.schema import clean_schema
from sc_core.tools import ToolError, load_toolset

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODULE = "lc_fixture_tools"
SC = Path(sys.executable).parent / "sc"


@pytest.fixture(autouse=True)
def fixture_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))


def make(attr: str):
    return langchain_toolset(f"{MODULE}:{attr}")()


def all_keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def run_sc(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURES), env.get("PYTHONPATH")]))
    command = [str(SC)] if SC.exists() else [sys.executable, "-m", "sc_core.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


# -- schemas ------------------------------------------------------------------------------------


def test_every_kind_of_tool_becomes_a_tool_with_a_clean_schema():
    toolset = make("STATELESS")
    assert list(toolset.tools) == [
        "add",
        "shout",
        "multiply",
        "word_count",
        "refuse",
        "explode",
        "halve",
        "ship",
    ]
    add = toolset.tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    shout = toolset.tools["shout"].parameters["properties"]
    assert shout["times"] == {
        "type": "integer",
        "default": 1,
        "description": "How often to repeat it.",
    }
    count = toolset.tools["word_count"].parameters
    assert count["properties"]["unique"]["description"] == "Count distinct words only."
    assert count["required"] == ["text"]
    for tool in toolset.tools.values():
        assert "title" not in set(all_keys(tool.parameters))
        assert "$ref" not in json.dumps(tool.parameters)


def test_nested_models_are_inlined_and_optional_becomes_nullable():
    address = make("STATELESS").tools["ship"].parameters["properties"]["address"]
    assert address["type"] == "object"
    assert address["required"] == ["city"]
    assert address["properties"]["zip_code"] == {
        "type": "string",
        "default": None,
        "nullable": True,
    }


def test_recursive_definitions_are_kept_not_expanded_forever():
    schema = {
        "$defs": {
            "Node": {
                "title": "Node",
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/Node"}, "title": {"type": "string"}},
    }
    cleaned = clean_schema(schema)
    assert cleaned["properties"]["title"] == {"type": "string"}  # a property named title stays
    assert cleaned["properties"]["root"]["properties"]["children"]["items"] == {
        "$ref": "#/$defs/Node"
    }
    assert "Node" in cleaned["$defs"]


# -- calling ----------------------------------------------------------------------------------


def test_calls_go_through_invoke_and_results_are_plain_data():
    toolset = make("STATELESS")
    assert toolset.call("add", {"a": 2, "b": 3}) == 5
    assert toolset.call("shout", {"text": "hi", "times": 2}) == "HI HI"
    assert toolset.call("multiply", {"x": 1.5, "y": 4}) == 6.0
    assert toolset.call("word_count", {"text": "a b a", "unique": True}) == 2
    assert toolset.call("halve", {"x": 5}) == 2.5  # async-only StructuredTool
    parcel = toolset.call("ship", {"order_id": "O1", "address": {"city": "Oslo"}})
    assert parcel == {"order_id": "O1", "city": "Oslo"}  # a pydantic result, dumped


def test_tool_failures_become_tool_errors_with_the_message():
    toolset = make("STATELESS")
    with pytest.raises(ToolError, match=r"^refuse: refused: out of stock$"):
        toolset.call("refuse", {"reason": "out of stock"})
    with pytest.raises(ToolError, match="explode failed: RuntimeError: the tool blew up"):
        toolset.call("explode", {})
    with pytest.raises(ToolError, match=r"ship: argument 'address' is missing key\(s\) \"city\""):
        toolset.call("ship", {"order_id": "O1", "address": {}})  # sc checks nested objects
    with pytest.raises(ToolError, match="unknown argument"):
        toolset.call("add", {"a": 1, "b": 2, "c": 3})
    with pytest.raises(ToolError, match="must be an integer"):
        toolset.call("add", {"a": "1", "b": 2})


# -- toolkits and state -----------------------------------------------------------------------


@pytest.mark.parametrize("attr", ["NotesToolkit", "make_notes"])
def test_a_stateful_toolkit_gets_fresh_independent_instances(attr):
    factory = langchain_toolset(f"{MODULE}:{attr}")
    first, second = factory(), factory()
    assert sorted(first.tools) == ["get_note", "list_notes", "put_note"]
    first.reset(4)
    second.reset(4)
    first.call("put_note", {"key": "todo", "text": "milk"})
    assert first.state() == {"notes": {"welcome": "hello from seed 4", "todo": "milk"}}
    assert second.state() == {"notes": {"welcome": "hello from seed 4"}}
    assert first.call("list_notes", {}) == ["todo", "welcome"]
    with pytest.raises(ToolError, match="no note 'todo'"):
        second.call("get_note", {"key": "todo"})
    first.reset(4)
    assert first.state() == second.state()


def test_a_stateless_toolkit_instance_and_a_module_work():
    assert sorted(make("calculator_kit").tools) == ["add", "multiply"]
    module_tools = langchain_toolset(MODULE)().tools
    assert {"add", "shout", "word_count", "ship"} <= set(module_tools)
    assert make("calculator_kit").state() == {}


def test_the_scheme_is_registered_through_the_entry_point():
    toolset = load_toolset(f"langchain:{MODULE}:add").create()
    assert list(toolset.tools) == ["add"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:tools", "could not import toolset"),
        ("lc_broken_module:tools", "ValueError: the config is invalid: field x: required"),
        (f"{MODULE}:missing", "has no attribute 'missing'"),
        (f"{MODULE}:not_a_tool", "int is not a LangChain tool"),
        (f"{MODULE}:mixed_list", "item 2 of the list is str, not a tool"),
        (f"{MODULE}:broken_factory", "broken_factory() failed: RuntimeError: no database"),
        (f"{MODULE}:wrong_factory", "the factory returned str"),
        (f"{MODULE}:shared_notes", "name its class or a zero-argument factory"),
        ("", "needs a target"),
    ],
)
def test_bad_targets_are_one_line_errors(target, message):
    with pytest.raises(ScError) as caught:
        langchain_toolset(target)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# -- through the real CLI -------------------------------------------------------------------


def test_sc_tools_json_lists_the_langchain_tools():
    result = run_sc("tools", f"langchain:{MODULE}:STATELESS", "--json")
    assert result.returncode == 0, result.stderr
    specs = json.loads(result.stdout)
    assert [spec["function"]["name"] for spec in specs][:4] == [
        "add",
        "shout",
        "multiply",
        "word_count",
    ]
    assert all(spec["type"] == "function" for spec in specs)
    ship = next(spec for spec in specs if spec["function"]["name"] == "ship")
    assert ship["function"]["parameters"]["properties"]["address"]["type"] == "object"


def test_sc_tools_reports_a_bad_target_in_one_line():
    result = run_sc("tools", f"langchain:{MODULE}:shared_notes")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "error:" in result.stderr and "zero-argument factory" in result.stderr


NOTES = f"langchain:{MODULE}:NotesToolkit"
STATELESS = f"langchain:{MODULE}:STATELESS"


def task(task_id, toolset, solution, failures, verify, seed=0):
    return {
        "id": task_id,
        "toolset": toolset,
        "seed": seed,
        "instruction": f"task {task_id}",
        "verify": verify,
        "solution": solution,
        "failures": failures,
    }


TASKS = [
    task(
        "notes-put",
        NOTES,
        "def solve(tools):\n    tools.put_note(key='todo', text='buy milk')\n"
        "    return tools.list_notes()\n",
        [
            "def solve(tools):\n    return tools.list_notes()\n",
            "def solve(tools):\n    tools.put_note(key='todo', text='buy bread')\n"
            "    return tools.list_notes()\n",
        ],
        "def verify(state, answer):\n"
        "    return state['notes'].get('todo') == 'buy milk' and answer == ['todo', 'welcome']\n",
        seed=3,
    ),
    task(
        "notes-seeded",
        NOTES,
        "def solve(tools):\n    return tools.get_note(key='welcome')\n",
        ["def solve(tools):\n    return 'hello from seed 0'\n"],
        "def verify(state, answer):\n    return answer == 'hello from seed 5'\n",
        seed=5,
    ),
    task(
        "notes-error-seen",
        NOTES,
        "def solve(tools):\n    try:\n        tools.get_note(key='nope')\n"
        "    except Exception as error:\n        return str(error)\n",
        ["def solve(tools):\n    return 'fine'\n"],
        "def verify(state, answer):\n    return \"no note 'nope'\" in answer\n",
    ),
    task(
        "words-add",
        STATELESS,
        "def solve(tools):\n"
        "    return tools.add(a=tools.word_count(text='a b a', unique=True), b=10)\n",
        [
            "def solve(tools):\n    return tools.add(a=tools.word_count(text='a b a'), b=10)\n",
        ],
        "def verify(state, answer):\n    return answer == 12\n",
    ),
    task(
        "refused",
        STATELESS,
        "def solve(tools):\n    return tools.refuse(reason='no stock')\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return answer == 'x'\n",
    ),
    task(
        "lenient",
        STATELESS,
        "def solve(tools):\n    return tools.add(a=1, b=2)\n",
        ["def solve(tools):\n    return 4\n"],
        "def verify(state, answer):\n    return True\n",
    ),
    task(
        "unknown-tool",
        NOTES,
        "def solve(tools):\n    return tools.delete_note(key='welcome')\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    ),
    task(
        "exploded",
        STATELESS,
        "def solve(tools):\n    return tools.explode()\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    ),
]


def test_sc_verify_keeps_and_rejects_langchain_tasks(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(json.dumps(row) for row in TASKS) + "\n", encoding="utf-8")
    result = run_sc("verify", str(tasks), "--json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    verdicts = {row["id"]: row for row in report["tasks"]}
    kept = {name for name, row in verdicts.items() if row["kept"]}
    assert kept == {"notes-put", "notes-seeded", "notes-error-seen", "words-add"}
    assert verdicts["refused"]["stage"] == "verify_runs"
    assert "refused: no stock" in verdicts["refused"]["reason"]
    assert verdicts["lenient"]["stage"] == "failures_fail"
    assert verdicts["unknown-tool"]["stage"] == "parses"
    assert "delete_note" in verdicts["unknown-tool"]["reason"]
    assert verdicts["exploded"]["stage"] == "verify_runs"
    assert "RuntimeError: the tool blew up" in verdicts["exploded"]["reason"]
    assert report["kept"] == 4 and report["total"] == len(TASKS)
