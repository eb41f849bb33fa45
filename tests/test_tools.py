"""Tools and toolsets: JSON schemas from type hints and docstrings, toolset specs, validation."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pytest

from sc_core.errors import ScError
from sc_core.schema import function_schema, parse_docstring, type_schema
from sc_core.tools import Tool, ToolError, Toolset, import_target, load_toolset, python_toolset

FIXTURES = Path(__file__).resolve().parent / "fixtures"
THERMOSTAT = str(FIXTURES / "thermostat.py")
THERMOSTAT_TOOLS = {"get_room", "list_rooms", "set_away", "set_mode", "set_target"}


@pytest.fixture
def on_path(monkeypatch):
    """tests/fixtures importable as top-level modules, and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    for name in ("thermostat", "plain_tools", "two_homes"):
        monkeypatch.delitem(sys.modules, name, raising=False)


# -- schemas -----------------------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (type(None), {"type": "null"}),
        (Optional[int], {"type": "integer", "nullable": True}),  # noqa: UP045
        (int | None, {"type": "integer", "nullable": True}),
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
        (
            int | str | None,
            {"anyOf": [{"type": "integer"}, {"type": "string"}], "nullable": True},
        ),
        (Literal["heat", "cool"], {"type": "string", "enum": ["heat", "cool"]}),
        (Literal[1, 2, 3], {"type": "integer", "enum": [1, 2, 3]}),
        (Literal[1, "one"], {"enum": [1, "one"]}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (set[str], {"type": "array", "items": {"type": "string"}}),
        (tuple[float, ...], {"type": "array", "items": {"type": "number"}}),
        (tuple[int, str], {"type": "array", "minItems": 2, "maxItems": 2}),
        (dict[str, int], {"type": "object"}),
        (dict, {"type": "object"}),
        (Any, {}),
        (Opaque, {}),
    ],
)
def test_type_schema(annotation, schema):
    assert type_schema(annotation) == schema


def test_parse_docstring_google_style():
    doc = """Book a room.

    Only free rooms can be booked;
    see list_rooms.

    Args:
        room: The room's name.
        nights (int): How many nights,
            from 1 to 14.
        note: A note: with a colon in it.
            Continues here: also with a colon.

    Returns:
        The booking.

    Raises:
        ToolError: when the room is taken.
    """
    summary, args = parse_docstring(doc)
    assert summary == "Book a room. Only free rooms can be booked; see list_rooms."
    assert args == {
        "room": "The room's name.",
        "nights": "How many nights, from 1 to 14.",
        "note": "A note: with a colon in it. Continues here: also with a colon.",
    }


def test_parse_docstring_without_a_docstring_or_args():
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("") == ("", {})
    assert parse_docstring("Just a summary.") == ("Just a summary.", {})


