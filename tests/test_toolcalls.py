"""Tool-call formats: system prompts, parsing realistic (and hostile) model turns, the answer
convention, tool-result rendering, and choosing a format from a tokenizer's chat template."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sc_core.toolcalls import (
    ANSWER_INSTRUCTIONS,
    FORMATS,
    MAX_CALLS_PER_TURN,
    MAX_RESULT_CHARS,
    FallbackFormat,
    HermesFormat,
    Llama3JsonFormat,
    ParsedTurn,
    PythonicFormat,
    ToolCall,
    ToolCallFormat,
    detect_format,
    parse_answer,
    render_tool_result,
)

SMOLLM2 = Path(os.path.expanduser("~/.cache/sc/models/SmolLM2-135M-Instruct"))

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
SET_MODE = {
    "type": "function",
    "function": {
        "name": "set_mode",
        "description": "Set the thermostat mode of a room.",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {"type": "string"},
                "mode": {"type": "string", "enum": ["heat", "cool", "off"]},
            },
            "required": ["room", "mode"],
        },
    },
}
TOOLS = [ADD, SET_MODE]
NAMES = {"add", "set_mode", "get_room", "list_rooms"}


def calls(turn: ParsedTurn) -> list[tuple[str, dict]]:
    return [(call.name, call.arguments) for call in turn.tool_calls]


def assert_valid_calls(turn: ParsedTurn, expected: list[tuple[str, dict]]) -> None:
    assert turn.error is None, turn.error
    assert calls(turn) == expected
    assert not turn.has_answer and turn.answer is None


def assert_answer(turn: ParsedTurn, expected) -> None:
    assert turn.error is None, turn.error
    assert turn.tool_calls == []
    assert turn.has_answer
    assert turn.answer == expected
    assert type(turn.answer) is type(expected)


def assert_invalid(turn: ParsedTurn, *fragments: str) -> None:
    assert turn.error, turn
    assert not turn.has_answer
    for fragment in fragments:
        assert fragment in turn.error, turn.error


# -- chat templates ------------------------------------------------------------------------------
# Representative excerpts of real templates: the parts that decide the format and render tools.

QWEN25_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and \
arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \
\\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or \
(message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# Llama 3.1 (tools in the first user message by default; <|python_tag|> for built-in tools).
LLAMA31_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- set first_user_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument \
name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + \
message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {{- ")" }}
        {%- else %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {{- message.content }}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama 3.2 1B/3B: the same JSON calls, no built-in tools (so no <|python_tag|>).
LLAMA32_TEMPLATE = """{{- bos_token }}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n\\n" }}
{%- if tools is not none %}
    {{- "You have access to the following functions. To call a function, please respond with \
JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument \
name and its value}.' }}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
{%- endif %}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] \
| trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\
{%- endif %}
"""

# Llama 3.2 pythonic tool calling (as served by vLLM's tool_chat_template_llama3.2_pythonic).
LLAMA32_PYTHONIC_TEMPLATE = """{{- bos_token }}
{%- if not tools is defined %}{%- set tools = none %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
    {{- "You have access to the following functions. To call functions, please respond with a \
python list of the calls. " }}
    {{- 'Respond in the format [func_name1(params_name1=params_value1, \
params_name2=params_value2...), func_name2(params)] ' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
{%- endif %}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if 'tool_calls' in message %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n[' -}}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}\
{%- endif %}
            {{- tool_call.name + '(' -}}
            {%- for param in tool_call.arguments %}
                {{- param + '=' -}}
                {{- "%s" | format(tool_call.arguments[param]) -}}
                {% if not loop.last %}, {% endif %}
            {%- endfor %}
            {{- ')' -}}
            {% if not loop.last %}, {% endif %}
        {%- endfor %}
        {{- ']<|eot_id|>' -}}
    {%- else %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + \
message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\
{%- endif %}
"""

# Mistral-style: takes tools, but with none of the markers above.
MISTRAL_TEMPLATE = """{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {%- if tools is not none and loop.last %}
            {{- '[AVAILABLE_TOOLS] [' }}{%- for tool in tools %}{{- tool | tojson }}\
{%- endfor %}{{- '][/AVAILABLE_TOOLS]' }}
        {%- endif %}
        {{- '[INST] ' + message['content'] + '[/INST]' }}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token }}
    {%- endif %}
{%- endfor %}
"""

# ChatML without tools (SmolLM2's, in substance).
CHATML_TEMPLATE = """{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}\
{{ '<|im_start|>assistant\\n' }}{% endif %}"""


def fake_tokenizer(template):
    return SimpleNamespace(chat_template=template)


# -- the registry and the public shape -----------------------------------------------------------


def test_formats_registry():
    assert set(FORMATS) == {"hermes", "llama3_json", "pythonic", "fallback"}
    for name, cls in FORMATS.items():
        assert issubclass(cls, ToolCallFormat)
        assert cls.name == name
    assert FORMATS["fallback"]().native is False
    assert all(FORMATS[name]().native for name in ("hermes", "llama3_json", "pythonic"))
    assert FORMATS["hermes"](native=False).native is False
    assert repr(HermesFormat()) == "HermesFormat(native=True)"


def test_tool_call_to_openai():
    call = ToolCall("add", {"a": 1})
    assert call.to_openai() == {
        "type": "function",
        "function": {"name": "add", "arguments": {"a": 1}},
    }


# -- system prompts ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hermes", "llama3_json", "pythonic"])
def test_native_system_prompt_is_only_the_answer_convention(name):
    prompt = FORMATS[name]().system_prompt(TOOLS)
    assert prompt == ANSWER_INSTRUCTIONS
    assert "<answer>" in prompt and "add" not in prompt


def test_fallback_system_prompt_lists_tools_and_teaches_one_example():
    prompt = FallbackFormat().system_prompt(TOOLS)
    lines = prompt.splitlines()
    assert lines[:4] == [
        "You can use these tools:",
        "add: Add two numbers.",
        "  a (integer, required)",
        "  b (number, required)",
    ]
    assert lines[4] == "set_mode: Set the thermostat mode of a room."
    # one concrete example, with the first tool and its real argument names, that parses
    example = next(line for line in lines if line.startswith("<tool_call>"))
    assert example == '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1.5}}</tool_call>'
    assert_valid_calls(FallbackFormat().parse(example), [("add", {"a": 1, "b": 1.5})])
    assert ANSWER_INSTRUCTIONS in prompt
    assert len(prompt) < 1500  # terse


def test_fallback_system_prompt_shows_each_tool_in_full():
    # every sentence of the description and every argument's type, requiredness, default
    # and description: small models otherwise guess what an argument means
    search = {
        "name": "search",
        "description": "Search the catalog. Results come back best first; at most 50.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words to look for."},
                "limit": {"type": "integer", "default": 10, "description": "How many, 1 to 50."},
                "sort": {"enum": ["price", "name"], "default": "price"},
                "since": {"type": "string", "nullable": True},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
                    },
                },
                "any": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["query"],
        },
    }
    assert FallbackFormat().system_prompt([search]).splitlines()[1:8] == [
        "search: Search the catalog. Results come back best first; at most 50.",
        "  query (string, required): Words to look for.",
        "  limit (integer, optional, default 10): How many, 1 to 50.",
        '  sort ("price"|"name", optional, default "price")',
        "  since (string or null, optional)",
        "  items (list[{id: string, n: integer}], optional)",
        "  any (integer or string, optional)",
    ]
    bare = {"name": "now", "description": "", "parameters": {"type": "object", "properties": {}}}
    assert FallbackFormat().system_prompt([bare]).splitlines()[1:3] == ["now", "  (no arguments)"]


def test_fallback_shop_prompt_costs_fewer_tokens_than_the_json_schemas():
    from sc_core.tools import load_toolset

    specs = [tool.spec() for tool in load_toolset("shop").create().tools.values()]
    prompt = FallbackFormat().system_prompt(specs)
    for spec in specs:  # every argument's description is there
        for schema in spec["function"]["parameters"]["properties"].values():
            assert schema["description"] in prompt
    assert len(prompt) < 0.75 * len("\n".join(json.dumps(spec) for spec in specs))


def test_fallback_system_prompt_accepts_bare_function_specs_and_enums():
    bare = dict(SET_MODE["function"])
    prompt = FallbackFormat().system_prompt([bare])
    assert '<tool_call>{"name": "set_mode", "arguments": {"room": "...", "mode": "heat"}}' in prompt


def test_system_prompt_without_tools():
    assert FallbackFormat().system_prompt([]) == ANSWER_INSTRUCTIONS


@pytest.mark.parametrize("name", ["hermes", "llama3_json", "pythonic"])
def test_non_native_examples_parse_back(name):
    fmt = FORMATS[name](native=False)
    prompt = fmt.system_prompt(TOOLS)
    assert "  room (string, required)" in prompt
    example = prompt.split("for example:\n", 1)[1].splitlines()[0]
    assert_valid_calls(fmt.parse(example), [("add", {"a": 1, "b": 1.5})])


def test_pythonic_example_uses_python_literals():
    text = PythonicFormat().call_instructions(
        ToolCall("f", {"flag": True, "none": None, "xs": [1, "a"], "d": {"k": False}})
    )
    line = text.split("for example:\n", 1)[1].splitlines()[0]
    assert line == '[f(flag=True, none=None, xs=[1, "a"], d={"k": False})]'
    assert_valid_calls(
        PythonicFormat().parse(line),
        [("f", {"flag": True, "none": None, "xs": [1, "a"], "d": {"k": False}})],
    )


# -- the answer convention -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>41</answer>", 41),
        ("<answer>41.0</answer>", 41.0),
        ("<answer> -3 </answer>", -3),
        ('<answer>"Paris"</answer>', "Paris"),
        ("<answer>Paris</answer>", "Paris"),
        ("<answer>  the living room  </answer>", "the living room"),
        ('<answer>["a", "b"]</answer>', ["a", "b"]),
        ('<answer>{"total": 3}</answer>', {"total": 3}),
        ("<answer>true</answer>", True),
        ("<answer>null</answer>", None),
        ("<answer>NaN</answer>", "NaN"),
        ("<answer>Infinity</answer>", "Infinity"),
        ("<answer>41.</answer>", "41."),
        ("<answer></answer>", ""),
        ("<answer>```json\n[1, 2]\n```</answer>", [1, 2]),
        ("I added them up. <ANSWER>7</Answer>", 7),
        ("<answer>41", 41),  # the closing tag forgotten
        ("<answer>1</answer> no wait <answer>2</answer>", 2),  # the last complete one
        ("<answer>1</answer> and then <answer>junk", 1),
        ("41", 41),
        (" 41.0\n", 41.0),
        ("The room is warm.", "The room is warm."),
        ("café ☕ 日本語", "café ☕ 日本語"),
        ("<answer>日本語</answer>", "日本語"),
        ("<think>maybe 3</think><answer>4</answer><|im_end|>", 4),
    ],
)
def test_parse_answer(text, expected):
    value = parse_answer(text)
    assert value == expected or (value is None and expected is None)
    assert type(value) is type(expected)


def test_parse_answer_huge_number_stays_text():
    digits = "9" * 5000
    assert parse_answer(f"<answer>{digits}</answer>") == digits


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_answers_in_every_format(name):
    fmt = FORMATS[name]()
    assert_answer(fmt.parse("The total is <answer>41</answer>", tool_names=NAMES), 41)
    assert_answer(fmt.parse("41", tool_names=NAMES), 41)
    assert_answer(
        fmt.parse("Heat is on in the kitchen.", tool_names=NAMES), "Heat is on in the kitchen."
    )
    assert_answer(fmt.parse('<answer>["kitchen", "den"]</answer><|eot_id|>'), ["kitchen", "den"])
    assert_invalid(fmt.parse(""), "empty turn")
    assert_invalid(fmt.parse("   \n\t<|im_end|>"), "empty turn")
    assert_invalid(fmt.parse("<think>Let me think about the rooms"), "<think>")


# -- hermes --------------------------------------------------------------------------------------

QWEN_TWO_CALLS = """I'll check both rooms first.
<tool_call>
{"name": "get_room", "arguments": {"room": "kitchen"}}
</tool_call>
<tool_call>
{"name": "set_mode", "arguments": {"room": "den", "mode": "heat"}}
</tool_call><|im_end|>"""


def test_hermes_qwen_style_calls():
    turn = HermesFormat().parse(QWEN_TWO_CALLS, tool_names=NAMES)
    assert_valid_calls(
        turn, [("get_room", {"room": "kitchen"}), ("set_mode", {"room": "den", "mode": "heat"})]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>', {"a": 1, "b": 2}),
        ('<tool_call>{"name": "add", "parameters": {"a": 1}}</tool_call>', {"a": 1}),
        ('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>', {"a": 1}),
        ('<tool_call>{"name": "add", "arguments": ""}</tool_call>', {}),
        ('<tool_call>{"name": "add"}</tool_call>', {}),
        ('<tool_call>{"name": "add", "arguments": null}</tool_call>', {}),
        ('<tool_call>{"arguments": {"a": 1}, "name": "add"}</tool_call>', {"a": 1}),
        ('<tool_call>\n{"name": "add", "arguments": {"a": 1}}', {"a": 1}),  # no closing tag
        (
            '<tool_call>\n```json\n{"name": "add", "arguments": {"a": 1}}\n```\n</tool_call>',
            {"a": 1},
        ),
        ('<tool_call>{"name": "add", "arguments": {"a": 1}}}</tool_call>', {"a": 1}),  # stray }
        (
            "<tool_call>{'name': 'add', 'arguments': {'a': 1, 'b': 'x'}}</tool_call>",
            {"a": 1, "b": "x"},
        ),
        (
            "<tool_call>{'name': 'add', 'arguments': {'ok': True, 'v': None}}</tool_call>",
            {"ok": True, "v": None},
        ),
        (
            "<tool_call>{'name': 'add', 'arguments': {'ok': true, 'v': null}}</tool_call>",
            {"ok": True, "v": None},
        ),
        (
            '<tool_call>{"type": "function", "function": '
            '{"name": "add", "arguments": "{\\"a\\": 2}"}}</tool_call>',
            {"a": 2},
        ),
        (
            '<tool_call>{"name": " add ", "arguments": {"a": 1}} I hope this works</tool_call>',
            {"a": 1},
        ),
    ],
)
def test_hermes_lenient_shapes(text, expected):
    assert_valid_calls(HermesFormat().parse(text), [("add", expected)])


def test_hermes_several_objects_and_lists_in_one_tag():
    one_tag = (
        '<tool_call>{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {"x": 1}}'
        "</tool_call>"
    )
    assert_valid_calls(HermesFormat().parse(one_tag), [("a", {}), ("b", {"x": 1})])
    as_list = (
        '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]</tool_call>'
    )
    assert_valid_calls(HermesFormat().parse(as_list), [("a", {}), ("b", {})])


def test_hermes_missing_tags_between_calls():
    # the first call never closed: it runs to the next opening tag
    text = (
        '<tool_call>{"name": "a", "arguments": {}}\n'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    assert_valid_calls(HermesFormat().parse(text), [("a", {}), ("b", {})])
    # the opening tag forgotten (the template had already opened it)
    text = '{"name": "a", "arguments": {"x": 1}}\n</tool_call>'
    assert_valid_calls(HermesFormat().parse(text), [("a", {"x": 1})])


def test_hermes_unicode():
    text = (
        '<tool_call>{"name": "traduire", "arguments": {"texte": "café ☕", "langue": "日本語"}}'
        "</tool_call>"
    )
    assert_valid_calls(
        HermesFormat().parse(text), [("traduire", {"texte": "café ☕", "langue": "日本語"})]
    )
    escaped = '<tool_call>{"name": "t", "arguments": {"s": "\\u00e9\\ud83d\\ude00"}}</tool_call>'
    assert_valid_calls(HermesFormat().parse(escaped), [("t", {"s": "é😀"})])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>',
            "malformed JSON in <tool_call>",
        ),
        ("<tool_call>{name: add}</tool_call>", "malformed JSON in <tool_call>"),
        ("<tool_call>add(a=1)</tool_call>", "malformed JSON in <tool_call>"),
        ("<tool_call></tool_call>", "empty <tool_call>"),
        ("<tool_call>[]</tool_call>", "empty <tool_call>"),
        ('<tool_call>{"arguments": {"a": 1}}</tool_call>', '"name"'),
        ('<tool_call>{"name": 3, "arguments": {}}</tool_call>', '"name"'),
        ("<tool_call>[1, 2]</tool_call>", "expected an object"),
        ('<tool_call>"add"</tool_call>', "expected an object"),
        ('<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>', "must be an object"),
        ('<tool_call>{"name": "add", "arguments": "{bad json"}</tool_call>', "not valid JSON"),
        ('<tool_call>{"name": "add", "arguments": "[1]"}</tool_call>', "must be an object"),
        ("<tool_call>" + "[" * 5000 + "</tool_call>", "malformed JSON"),
        (
            "<tool_call>{'name': 'add', 'arguments': {'a': __import__('os')}}</tool_call>",
            "malformed",
        ),
    ],
)
def test_hermes_malformed(text, fragment):
    assert_invalid(HermesFormat().parse(text, tool_names=NAMES), fragment)


def test_hermes_error_keeps_calls_parsed_before_it():
    text = (
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "b", "arguments": </tool_call>'
    )
    turn = HermesFormat().parse(text)
    assert_invalid(turn, "malformed JSON")
    assert calls(turn) == [("a", {})]


def test_hermes_calls_take_precedence_over_an_answer():
    text = '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call> <answer>3</answer>'
    assert_valid_calls(HermesFormat().parse(text), [("add", {"a": 1})])


def test_hermes_bare_json_call_of_an_unknown_tool_is_an_error_not_an_answer():
    # without the tool names, nothing says a bare object is a call (known tools: see below)
    turn = HermesFormat().parse('{"name": "add", "arguments": {"a": 1}}')
    assert_invalid(turn, "write tool calls as <tool_call>")
    turn = HermesFormat().parse('{"name": "multiply", "arguments": {"a": 1}}', tool_names=NAMES)
    assert_invalid(turn, "unknown tool 'multiply' (the tools are add, get_room", "<tool_call>")
    turn = HermesFormat().parse('{"name": "add", "arguments": {"a": 1, "b": 2 +', tool_names=NAMES)
    assert_invalid(turn, "malformed JSON tool call")
    # a JSON object that merely has a "name" is an answer
    assert_answer(HermesFormat().parse('{"name": "Ada", "age": 36}'), {"name": "Ada", "age": 36})


@pytest.mark.parametrize(
    ("text", "expression"),
    [  # the first three: the trained Qwen2.5-Coder-0.5B on evals/calculator.jsonl
        (
            '{"name": "final_answer", "arguments": {"answer": 4.75 * 3 + 1.20 * 2}}',
            "4.75 * 3 + 1.20 * 2",
        ),
        ('{"name": "multiply", "arguments": {"a": 22.40, "b": 40 + 6 * 1.5}}', "40 + 6 * 1.5"),
        (
            '{"name": "final_answer", "arguments": {"answer": (82 + 91 + 77 + 68 + 95) / 5}}',
            "(82 + 91 + 77 + 68 + 95) / 5",
        ),
        ('<tool_call>{"name": "add", "arguments": {"a": 2 ** 10, "b": 1}}</tool_call>', "2 ** 10"),
    ],
)
def test_arithmetic_where_a_value_goes_is_named_with_what_to_do(text, expression):
    names = {"add", "multiply", "final_answer"}
    for fmt in (HermesFormat(), Llama3JsonFormat()):
        turn = fmt.parse(text, tool_names=names)
        assert_invalid(turn, f"an argument is arithmetic, {expression}, but arguments are values")


def test_other_malformed_json_keeps_the_decoder_message():
    names = {"add"}
    for text in (
        '{"name": "add", "arguments": {"a": -3.75, "b": 2 x}}',  # a number is not arithmetic
        '{"name": "add", "arguments": {"a": "1 + 2" "b": 3}}',  # arithmetic in a string is text
    ):
        turn = HermesFormat().parse(text, tool_names=names)
        assert_invalid(turn, "malformed JSON tool call: Expecting")


def test_think_blocks_are_dropped():
    text = (
        '<think>Maybe <tool_call>{"name": "wrong", "arguments": {}}</tool_call></think>\n'
        '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    )
    assert_valid_calls(HermesFormat().parse(text), [("add", {"a": 1})])
    assert_answer(HermesFormat().parse("<think>\nhmm\n</think>\n\n<answer>5</answer>"), 5)


def test_too_many_calls():
    one = '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    assert_valid_calls(
        HermesFormat().parse(one * MAX_CALLS_PER_TURN), [("a", {})] * MAX_CALLS_PER_TURN
    )
    turn = HermesFormat().parse(one * (MAX_CALLS_PER_TURN + 1))
    assert_invalid(turn, "too many tool calls")


# -- llama3_json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "add", "parameters": {"a": 1, "b": 2}}', [("add", {"a": 1, "b": 2})]),
        ('<|python_tag|>{"name": "add", "parameters": {"a": 1}}<|eom_id|>', [("add", {"a": 1})]),
        (
            '{"type": "function", "name": "add", "parameters": {"a": 1}}<|eot_id|>',
            [("add", {"a": 1})],
        ),
        ('{"name": "add", "arguments": {"a": 1}}', [("add", {"a": 1})]),
        (
            '{"name": "add", "parameters": {"a": 1}}; {"name": "list_rooms", "parameters": {}}',
            [("add", {"a": 1}), ("list_rooms", {})],
        ),
        (
            '{"name": "add", "parameters": {"a": 1}}\n{"name": "list_rooms", "parameters": {}}',
            [("add", {"a": 1}), ("list_rooms", {})],
        ),
        (
            '[{"name": "add", "parameters": {"a": 1}}, {"name": "list_rooms", "parameters": {}}]',
            [("add", {"a": 1}), ("list_rooms", {})],
        ),
        ('```json\n{"name": "add", "parameters": {"a": 1}}\n```', [("add", {"a": 1})]),
        ('Sure.<|python_tag|>{"name": "add", "parameters": {"a": 1}}', [("add", {"a": 1})]),
        ('{"name": "list_rooms"}', [("list_rooms", {})]),  # a known tool without parameters
        ('{"name": "add", "parameters": {"a": 1}} This adds them.', [("add", {"a": 1})]),
        (
            '{"name": "set_mode", "parameters": {"room": "salle à manger", "mode": "heat"}}',
            [("set_mode", {"room": "salle à manger", "mode": "heat"})],
        ),
        ('<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>', [("add", {"a": 1})]),
    ],
)
def test_llama3_json_calls(text, expected):
    assert_valid_calls(Llama3JsonFormat().parse(text, tool_names=NAMES), expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"name": "add", "parameters": {"a": 1}', "malformed JSON tool call"),
        ('<|python_tag|>{"name": add}', "malformed JSON tool call"),
        ("<|python_tag|>brave_search.call(query='x')", "after <|python_tag|>"),
        ('<|python_tag|>{"query": "x"}', "after <|python_tag|>"),
        ('{"name": "add", "parameters": {"a": 1}}; {"name": "b", "parameters": ', "malformed"),
        ('[{"name": "add", "parameters": {}}, 3]', "unknown structure"),
        ('{"name": "add", "parameters": [1]}', "must be an object"),
        ('{"name": "", "parameters": {}}', '"name"'),
    ],
)
def test_llama3_json_malformed(text, fragment):
    assert_invalid(Llama3JsonFormat().parse(text, tool_names=NAMES), fragment)


def test_llama3_json_answers():
    fmt = Llama3JsonFormat()
    assert_answer(fmt.parse("[1, 2, 3]"), [1, 2, 3])
    assert_answer(fmt.parse('{"kitchen": 21.5}'), {"kitchen": 21.5})
    assert_answer(fmt.parse('{"name": "unknown"}', tool_names=NAMES), {"name": "unknown"})
    assert_answer(fmt.parse("[1, 2"), "[1, 2")
    assert_answer(fmt.parse("It is 21 degrees.\n<answer>21</answer>"), 21)


# -- pythonic ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[add(a=1, b=2.5), list_rooms()]", [("add", {"a": 1, "b": 2.5}), ("list_rooms", {})]),
        ("[set_mode(room=\"den\", mode='heat')]", [("set_mode", {"room": "den", "mode": "heat"})]),
        ("[add(a=-1, b=+2)]", [("add", {"a": -1, "b": 2})]),
        (
            '[f(xs=[1, "two", (3, 4)], d={"k": [None, True]}, s={1})]',
            [("f", {"xs": [1, "two", [3, 4]], "d": {"k": [None, True]}, "s": [1]})],
        ),
        ("[f(a=true, b=false, c=null)]", [("f", {"a": True, "b": False, "c": None})]),
        ("<|python_tag|>[add(a=1)]<|eom_id|>", [("add", {"a": 1})]),
        ("```python\n[add(a=1)]\n```", [("add", {"a": 1})]),
        ("[ add ( a = 1 ) ]", [("add", {"a": 1})]),
        ("Let me check: [get_room(room='kitchen')]", [("get_room", {"room": "kitchen"})]),
        ("get_room(room='kitchen')", [("get_room", {"room": "kitchen"})]),  # a known tool, bare
        (
            "[traduire(texte='café ☕', langue='日本語')]",
            [("traduire", {"texte": "café ☕", "langue": "日本語"})],
        ),
        ("[tools.add(a=1)]", [("tools.add", {"a": 1})]),
    ],
)
def test_pythonic_calls(text, expected):
    assert_valid_calls(PythonicFormat().parse(text, tool_names=NAMES), expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[add(a=x)]", "not a literal"),
        ("[add(a=1 + 2)]", "not a literal"),
        ("[add(a=len('x'))]", "not a literal"),
        ("[add(a=lambda: 1)]", "not a literal"),
        ("[add(a=[i for i in range(3)])]", "not a literal"),
        ("[add(a=f'{x}')]", "not a literal"),
        ("[add(a=b'x')]", "not allowed"),
        ("[add(a={**d})]", "not allowed"),
        ("[add(1, 2)]", "positional"),
        ("[add(**kw)]", "unpacking"),
        ('[__import__("os").system("echo hacked")]', "callee"),
        ("[(lambda: 1)()]", "callee"),
        ("[add(a=1), 3]", "unknown structure"),
        ("[add(a=1), ", "malformed pythonic tool call"),
        ("[add(a='unterminated)]", "malformed pythonic tool call"),
        ("[add(a=" + "[" * 300 + "])]", "malformed pythonic tool call"),
    ],
)
def test_pythonic_malformed(text, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_invalid(PythonicFormat().parse(text, tool_names=NAMES), fragment)
    assert not list(tmp_path.iterdir())  # nothing was ever run


def test_pythonic_answers():
    fmt = PythonicFormat()
    assert_answer(fmt.parse("[1, 2, 3]"), [1, 2, 3])
    assert_answer(fmt.parse("[]"), [])
    assert_answer(fmt.parse("max(3, 4)", tool_names=NAMES), "max(3, 4)")  # not a tool
    assert_answer(fmt.parse("add(a=1)"), "add(a=1)")  # bare calls need known tool names
    assert_answer(
        fmt.parse("See [the docs](https://example.com)"), "See [the docs](https://example.com)"
    )
    # an answer tag wins over a call list guessed in prose
    assert_answer(fmt.parse("I used [add(a=1)] before. <answer>3</answer>"), 3)
    assert_invalid(fmt.parse('{"name": "add", "arguments": {}}'), "[tool_name(")
    assert_invalid(fmt.parse('{"name": "zz", "arguments": {}}', tool_names=NAMES), "[tool_name(")


# -- fallback ------------------------------------------------------------------------------------


def test_fallback_tagged_calls_like_hermes():
    assert_valid_calls(
        FallbackFormat().parse(QWEN_TWO_CALLS, tool_names=NAMES),
        [("get_room", {"room": "kitchen"}), ("set_mode", {"room": "den", "mode": "heat"})],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "add", "arguments": {"a": 1, "b": 2}}', [("add", {"a": 1, "b": 2})]),
        ('{"name": "add", "parameters": {"a": 1}}', [("add", {"a": 1})]),
        ('I will add them: {"name": "add", "arguments": {"a": 1}} and see.', [("add", {"a": 1})]),
        (
            '{"name": "add", "arguments": {"a": 1}}\n{"name": "list_rooms", "arguments": {}}',
            [("add", {"a": 1}), ("list_rooms", {})],
        ),
        ('```json\n{"name": "add", "arguments": {"a": 1}}\n```', [("add", {"a": 1})]),
        ('[{"name": "add", "arguments": {"a": 1}}]', [("add", {"a": 1})]),
        (
            'Use {"room": "x"} then {"name": "get_room", "arguments": {"room": "x"}}',
            [("get_room", {"room": "x"})],
        ),
    ],
)
def test_fallback_bare_json_calls_of_known_tools(text, expected):
    assert_valid_calls(FallbackFormat().parse(text, tool_names=NAMES), expected)


def test_fallback_bare_json_rules():
    fmt = FallbackFormat()
    bare = '{"name": "multiply", "arguments": {"a": 1}}'
    assert_invalid(fmt.parse(bare, tool_names=NAMES), "unknown tool 'multiply'")
    assert_valid_calls(fmt.parse(bare), [("multiply", {"a": 1})])  # no names: any name
    # an answer tag wins over a guessed bare call
    text = 'I called {"name": "add", "arguments": {"a": 1}} <answer>3</answer>'
    assert_answer(fmt.parse(text, tool_names=NAMES), 3)
    # a tagged call of an unknown tool is the executor's business, not the parser's
    tagged = '<tool_call>{"name": "multiply", "arguments": {}}</tool_call>'
    assert_valid_calls(fmt.parse(tagged, tool_names=NAMES), [("multiply", {})])
    assert_invalid(fmt.parse('{"name": "add", "arguments": {"a": ', tool_names=NAMES), "malformed")
    assert_invalid(
        fmt.parse('{"name": "add", "arguments": [1]}', tool_names=NAMES), "must be an object"
    )
    assert_answer(fmt.parse('{"name": "Ada"}', tool_names=NAMES), {"name": "Ada"})


# -- untagged calls of known tools (every format) ------------------------------------------------
# Real Qwen2.5-Coder-0.5B-Instruct turns on the calculator toolset, which the hermes format (the
# model's own) used to reject ("write tool calls as <tool_call>...") or score as the answer.

CALCULATOR = {"add", "subtract", "multiply", "divide", "modulo", "power", "sqrt", "evaluate"}
QWEN_BARE = '{"name": "add", "arguments": {"a": 348, "b": 1276}}'
QWEN_FENCED = '```json\n{"name": "add", "arguments": {"a": 348, "b": 1276}}\n```'
QWEN_CALL_AS_ANSWER = '<answer>{"name": "divide", "arguments": {"a": 84.60, "b": 4}}</answer>'
ADD_348 = ("add", {"a": 348, "b": 1276})


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (QWEN_BARE, [ADD_348]),
        (QWEN_BARE + "<|im_end|>", [ADD_348]),
        (QWEN_FENCED, [ADD_348]),
        ("I'll use the add function:\n" + QWEN_FENCED + "<|im_end|>", [ADD_348]),
        (QWEN_CALL_AS_ANSWER, [("divide", {"a": 84.6, "b": 4})]),
        (
            "Let me divide.\n" + QWEN_CALL_AS_ANSWER + "<|im_end|>",
            [("divide", {"a": 84.6, "b": 4})],
        ),
        (
            '<answer>\n```json\n[{"name": "sqrt", "arguments": {"x": 16}}, '
            '{"name": "power", "arguments": {"base": 2, "exponent": 3}}]\n```\n</answer>',
            [("sqrt", {"x": 16}), ("power", {"base": 2, "exponent": 3})],
        ),
        (
            '{"name": "add", "arguments": {"a": 348, "b": 1276}}\n'
            '{"name": "multiply", "arguments": {"a": 1624, "b": 2}}',
            [ADD_348, ("multiply", {"a": 1624, "b": 2})],
        ),
        (
            '```json\n[\n  {"name": "add", "arguments": {"a": 348, "b": 1276}},\n'
            '  {"name": "sqrt", "arguments": {"x": 16}}\n]\n```',
            [ADD_348, ("sqrt", {"x": 16})],
        ),
        (
            "<tool_call>\n" + QWEN_BARE + "\n</tool_call><|im_end|>",
            [ADD_348],
        ),
    ],
)
def test_untagged_calls_of_known_tools_in_every_format(name, text, expected):
    assert_valid_calls(FORMATS[name]().parse(text, tool_names=CALCULATOR), expected)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<answer>{"name": "Ada", "age": 36}</answer>', {"name": "Ada", "age": 36}),
        (  # not one of the tools
            '<answer>{"name": "Paris", "arguments": {"country": "France"}}</answer>',
            {"name": "Paris", "arguments": {"country": "France"}},
        ),
        ('<answer>{"name": "add", "value": 3}</answer>', {"name": "add", "value": 3}),
        (  # arguments that are not an object
            '<answer>{"name": "divide", "arguments": [84.6, 4]}</answer>',
            {"name": "divide", "arguments": [84.6, 4]},
        ),
        (
            '<answer>{"name": "divide", "arguments": "84.6 / 4"}</answer>',
            {"name": "divide", "arguments": "84.6 / 4"},
        ),
        (  # not every item is a call of a known tool
            '<answer>[{"name": "add", "arguments": {}}, {"name": "Ada", "arguments": {}}]</answer>',
            [{"name": "add", "arguments": {}}, {"name": "Ada", "arguments": {}}],
        ),
        (  # not the whole content of the tag
            '<answer>I called {"name": "add", "arguments": {}}</answer>',
            'I called {"name": "add", "arguments": {}}',
        ),
        # an answer tag wins over an untagged call outside it
        ('I called {"name": "add", "arguments": {"a": 1, "b": 2}}. <answer>3</answer>', 3),
        ("<answer>[]</answer>", []),
    ],
)
def test_answers_that_look_like_calls_stay_answers(name, text, expected):
    assert_answer(FORMATS[name]().parse(text, tool_names=CALCULATOR), expected)


def test_untagged_call_rules_in_hermes():
    fmt = HermesFormat()
    # calls that are an answer tag's whole content count, not the untagged ones outside it
    text = QWEN_BARE + ' <answer>{"name": "sqrt", "arguments": {"x": 9}}</answer>'
    assert_valid_calls(fmt.parse(text, tool_names=CALCULATOR), [("sqrt", {"x": 9})])
    # a known tool with bad arguments: an error the model reads, not an answer
    bad = '{"name": "divide", "arguments": [84.6, 4]}'
    assert_invalid(fmt.parse(bad, tool_names=CALCULATOR), "must be an object")
    many = "\n".join([QWEN_BARE] * (MAX_CALLS_PER_TURN + 1))
    assert_invalid(fmt.parse(many, tool_names=CALCULATOR), "too many tool calls")


def test_without_tool_names_untagged_calls_are_not_guessed():
    hermes = HermesFormat()
    assert_invalid(hermes.parse(QWEN_BARE), "write tool calls as <tool_call>")
    assert_invalid(hermes.parse(QWEN_FENCED), "write tool calls as <tool_call>")
    divide = {"name": "divide", "arguments": {"a": 84.6, "b": 4}}
    assert_answer(hermes.parse(QWEN_CALL_AS_ANSWER), divide)
    # fallback: bare calls of any name, but never out of an answer tag
    assert_valid_calls(FallbackFormat().parse(QWEN_BARE), [ADD_348])
    assert_answer(FallbackFormat().parse(QWEN_CALL_AS_ANSWER), divide)


# -- hostile input: never raises, always linear ------------------------------------------------

MB = 1_000_000
HUGE_INPUTS = {
    "letters": "a" * MB,
    "unicode": "日本語テキスト" * (MB // 7),
    "open tags": "<tool_call>" * (MB // 11),
    "close tags": "</tool_call>" * (MB // 12),
    "open tag then brace": "<tool_call>" + "{" * MB,
    "braces": "{" * MB,
    "brackets": "[" * MB,
    "parens": "(" * MB,
    "nested names": '{"name": "add", "arguments": ' * (MB // 28),
    "unterminated string": '<tool_call>{"name": "' + "a" * MB,
    "answer tags": "<answer>" * (MB // 8),
    "answer pairs": "<answer>1</answer>" * (MB // 17),
    "think": "<think>" * (MB // 7),
    "python tag": "<|python_tag|>{" + "x" * MB,
    "pythonic": "[add(a=" * (MB // 7),
    "pythonic prose": "x [f(" * (MB // 5),
    "many calls": '<tool_call>{"name": "a", "arguments": {}}</tool_call>' * (MB // 51),
    "quotes": "'" * MB,
    "spaces": " " * MB + "x",
    "separators": "{}" + ";" * MB,
    "bare calls": '{"name": "add", "arguments": {}} ' * (MB // 33),
    "name keys": '{"name"' * (MB // 7),
    "big valid call": '<tool_call>{"name": "add", "arguments": {"s": "'
    + "z" * MB
    + '"}}</tool_call>',
    "big answer": "<answer>" + "[1, " * (MB // 4) + "1]</answer>",
}


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("kind", sorted(HUGE_INPUTS))
def test_huge_inputs_are_dismissed_quickly(name, kind):
    fmt = FORMATS[name]()
    start = time.perf_counter()
    turn = fmt.parse(HUGE_INPUTS[kind], tool_names=NAMES)
    elapsed = time.perf_counter() - start
    assert isinstance(turn, ParsedTurn)
    assert elapsed < 2.0, f"{kind}: {elapsed:.2f}s"
    if turn.error:
        assert len(turn.error) < 500  # errors are shown to the model: bounded


def test_big_valid_call_survives():
    turn = HermesFormat().parse(HUGE_INPUTS["big valid call"])
    assert turn.error is None and len(turn.tool_calls[0].arguments["s"]) == MB


FRAGMENTS = [
    "<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>", "</think>", "<|python_tag|>",
    "<|im_end|>", "{", "}", "[", "]", "(", ")", '"name"', '"arguments"', '"parameters"', ":", ",",
    ";", '"add"', "'add'", "add", "=", "1", "-", "1e999", "true", "null", "None", "\\", '"', "'",
    "\n", " ", "```", "```json", "é", "😀", "\x00", "**", "lambda", "__import__", ".", "=1",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_fuzz_never_raises_and_turns_are_consistent(name):
    fmt = FORMATS[name]()
    rng = random.Random(1234)
    for _ in range(1500):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 40)))
        turn = fmt.parse(text, tool_names=NAMES if rng.random() < 0.5 else None)
        assert isinstance(turn, ParsedTurn)
        assert all(isinstance(call, ToolCall) for call in turn.tool_calls)
        assert all(isinstance(call.arguments, dict) for call in turn.tool_calls)
        if turn.error is None:
            assert bool(turn.tool_calls) != turn.has_answer, (text, turn)
        else:
            assert not turn.has_answer
        if turn.has_answer:
            assert not turn.tool_calls


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("text", [None, 42, b"<answer>1</answer>", ["a"]])
def test_non_text_turns_are_errors(name, text):
    assert_invalid(FORMATS[name]().parse(text), "not text")


# -- tool results --------------------------------------------------------------------------------

CALL = ToolCall("get_room", {"room": "kitchen"})


@pytest.mark.parametrize(
    ("result", "text"),
    [
        ({"room": "kitchen", "temp": 21.5}, '{"room": "kitchen", "temp": 21.5}'),
        ("done", '"done"'),
        (3, "3"),
        (None, "null"),
        ([1, "a", True], '[1, "a", true]'),
        ((1, 2), "[1, 2]"),
        ({3, 1, 2}, "[1, 2, 3]"),
        (b"bytes", '"bytes"'),
        ("café ☕", '"café ☕"'),
        ({"when": Path("/x")}, '{"when": "/x"}'),
    ],
)
def test_render_tool_result(result, text):
    assert render_tool_result(CALL, result, None) == text


def test_render_tool_error():
    assert render_tool_result(CALL, None, "no room named 'attic'") == "error: no room named 'attic'"
    assert render_tool_result(CALL, None, "").startswith("error: ")


def test_render_tool_result_is_bounded():
    text = render_tool_result(CALL, "x" * 10_000, None)
    assert text.startswith('"xxx')
    assert "[truncated 6002 characters]" in text
    assert len(text) < MAX_RESULT_CHARS + 50
    error = render_tool_result(CALL, None, "y" * 9000)
    assert len(error) < MAX_RESULT_CHARS + 50 and "truncated" in error
    assert render_tool_result(CALL, "x" * 10, None, limit=5) == '"xxxx... [truncated 7 characters]'
    exact = "a" * (MAX_RESULT_CHARS - 2)
    assert render_tool_result(CALL, exact, None) == json.dumps(exact)


def test_render_tool_result_never_raises():
    circular: list = []
    circular.append(circular)
    assert render_tool_result(CALL, circular, None).startswith('"[[')

    class Broken:
        def __str__(self):
            raise RuntimeError("boom")

        __repr__ = __str__

    assert "unrenderable" in render_tool_result(CALL, {"x": Broken()}, None)
    assert render_tool_result(CALL, {(1, 2): "tuple key"}, None).startswith('"{(1, 2)')


# -- choosing a format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "cls", "native"),
    [
        (QWEN25_TEMPLATE, HermesFormat, True),
        (LLAMA31_TEMPLATE, Llama3JsonFormat, True),
        (LLAMA32_TEMPLATE, Llama3JsonFormat, True),
        (LLAMA32_PYTHONIC_TEMPLATE, PythonicFormat, True),
        (MISTRAL_TEMPLATE, HermesFormat, True),
        (CHATML_TEMPLATE, FallbackFormat, False),
        (None, FallbackFormat, False),
        ("", FallbackFormat, False),
        ({"default": CHATML_TEMPLATE, "tool_use": QWEN25_TEMPLATE}, HermesFormat, True),
        ([{"name": "default", "template": LLAMA31_TEMPLATE}], Llama3JsonFormat, True),
        # "tools" in the text of a template is not tool support
        (
            "{{ 'You are a helpful assistant with tools.' }}{% for m in messages %}{% endfor %}",
            FallbackFormat,
            False,
        ),
    ],
)
def test_detect_format(template, cls, native):
    fmt = detect_format(fake_tokenizer(template))
    assert type(fmt) is cls
    assert fmt.native is native
    if isinstance(template, str) and template:
        assert type(detect_format(template)) is cls  # a template string works too


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    if not SMOLLM2.is_dir():
        pytest.skip(f"the embedded model is not downloaded to {SMOLLM2}")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(SMOLLM2))


@pytest.fixture
def tokenizer_with(smollm2_tokenizer):
    """A copy of the SmolLM2 tokenizer with another chat template."""
    import copy

    def make(template: str):
        tokenizer = copy.deepcopy(smollm2_tokenizer)
        tokenizer.chat_template = template
        return tokenizer

    return make


def test_detect_format_real_smollm2(smollm2_tokenizer):
    fmt = detect_format(smollm2_tokenizer)
    assert type(fmt) is FallbackFormat and fmt.native is False
    # its template ignores tools=, hence the fallback's system prompt
    messages = [{"role": "user", "content": "Warm up the den."}]
    rendered = smollm2_tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    assert "set_mode" not in rendered
    system = {"role": "system", "content": fmt.system_prompt(TOOLS)}
    rendered = smollm2_tokenizer.apply_chat_template(
        [system, *messages], tokenize=False, add_generation_prompt=True
    )
    assert "  room (string, required)" in rendered
    assert "<tool_call>" in rendered and "<answer>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_qwen_template_renders_tools_and_calls_round_trip(tokenizer_with):
    tokenizer = tokenizer_with(QWEN25_TEMPLATE)
    fmt = detect_format(tokenizer)
    assert type(fmt) is HermesFormat and fmt.native
    call = ToolCall("set_mode", {"room": "den", "mode": "heat"})
    messages = [
        {"role": "system", "content": "Be brief.\n\n" + fmt.system_prompt(TOOLS)},
        {"role": "user", "content": "Warm up the den."},
        {"role": "assistant", "content": "", "tool_calls": [call.to_openai()]},
        {
            "role": "tool",
            "name": "set_mode",
            "content": render_tool_result(call, {"ok": True}, None),
        },
    ]
    rendered = tokenizer.apply_chat_template(
        messages, tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    assert "<tools>" in rendered and json.dumps(SET_MODE) in rendered
    assert "<answer>" in rendered
    assert '<tool_response>\n{"ok": true}\n</tool_response>' in rendered
    # the assistant turn as the template writes it parses back to the same call
    assistant = rendered.split("<|im_start|>assistant")[1].split("<|im_end|>")[0]
    assert_valid_calls(fmt.parse(assistant, tool_names=NAMES), [(call.name, call.arguments)])


def test_llama31_template_renders_tools_and_calls_round_trip(tokenizer_with):
    tokenizer = tokenizer_with(LLAMA31_TEMPLATE)
    fmt = detect_format(tokenizer)
    assert type(fmt) is Llama3JsonFormat and fmt.native
    call = ToolCall("add", {"a": 1, "b": 2.5})
    messages = [
        {"role": "user", "content": "Add 1 and 2.5."},
        {"role": "assistant", "content": "", "tool_calls": [call.to_openai()]},
        {"role": "tool", "name": "add", "content": render_tool_result(call, 3.5, None)},
    ]
    rendered = tokenizer.apply_chat_template(
        messages, tools=TOOLS, tokenize=False, add_generation_prompt=True
    )
    assert "Environment: ipython" in rendered
    assert '"name": "add"' in rendered and "Add two numbers." in rendered
    assistant = rendered.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1]
    assistant = assistant.split("<|eot_id|>")[0]
    assert_valid_calls(fmt.parse(assistant, tool_names=NAMES), [(call.name, call.arguments)])


def test_pythonic_template_calls_round_trip(tokenizer_with):
    tokenizer = tokenizer_with(LLAMA32_PYTHONIC_TEMPLATE)
    fmt = detect_format(tokenizer)
    assert type(fmt) is PythonicFormat and fmt.native

    def assistant_turn(call: ToolCall) -> str:
        messages = [
            {"role": "user", "content": "Warm up the den."},
            {"role": "assistant", "content": "", "tool_calls": [call.to_openai()]},
        ]
        rendered = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
        assert "Set the thermostat mode of a room." in rendered
        return rendered.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1]

    call = ToolCall("add", {"a": 1, "b": 2.5})
    assert assistant_turn(call) == "[add(a=1, b=2.5)]<|eot_id|>"
    assert_valid_calls(fmt.parse(assistant_turn(call), tool_names=NAMES), [("add", call.arguments)])
    # this template writes strings unquoted ("%s" | format): not literals, so not a valid call
    turn = fmt.parse(assistant_turn(ToolCall("set_mode", {"room": "den"})), tool_names=NAMES)
    assert_invalid(turn, "not a literal")


# Real Qwen2.5-Coder-0.5B-Instruct turns (calculator evaluation set, hermes template): the model
# stops before its object's last brace. Closing what is left open at the end is unambiguous.
QWEN_UNCLOSED = [
    ('{"name": "divide", "arguments": {"a": "84.60", "b": "4"}', "divide"),
    ('{"name": "evaluate", "arguments": {"expression": "84.60 / 4"}', "evaluate"),
    ('{"name": "divide", "arguments": {"a": 84.6, "b": 4', "divide"),
]


@pytest.mark.parametrize("fmt", [HermesFormat(), FallbackFormat()], ids=repr)
@pytest.mark.parametrize(("turn", "name"), QWEN_UNCLOSED)
def test_a_call_left_unclosed_at_the_end_of_the_turn_is_read(fmt, turn, name):
    parsed = fmt.parse(turn, tool_names={"divide", "evaluate"})
    assert not parsed.error and [call.name for call in parsed.tool_calls] == [name]


@pytest.mark.parametrize(
    "turn",
    [
        '{"name": "divide", "arguments": {"a": "84',  # a string left open
        '{"name": "divide", "arguments": {"a": 1]',  # a wrong closer
        '{"name": "divide", "arguments": {"a": [[[[1',  # too much left open
    ],
)
def test_only_brackets_left_open_at_the_end_are_closed(turn):
    parsed = HermesFormat().parse(turn, tool_names={"divide"})
    assert not parsed.tool_calls and parsed.error


# Real Qwen2.5-Coder-0.5B-Instruct turns under the `tool` answer protocol: the answer tool is
# called with its argument beside the name.
@pytest.mark.parametrize(
    "turn",
    [
        '{"name": "final_answer", "answer": "1048576"}',
        '```json\n{\n  "name": "final_answer",\n  "answer": "1048576"\n}\n```',
    ],
)
def test_a_flat_call_of_a_known_tool_is_a_call(turn):
    parsed = HermesFormat().parse(turn, tool_names={"final_answer", "power"})
    assert not parsed.error and not parsed.has_answer
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("final_answer", {"answer": "1048576"})
    ]


def test_a_flat_object_is_data_unless_it_names_a_tool_outside_an_answer_tag():
    names = {"final_answer", "add"}
    assert_answer(HermesFormat().parse('{"name": "Ada", "age": 3}', tool_names=names),
                  {"name": "Ada", "age": 3})  # fmt: skip
    tagged = HermesFormat().parse('<answer>{"name": "add", "value": 3}</answer>', tool_names=names)
    assert_answer(tagged, {"name": "add", "value": 3})
    assert HermesFormat().parse('{"name": "add"}', tool_names=names).has_answer  # no arguments


# Real Qwen2.5-Coder-1.5B-Instruct turns (calculator evaluation set, `tag` protocol).
def test_a_boxed_answer_in_prose_is_the_answer():
    turn = r"The top of the ladder reaches \(\boxed{12}\) meters up the wall."
    assert_answer(HermesFormat().parse(turn, tool_names={"add"}), 12)
    assert_answer(HermesFormat().parse(r"so \boxed{\frac{1}{2}}"), r"\frac{1}{2}")
    assert parse_answer(r"x = \boxed{42} <answer>41</answer>") == 41  # the tag wins


def test_a_call_naming_its_tool_under_function_is_a_call():
    turn = '<answer>{"function": "evaluate", "arguments": {"expression": "(2 * 4)"}}</answer>'
    parsed = HermesFormat().parse(turn, tool_names={"evaluate"})
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("evaluate", {"expression": "(2 * 4)"})
    ]
    other = '{"function": "other", "arguments": {"x": 1}}'
    assert_answer(HermesFormat().parse(other, tool_names={"evaluate"}), json.loads(other))
