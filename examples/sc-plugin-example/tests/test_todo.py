"""The ``todo`` toolset, as sc sees it: tools, reproducible state, refusals."""

from __future__ import annotations

import pytest
from sc_plugin_example import TodoList, make_toolset

from sc_core.tools import ToolError

TOOLS = {"add_todo", "list_todos", "find_todos", "complete_todo", "set_due_date", "delete_todo"}


@pytest.fixture
def toolset():
    toolset = make_toolset()
    toolset.reset(2)
    return toolset


def test_the_tools_and_their_schemas(toolset):
    assert set(toolset.tools) == TOOLS
    add = toolset.tools["add_todo"].parameters
    assert add["required"] == ["title"]
    assert add["properties"]["priority"]["enum"] == ["low", "normal", "high"]
    assert add["properties"]["due"]["default"] == ""
    assert toolset.tools["list_todos"].parameters["properties"]["status"]["enum"] == [
        "open",
        "done",
        "all",
    ]
    assert all(tool.description for tool in toolset.tools.values())


def test_reset_is_reproducible_and_seeds_differ():
    a, b = TodoList(), TodoList()
    a.reset(7)
    b.reset(7)
    assert a.state() == b.state()
    b.reset(8)
    assert a.state() != b.state()


def test_reset_undoes_every_change(toolset):
    before = toolset.state()
    toolset.call("add_todo", {"title": "Something new"})
    toolset.call("complete_todo", {"todo_id": "T1"})
    toolset.call("delete_todo", {"todo_id": "T3"})
    assert toolset.state() != before
    toolset.reset(2)
    assert toolset.state() == before


def test_state_is_a_copy(toolset):
    state = toolset.state()
    state["todos"]["T1"]["done"] = True
    assert toolset.state()["todos"]["T1"]["done"] is False


def test_add_list_complete_find(toolset):
    added = toolset.call(
        "add_todo", {"title": "  Renew passport ", "priority": "high", "due": "2025-08-15"}
    )
    assert added == {
        "id": "T9",
        "title": "Renew passport",
        "priority": "high",
        "due": "2025-08-15",
        "done": False,
    }
    assert toolset.call("add_todo", {"title": "Another"})["id"] == "T10"  # ids are deterministic
    assert toolset.call("complete_todo", {"todo_id": "T9"})["done"] is True
    done = [todo["id"] for todo in toolset.call("list_todos", {"status": "done"})]
    assert "T9" in done
    assert "T9" not in [todo["id"] for todo in toolset.call("list_todos", {})]
    everything = toolset.call("list_todos", {"status": "all"})
    assert [todo["id"] for todo in everything] == [f"T{n}" for n in range(1, 11)]
    assert [todo["id"] for todo in toolset.call("find_todos", {"text": "PASSPORT"})] == ["T9"]


def test_due_dates(toolset):
    assert (
        toolset.call("set_due_date", {"todo_id": "T1", "due": "2025-12-01"})["due"] == "2025-12-01"
    )
    assert toolset.call("set_due_date", {"todo_id": "T1", "due": ""})["due"] == ""


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("add_todo", {"title": "   "}, "title must be 1 to 120 characters"),
        ("add_todo", {"title": "x" * 121}, "title must be 1 to 120 characters"),
        ("add_todo", {"title": "x", "due": "15/08/2025"}, "YYYY-MM-DD"),
        ("add_todo", {"title": "x", "priority": "urgent"}, "must be one of"),
        ("complete_todo", {"todo_id": "T99"}, "no to-do with id 'T99'"),
        ("complete_todo", {"todo_id": "T6"}, "T6 is already done"),
        ("set_due_date", {"todo_id": "T1", "due": "tomorrow"}, "YYYY-MM-DD"),
        ("delete_todo", {"todo_id": "nope"}, "ids look like 'T3'"),
        ("find_todos", {"text": " "}, "must not be empty"),
        ("list_todos", {"status": "later"}, "must be one of"),
    ],
)
def test_refusals_are_tool_errors(toolset, tool, arguments, message):
    with pytest.raises(ToolError, match=message):
        toolset.call(tool, arguments)


def test_the_list_has_a_bound(toolset):
    for n in range(100 - 8):
        toolset.call("add_todo", {"title": f"item {n}"})
    with pytest.raises(ToolError, match="the list is full"):
        toolset.call("add_todo", {"title": "one too many"})


def test_registered_through_the_hook():
    from sc_plugin_example import register_toolsets

    registered = {}
    register_toolsets(register=lambda name, factory: registered.setdefault(name, factory))
    assert set(registered) == {"todo"}
    first, second = registered["todo"](), registered["todo"]()
    first.call("add_todo", {"title": "only in the first"})
    assert first.state() != second.state()  # every call gives a fresh environment