def test_function_schema_from_hints_defaults_and_docstring(on_path):
    import plain_tools

    description, parameters = function_schema(plain_tools.search_books, "search_books")
    assert description == "Search the catalogue by title. Matching is case-insensitive."
    assert parameters == {
        "type": "object",
        "properties": {
            "query": {
                "type": "string",
                "description": (
                    "Words to look for in the title; an empty string matches every book."
                ),
            },
            "limit": {
                "type": "integer",
                "description": "At most this many results.",
                "default": 10,
            },
            "genre": {
                "type": "string",
                "nullable": True,
                "description": "Only books of this genre, if given.",
                "default": None,
            },
            "sort": {
                "type": "string",
                "enum": ["title", "year"],
                "description": "The order of the results.",
                "default": "title",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }


def test_function_schema_without_hints_or_docstring(on_path):
    import plain_tools

    description, parameters = function_schema(plain_tools.undocumented, "undocumented")
    assert description == ""
    assert parameters["properties"] == {"x": {}, "flag": {"type": "boolean", "default": False}}
    assert parameters["required"] == ["x"]


def test_unresolvable_forward_reference_falls_back_to_untyped():
    def tool(x: NoSuchType, y: int) -> None:  # noqa: F821
        """A tool.

        Args:
            x: Something.
            y: A number.
        """

    _, parameters = function_schema(tool, "tool")
    assert parameters["properties"]["x"] == {"description": "Something."}
    assert parameters["required"] == ["x", "y"]


@pytest.mark.parametrize("signature", ["*values: int", "**options: str", "a: int, *rest"])
def test_star_parameters_are_refused(signature):
    namespace: dict[str, Any] = {}
    exec(f"def spread({signature}):\n    '''Spread.'''\n", namespace)
    with pytest.raises(ScError, match=r"tool 'spread': \*args and \*\*kwargs"):
        Tool.from_function(namespace["spread"])


def test_tool_spec_is_the_openai_function_format(on_path):
    import plain_tools

    tool = Tool.from_function(plain_tools.average)
    spec = tool.spec()
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "average"
    assert spec["function"]["description"] == "The (weighted) mean of some numbers."
    assert spec["function"]["parameters"]["properties"]["values"]["items"] == {"type": "integer"}


# -- toolset specs -----------------------------------------------------------------------------


def test_builtin_name():
    toolset = load_toolset("calculator").create()
    assert {"add", "divide", "evaluate"} <= set(toolset.tools)
    assert toolset.call("add", {"a": 2, "b": 3}) == 5
    assert toolset.state() == {}


def test_importable_module_of_functions(on_path):
    spec = load_toolset("plain_tools")
    assert spec.spec == "plain_tools"
    toolset = spec.create()
    # imported names (floor) and private ones (_helper) are not tools
    assert set(toolset.tools) == {"search_books", "average", "undocumented", "pair_up"}
    assert toolset.state() == {}
    toolset.reset(5)  # a stateless toolset accepts a reset and stays stateless
    assert toolset.state() == {}


def test_importable_module_with_one_toolset_class(on_path):
    toolset = load_toolset("thermostat").create()
    assert set(toolset.tools) == THERMOSTAT_TOOLS  # reset, state, close, _private: not tools
    assert set(toolset.state()) == {"rooms", "away", "changes"}


def test_py_file_path_and_py_scheme():
    direct = load_toolset(THERMOSTAT).create()
    schemed = load_toolset(f"py:{THERMOSTAT}").create()
    assert set(direct.tools) == set(schemed.tools) == THERMOSTAT_TOOLS


def test_relative_py_path(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent.parent)
    assert set(load_toolset("tests/fixtures/thermostat.py").create().tools) == THERMOSTAT_TOOLS


def test_file_colon_class_picks_one_of_several():
    toolset = load_toolset(f"{FIXTURES / 'two_homes.py'}:CoolHome").create()
    assert set(toolset.tools) == {"cooler"}
    assert toolset.call("cooler", {}) == 24


def test_module_colon_attr(on_path):
    assert set(load_toolset("thermostat:SmartHome").create().tools) == THERMOSTAT_TOOLS
    warm = load_toolset("two_homes:make_warm").create()  # a factory function
    assert set(warm.tools) == {"warmer", "crash"}
    factory = load_toolset("sc_core.default_plugins.calculator:make_toolset")
    assert "multiply" in factory.create().tools


def test_several_toolset_classes_is_a_clear_error(on_path):
    with pytest.raises(ScError) as caught:
        load_toolset("two_homes")
    message = str(caught.value)
    assert "several toolset classes" in message
    assert "WarmHome" in message and "CoolHome" in message
    assert "module:Class" in message


def test_a_dataclass_in_a_toolset_file_imports(tmp_path):
    """Regression: a file imported by path must be in sys.modules while it runs."""
    toolset = load_toolset(f"{FIXTURES / 'two_homes.py'}:WarmHome").create()
    assert toolset.call("warmer", {"degrees": 2}) == 22
    assert toolset.state() == {"temperature": 22, "log": ["+2"]}


def test_syntax_error_is_one_line(tmp_path):
    broken = tmp_path / "broken_tools.py"
    broken.write_text("def tool(x: int) -> int\n    return x\n")
    with pytest.raises(ScError) as caught:
        load_toolset(str(broken))
    message = str(caught.value)
    assert "\n" not in message
    assert "SyntaxError" in message and "broken_tools.py" in message
    assert "sc_toolset_broken_tools" not in sys.modules  # a failed import leaves nothing behind


def test_import_error_inside_the_module(tmp_path):
    needs = tmp_path / "needs_numpy_9.py"
    needs.write_text("import numpy_nine_does_not_exist\n\ndef f() -> int:\n    return 1\n")
    with pytest.raises(ScError, match="ModuleNotFoundError: No module named 'numpy_nine"):
        load_toolset(str(needs))


def test_missing_file_missing_module_missing_attribute(on_path, tmp_path):
    with pytest.raises(ScError, match="toolset file not found"):
        load_toolset(str(tmp_path / "nowhere.py"))
    with pytest.raises(ScError, match="no toolset or module named 'no_such_module_xyz'"):
        load_toolset("no_such_module_xyz")
    with pytest.raises(ScError, match="has no attribute 'Nope'"):
        load_toolset("thermostat:Nope")


def test_module_with_nothing_to_offer(tmp_path):
    empty = tmp_path / "constants.py"
    empty.write_text("ANSWER = 42\n")
    with pytest.raises(ScError, match="defines no public functions or toolset class"):
        load_toolset(str(empty))


def test_module_with_star_args_tool(tmp_path):
    spread = tmp_path / "spread_tools.py"
    spread.write_text("def total(*values: int) -> int:\n    '''Sum.'''\n    return sum(values)\n")
    with pytest.raises(ScError, match=r"tool 'total': \*args"):
        load_toolset(str(spread))


def test_class_whose_constructor_fails(tmp_path):
    path = tmp_path / "fragile.py"
    path.write_text(
        "class Fragile:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('no database')\n"
        "    def reset(self, seed): pass\n"
        "    def state(self): return {}\n"
        "    def ping(self) -> str:\n"
        "        '''Ping.'''\n"
        "        return 'pong'\n"
    )
    with pytest.raises(ScError, match=r"Fragile\(\) failed: no database"):
        load_toolset(str(path))


def test_import_target_spec_forms(on_path):
    import thermostat

    assert import_target("thermostat") is thermostat
    assert import_target("thermostat:SmartHome") is thermostat.SmartHome
    from_file = import_target(f"{THERMOSTAT}:SmartHome")
    assert from_file.__name__ == "SmartHome" and from_file.__module__ == "sc_toolset_thermostat"


# -- instances ---------------------------------------------------------------------------------


def test_instances_from_a_class_are_independent():
    spec = load_toolset(THERMOSTAT)
    first, second = spec.create(), spec.create()
    first.call("set_target", {"room": "kitchen", "celsius": 25})
    assert first.state()["rooms"]["kitchen"]["target"] == 25.0
    assert second.state()["rooms"]["kitchen"]["target"] == 20.0


def test_instances_from_a_given_object_are_deep_copies(on_path):
    import two_homes

    spec = load_toolset("two_homes:SHARED")
    first, second = spec.create(), spec.create()
    first.call("cooler", {})
    first.call("cooler", {})
    assert first.state() == {"temperature": 23}
    assert second.state() == {"temperature": 25}
    assert two_homes.SHARED.state() == {"temperature": 25}  # the module's object is untouched


def test_reset_is_reproducible_and_close_is_called():
    toolset = load_toolset(THERMOSTAT).create()
    toolset.reset(3)
    seed3 = toolset.state()
    toolset.call("set_mode", {"room": "office", "mode": "cool"})
    assert toolset.state() != seed3
    toolset.reset(3)
    assert toolset.state() == seed3
    toolset.reset(4)
    assert toolset.state() != seed3
    toolset.close()
    assert toolset.state()["rooms"] == {}


def test_state_is_a_plain_json_copy():
    inner = {"pair": (1, 2), "log": ["a"]}
    toolset = Toolset([Tool.from_function(lambda: 1, name="one")], state=lambda: inner)
    state = toolset.state()
    assert state == {"pair": [1, 2], "log": ["a"]}  # a tuple is an array
    inner["log"].append("b")
    assert state["log"] == ["a"]  # a snapshot: later changes to the toolset do not reach it


def _cyclic() -> dict:
    loop: dict = {"self": None}
    loop["self"] = loop
    return loop


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ({"due": [datetime.date(2024, 5, 1)]}, 'state["due"][0] is a datetime.date'),
        ({"tags": {"a", "b"}}, 'state["tags"] is a set'),
        ({"path": Path("/x")}, 'state["path"] is a pathlib.PosixPath'),
        ({"x": [1, object()]}, 'state["x"][1] is an object'),
        ({"temp": float("nan")}, 'state["temp"] is NaN'),
        ({"limit": [float("-inf")]}, 'state["limit"][0] is -Infinity'),
        ({"rooms": {101: "free"}}, 'state["rooms"] has a key that is not a string: 101'),
        (_cyclic(), 'state["self"] refers back to a container it is in'),
        (b"raw", "state is a bytes"),
    ],
)
def test_a_state_that_is_not_json_data_is_an_error_naming_the_value(state, where):
    toolset = Toolset([Tool.from_function(lambda: 1, name="one")], state=lambda: state)
    with pytest.raises(ScError) as caught:
        toolset.state()
    assert str(caught.value) == f"state() is not JSON data: {where}"


def test_a_toolset_needs_tools():
    with pytest.raises(ScError, match="no tools"):
        Toolset([])


# -- Toolset.call validation -------------------------------------------------------------------


@pytest.fixture
def home() -> Toolset:
    return load_toolset(THERMOSTAT).create()


@pytest.fixture
def books(on_path) -> Toolset:
    return load_toolset("plain_tools").create()


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("fly", {}, "unknown tool 'fly'; available: get_room, list_rooms, set_away"),
        ("get_room", ["kitchen"], "get_room: arguments must be an object"),
        ("set_target", {"room": "kitchen"}, "set_target: missing argument(s) celsius"),
        ("get_room", {"room": "kitchen", "floor": 1}, "get_room: unknown argument(s) floor"),
        ("get_room", {"room": 7}, "get_room: argument 'room' must be a string, got 7"),
        (
            "set_target",
            {"room": "kitchen", "celsius": "21"},
            "set_target: argument 'celsius' must be a number, got \"21\"",
        ),
        (
            "set_target",
            {"room": "kitchen", "celsius": True},
            "set_target: argument 'celsius' must be a number, got true",
        ),
        ("set_away", {"away": 1}, "set_away: argument 'away' must be a boolean, got 1"),
        (
            "set_mode",
            {"room": "kitchen", "mode": "turbo"},
            'set_mode: argument \'mode\' must be one of ["off", "heat", "cool"], got "turbo"',
        ),
        ("get_room", {"room": "attic"}, "no room 'attic'; rooms: kitchen, bedroom, office"),
        ("set_target", {"room": "kitchen", "celsius": 45}, "target must be between 10 and 30"),
    ],
)
def test_call_rejects_bad_calls_with_a_tool_error(home, name, arguments, message):
    before = home.state()
    with pytest.raises(ToolError) as caught:
        home.call(name, arguments)
    assert message in str(caught.value)
    assert home.state() == before  # a refused call changes nothing


def test_call_runs_good_calls(home):
    assert home.call("list_rooms", {}) == ["kitchen", "bedroom", "office"]
    assert home.call("set_target", {"room": "office", "celsius": 18})["target"] == 18.0
    assert home.call("set_mode", {"room": "office", "mode": "heat"})["mode"] == "heat"
    assert home.call("set_away", {"away": True}) is True
    with pytest.raises(ToolError, match="away mode"):
        home.call("set_mode", {"room": "office", "mode": "off"})
    assert home.state()["changes"] == 2


def test_call_integer_and_optional_and_defaults(books):
    assert [b["title"] for b in books.call("search_books", {"query": ""})] == [
        "Dune",
        "Emma",
        "Neuromancer",
    ]
    sf = books.call("search_books", {"query": "", "genre": "sf", "sort": "year", "limit": 1})
    assert sf == [{"title": "Dune", "year": 1965, "genre": "sf"}]
    assert len(books.call("search_books", {"query": "", "genre": None})) == 3  # explicit null
    with pytest.raises(ToolError, match="argument 'limit' must be an integer, got 2.5"):
        books.call("search_books", {"query": "", "limit": 2.5})
    with pytest.raises(ToolError, match="argument 'sort' must be one of"):
        books.call("search_books", {"query": "", "sort": "author"})
    assert books.call("average", {"values": [1, 2, 3]}) == 2.0
    assert books.call("average", {"values": [1, 3], "weights": [3, 1]}) == 1.5  # int is a number
    assert books.call("pair_up", {"labels": {}, "pair": [1, 2], "either": "x"}) == [{}, [1, 2], "x"]


def test_a_tool_that_raises_anything_becomes_a_tool_error(books, on_path):
    with pytest.raises(ToolError, match=r"average failed: ValueError: zip\(\) argument 2"):
        books.call("average", {"values": [1, 2], "weights": [1.0]})
    warm = load_toolset("two_homes:WarmHome").create()
    with pytest.raises(ToolError, match="crash failed: ZeroDivisionError"):
        warm.call("crash", {})
    with pytest.raises(ToolError, match="^degrees must be from 1 to 5$"):  # passed on as is
        warm.call("warmer", {"degrees": 9})


def plot(
    xs: list[float],
    pairs: list[tuple[int, int]] | None = None,
    style: Literal["line", "dots"] = "line",
    label: int | str = 0,
) -> int:
    """Plot some numbers.

    Args:
        xs: The numbers.
        pairs: Index pairs to join.
        style: How to draw them.
        label: A number or a name.
    """
    return len(xs)


NESTED = {
    "type": "object",
    "properties": {
        "point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
            "additionalProperties": False,
        },
        "scores": {"type": "object", "additionalProperties": {"type": "integer"}},
        "tree": {"$ref": "#/$defs/Node"},
        "mode": {"type": "string", "enum": ["a", "b"], "nullable": True},
    },
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
        }
    },
}


@pytest.fixture
def shapes() -> Toolset:
    """A typed Python tool, and one with a foreign (MCP-like) schema of nested objects."""
    return Toolset([Tool.from_function(plot), Tool("shape", "A shape.", NESTED, lambda **a: a)])


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("plot", {"xs": [1, "a"]}, "argument 'xs'[1] must be a number, got \"a\""),
        ("plot", {"xs": [1.5, True]}, "argument 'xs'[1] must be a number, got true"),
        ("plot", {"xs": "12"}, "argument 'xs' must be an array, got \"12\""),
        ("plot", {"xs": [], "pairs": [[1, 2], [3]]}, "'pairs'[1] must have at least 2 item(s)"),
        ("plot", {"xs": [], "pairs": [[1, 2.5]]}, "'pairs'[0][1] must be an integer, got 2.5"),
        ("plot", {"xs": [], "style": "bars"}, 'must be one of ["line", "dots"], got "bars"'),
        ("plot", {"xs": [], "label": 1.5}, "'label' must be an integer or a string, got 1.5"),
        ("plot", {"xs": [], "label": None}, "'label' must be an integer or a string, got null"),
        ("shape", {"point": {"x": 1}}, "argument 'point' is missing key(s) \"y\""),
        ("shape", {"point": {"x": 1, "y": 2, "z": 3}}, "'point' has unknown key(s) \"z\""),
        ("shape", {"point": {"x": 1, "y": "2"}}, '\'point\'["y"] must be a number, got "2"'),
        ("shape", {"scores": {"a": 1, "b": 1.5}}, "'scores'[\"b\"] must be an integer, got 1.5"),
        (
            "shape",
            {"tree": {"children": [{"children": [{"children": 3}]}]}},
            '\'tree\'["children"][0]["children"][0]["children"] must be an array, got 3',
        ),
        ("shape", {"mode": "c"}, 'argument \'mode\' must be one of ["a", "b"], got "c"'),
    ],
)
def test_call_checks_items_and_nested_objects_with_the_path(shapes, name, arguments, message):
    with pytest.raises(ToolError) as caught:
        shapes.call(name, arguments)
    assert str(caught.value).startswith(f"{name}: ")
    assert message in str(caught.value)


def test_call_accepts_what_the_schema_allows(shapes):
    assert shapes.call("plot", {"xs": [1, 2.5]}) == 2  # an integer is a number
    assert shapes.call("plot", {"xs": [], "pairs": None, "label": "a"}) == 0
    assert shapes.call("plot", {"xs": [], "pairs": [[1, 2]], "style": "dots", "label": 3}) == 0
    tree = {"children": [{"children": []}, {}]}
    arguments = {"point": {"x": 1, "y": 2.5}, "scores": {"a": 1}, "tree": tree, "mode": None}
    assert shapes.call("shape", arguments) == arguments


def test_a_result_that_is_not_json_data_is_a_tool_error_naming_the_value():
    def due(task: str) -> dict:
        """When a task is due.

        Args:
            task: The task.
        """
        return {"task": task, "dates": (datetime.date(2024, 5, 1),)}

    def pair() -> tuple:
        """Two numbers."""
        return (1, 2)

    toolset = Toolset([Tool.from_function(due), Tool.from_function(pair)])
    with pytest.raises(ToolError) as caught:
        toolset.call("due", {"task": "tax"})
    assert str(caught.value) == (
        'due\'s result is not JSON data: result["dates"][0] is a datetime.date'
    )
    assert toolset.call("pair", {}) == [1, 2]  # a tuple is an array


def test_tool_warnings_name_what_models_will_not_be_told(on_path):
    import plain_tools

    assert Tool.from_function(plain_tools.search_books).warnings() == []
    assert Tool.from_function(plain_tools.undocumented).warnings() == [
        "tool 'undocumented' has no description",
        "tool 'undocumented' parameter 'x' has no JSON type; models will see type \"any\"",
        "tool 'undocumented' parameter 'x' has no description",
        "tool 'undocumented' parameter 'flag' has no description",
    ]


# -- sc tools ----------------------------------------------------------------------------------


def test_sc_tools_json(run_sc):
    result = run_sc("tools", "tests/fixtures/thermostat.py", "--json")
    assert result.returncode == 0, result.stderr
    specs = json.loads(result.stdout)
    assert {spec["function"]["name"] for spec in specs} == THERMOSTAT_TOOLS
    by_name = {spec["function"]["name"]: spec for spec in specs}
    assert all(spec["type"] == "function" for spec in specs)
    set_target = by_name["set_target"]["function"]
    assert set_target["description"] == "Set the target temperature of a room."
    assert set_target["parameters"]["required"] == ["room", "celsius"]
    assert set_target["parameters"]["properties"]["celsius"] == {
        "type": "number",
        "description": "The new target in degrees Celsius, from 10 to 30 inclusive.",
    }
    assert by_name["set_mode"]["function"]["parameters"]["properties"]["mode"]["enum"] == [
        "off",
        "heat",
        "cool",
    ]


def test_sc_tools_table(run_sc):
    result = run_sc("tools", "calculator")
    assert result.returncode == 0, result.stderr
    for name in ("add", "sqrt", "evaluate"):
        assert name in result.stdout


def test_python_toolset_checks_at_load_time(tmp_path):
    """Errors come when the spec is loaded, not later in a worker thread."""
    path = tmp_path / "late.py"
    path.write_text("def good(x: int) -> int:\n    '''Good.'''\n    return x\n")
    factory = python_toolset(str(path))
    assert factory().call("good", {"x": 4}) == 4


def test_sc_tools_warns_on_stderr_and_keeps_json_clean(run_sc):
    result = run_sc("tools", "tests/fixtures/plain_tools.py", "--json")
    assert result.returncode == 0, result.stderr
    assert {spec["function"]["name"] for spec in json.loads(result.stdout)} >= {"undocumented"}
    assert result.stderr.splitlines() == [
        "warning: tool 'undocumented' has no description",
        "warning: tool 'undocumented' parameter 'x' has no JSON type; models will see type \"any\"",
        "warning: tool 'undocumented' parameter 'x' has no description",
        "warning: tool 'undocumented' parameter 'flag' has no description",
    ]
    documented = run_sc("tools", "tests/fixtures/thermostat.py")
    assert documented.returncode == 0 and documented.stderr == ""


def test_sc_tools_says_once_that_the_state_is_not_json_data(run_sc, tmp_path):
    path = tmp_path / "diary.py"
    path.write_text(
        "import datetime\n\n\n"
        "class Diary:\n"
        "    def reset(self, seed):\n"
        "        self.due = [datetime.date(2024, 5, seed + 1)]\n\n"
        "    def state(self):\n"
        "        return {'due': self.due}\n\n"
        "    def postpone(self, days: int) -> int:\n"
        "        '''Postpone.\n\n        Args:\n            days: How many days.\n        '''\n"
        "        return days\n"
    )
    result = run_sc("tools", str(path))
    assert result.returncode == 0, result.stderr
    assert "postpone" in result.stdout
    assert result.stderr.splitlines() == [
        'warning: state() is not JSON data: state["due"][0] is a datetime.date (after reset(0))'
    ]
