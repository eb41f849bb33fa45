"""How tools are presented to a model, and how its turns are parsed.

A rollout shows the model its tools, lets it write a turn, and asks :meth:`ToolCallFormat.parse`
what that turn is: tool calls to run, a final answer, or garbage (with the reason, which the
rollout records and may show the model). Pure Python: the tokenizer is passed in, never imported.

Formats
-------
A model whose chat template renders ``tools=`` itself is *native*: the template shows the tools
and the model calls them the way it was trained to. :func:`detect_format` reads the template:

``hermes`` (Qwen2.5/3, Hermes, and the ``fallback``): one or more
    ``<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>`` per turn. Accepted as well:
    ``"parameters"`` instead of ``"arguments"``; arguments given as a JSON string; the OpenAI shape
    ``{"function": {"name": ..., "arguments": ...}}``; a missing closing tag (the call then runs to
    the next ``<tool_call>`` or the end of the text); a missing opening tag before a closing one;
    several objects, or a JSON list of them, in one tag; code fences around the JSON; stray
    closing braces or text after it; and, as a last resort, Python literals (single quotes,
    ``True``/``None``, a trailing comma), read with :mod:`ast`, never evaluated.
``llama3_json`` (Llama 3.1/3.2/3.3 JSON tool calls): the turn is a JSON object
    ``{"name": "add", "parameters": {"a": 1}}``, optionally after ``<|python_tag|>``; several are
    separated by ``;``, commas or newlines (or given as a JSON list). ``"arguments"`` is
    accepted for ``"parameters"``, and ``{"name": "now"}`` alone is a call when ``now`` is one of
    ``tool_names``. A JSON value that is not a call (``[1, 2]``) is an answer.
``pythonic`` (Llama 3.2 / Llama 4 pythonic templates): ``[add(a=1, b="x"), now()]``, read with
    :mod:`ast`; every argument must be a keyword whose value is a literal (numbers, strings,
    lists, dicts, ``True``/``False``/``None``, also ``true``/``false``/``null``); anything else
    (names, calls, operators, ``**kwargs``, positional arguments) makes the turn invalid. Nothing
    is ever evaluated. A bare ``name(...)`` without brackets is a call only when ``name`` is one
    of ``tool_names``; a call list after some prose is found too, unless there is an answer tag.
``fallback`` (templates without tool support, such as SmolLM2's): not native. Its system prompt
    lists the tools as JSON and teaches the hermes syntax with one example; its parser is
    hermes's, plus, for tiny models, a bare JSON object with ``"name"`` and
    ``"arguments"``/``"parameters"`` keys counts as a call when its name is one of
    ``tool_names`` (any name when ``tool_names`` is None), unless the turn has an ``<answer>``.

Each format also parses the others' tell-tale syntax where it is unambiguous (a ``<tool_call>``
tag is read as hermes by every format). Names are not checked against the tools (except for
bare fallback calls): an unknown tool is the executor's error to report.

The final answer
----------------
The model ends an episode by writing ``<answer>VALUE</answer>`` in a turn with no tool call
(the tag is case-insensitive; a missing closing tag runs to the end of the text; with several
tags, the last complete one counts). VALUE is parsed as JSON when it is valid JSON (``41`` and
``41.0`` are numbers, ``"Paris"`` is a string, ``[1, 2]`` a list, ``true`` a bool, ``null``
None; ``NaN`` and ``Infinity`` stay text), otherwise it is the stripped text; code fences around
it are dropped. Lenient for small models: a turn with no tool call and no ``<answer>`` tag is an
answer as a whole (the same VALUE rule applies), unless it is empty (error ``"empty turn"``) or
is a tool call the format cannot accept (a malformed or misplaced one: an error that says so).

Tool calls take precedence: a turn with tool calls has no answer (``has_answer`` False); only
the guessed bare calls of the fallback format and prose-embedded pythonic calls yield to an
``<answer>`` tag. Before parsing, reasoning is dropped (everything up to the last ``</think>``,
and an unclosed ``<think>`` with all after it), and end-of-turn markers left at the end
(``<|im_end|>``, ``<|eot_id|>``, ...) are removed.

Invalid turns
-------------
:meth:`ToolCallFormat.parse` never raises. ``ParsedTurn.error`` set means the turn is invalid;
``tool_calls`` then holds the calls that did parse before the problem, for diagnostics only.
A turn with more than :data:`MAX_CALLS_PER_TURN` calls is invalid. Parsing is linear in the
length of the text (no backtracking regular expressions; Python-literal repair and pythonic
parsing only look at bounded input), so a 1 MB garbage turn is dismissed quickly.

Tool results
------------
:func:`render_tool_result` is the content of the ``tool`` message the model reads: the result as
compact JSON (unicode kept), or ``error: <message>``, cut to :data:`MAX_RESULT_CHARS` characters
with a ``[truncated N characters]`` marker.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "FORMATS",
    "MAX_CALLS_PER_TURN",
    "MAX_RESULT_CHARS",
    "FallbackFormat",
    "HermesFormat",
    "Llama3JsonFormat",
    "ParsedTurn",
    "PythonicFormat",
    "ToolCall",
    "ToolCallFormat",
    "detect_format",
    "parse_answer",
    "render_tool_result",
]

MAX_RESULT_CHARS = 4000
"""Longest tool-message content before it is truncated."""
MAX_CALLS_PER_TURN = 32
"""More tool calls than this in one turn make it invalid."""

_MAX_LITERAL_CHARS = 100_000  # longest text handed to ast (python-literal repair, pythonic calls)
_MAX_LITERAL_DEPTH = 64  # deepest nesting of a Python literal
_MAX_BARE_ATTEMPTS = 64  # JSON decodes tried when looking for bare calls in a fallback turn
_MAX_TEMPLATE_CHARS = 500_000
_SNIPPET_CHARS = 60

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_THINK_START, _THINK_END = "<think>", "</think>"
_END_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
)

_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?")
_SEPARATORS = re.compile(r"[\s;,}]*")
_PY_LIST = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")
_PY_CALL = re.compile(r"[A-Za-z_][\w.]*\s*\(")
_JINJA_BLOCK = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)
_TOOLS_WORD = re.compile(r"\btools\b")
_JINJA_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")

ANSWER_INSTRUCTIONS = (
    "When you have the final answer, reply with <answer>VALUE</answer> and no tool call, "
    "for example <answer>42</answer>. Write VALUE as JSON for numbers, lists and objects "
    '(<answer>["a", "b"]</answer>), as plain text otherwise.'
)
"""The final-answer convention, as the model is told it (every format's system prompt)."""


@dataclass
class ToolCall:
    """One call the model asked for: a tool name and its keyword arguments."""

    name: str
    arguments: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The call as an assistant message's ``tool_calls`` entry (what chat templates take)."""
        return {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ParsedTurn:
    """What a model turn is: tool calls, a final answer, or garbage (``error`` set)."""

    tool_calls: list[ToolCall]
    answer: Any = None
    """The final answer, when the turn has no tool calls (see the module's convention)."""
    has_answer: bool = False
    error: str | None = None
    """Why the turn is invalid, e.g. ``"malformed JSON in <tool_call>: ..."``; None if valid."""


# -- small helpers ------------------------------------------------------------------------------


class _NotLiteral(Exception):
    """A Python expression that is not a plain literal."""


_NAME_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


def _snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    """A short one-line excerpt of ``text`` for error messages."""
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _clean(text: str) -> str:
    """The turn without reasoning (up to the last ``</think>``, or from an unclosed ``<think>``)
    and without trailing end markers."""
    cut = text.rfind(_THINK_END)
    if cut >= 0:
        text = text[cut + len(_THINK_END) :]
    unfinished = text.find(_THINK_START)
    if unfinished >= 0:  # reasoning cut off before its end: none of it counts
        text = text[:unfinished]
    text = text.strip()
    trimmed = True
    while trimmed:
        trimmed = False
        for marker in _END_MARKERS:
            if text.endswith(marker):
                text, trimmed = text[: -len(marker)].rstrip(), True
    return text


def _strip_fences(text: str) -> str:
    """``text`` stripped, without a Markdown code fence around it."""
    text = text.strip()
    if text.startswith("```"):
        text = text[_FENCE_OPEN.match(text).end() :].rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text.strip()


def _decode_prefix(text: str) -> tuple[list[Any], ValueError | RecursionError | None, int]:
    """The JSON values at the start of ``text``, separated by whitespace, ``,`` or ``;`` (stray
    ``}`` are skipped): ``(values, error, index)`` where decoding stopped, at the end of the text
    or at ``error``."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while len(values) <= MAX_CALLS_PER_TURN:
        index = _SEPARATORS.match(text, index).end()
        if index >= len(text):
            break
        try:
            value, index = decoder.raw_decode(text, index)
        except (ValueError, RecursionError) as error:
            return values, error, index
        values.append(value)
    return values, None, index


def _json_error(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def _literal(node: ast.AST, depth: int = 0) -> Any:
    """The value of a Python literal node; :class:`_NotLiteral` for anything else."""
    if depth > _MAX_LITERAL_DEPTH:
        raise _NotLiteral("nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, (str, int, float, bool)):
            return node.value
        raise _NotLiteral(f"{type(node.value).__name__} constants are not allowed")
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        result = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise _NotLiteral("** unpacking is not allowed")
            key_value = _literal(key, depth + 1)
            if isinstance(key_value, list):
                raise _NotLiteral("a list cannot be a key")
            result[key_value] = _literal(value, depth + 1)
        return result
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, float)
    ):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id.lower() in _NAME_CONSTANTS:
        return _NAME_CONSTANTS[node.id.lower()]
    if isinstance(node, ast.Name):
        raise _NotLiteral(f"the name {node.id!r} is not a literal")
    raise _NotLiteral(f"{type(node).__name__.lower()} expressions are not literals")


_FAILED = object()


def _python_literal(text: str) -> Any:
    """``text`` read as one Python literal (single quotes, True/None), or ``_FAILED``."""
    if len(text) > _MAX_LITERAL_CHARS:
        return _FAILED
    try:
        return _literal(ast.parse(text, mode="eval").body)
    except Exception:  # SyntaxError, ValueError (null bytes), MemoryError, RecursionError, ...
        return _FAILED


def _is_call_like(value: Any) -> bool:
    """A dict shaped like a JSON tool call: a string name and arguments or parameters."""
    if isinstance(value, dict) and "name" not in value and isinstance(value.get("function"), dict):
        value = value["function"]
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and ("arguments" in value or "parameters" in value)
    )


def _call_name(value: Any) -> str:
    if isinstance(value, dict) and "name" not in value and isinstance(value.get("function"), dict):
        value = value["function"]
    return str(value.get("name", "")).strip() if isinstance(value, dict) else ""


def _as_call(value: Any) -> ToolCall | str:
    """A decoded call object as a :class:`ToolCall`, or why it is not one."""
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        return f'expected an object {{"name": ..., "arguments": {{...}}}}, got {kind}'
    if "name" not in value and isinstance(value.get("function"), dict):
        value = value["function"]  # the OpenAI shape
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return 'a tool call needs a "name" string'
    name = name.strip()
    arguments = value["arguments"] if "arguments" in value else value.get("parameters")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        if not arguments.strip():
            arguments = {}
        else:
            try:
                arguments = json.loads(arguments)
            except (ValueError, RecursionError) as error:
                return f"the arguments of {name!r} are not valid JSON: {_json_error(error)}"
    if not isinstance(arguments, dict):
        return f"the arguments of {name!r} must be an object, got {type(arguments).__name__}"
    return ToolCall(name, arguments)


def _calls_from_values(values: list[Any], where: str) -> list[ToolCall] | str:
    """Decoded values (call objects, or lists of them) as calls, or the first problem."""
    calls: list[ToolCall] = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            call = _as_call(item)
            if isinstance(call, str):
                return f"{call} {where}"
            calls.append(call)
    return calls


def _answer_span(text: str) -> str | None:
    """The content of the last complete ``<answer>`` tag (a trailing unclosed one if there is no
    complete one), or None when there is no tag."""
    found: str | None = None
    position = 0
    while True:
        opening = _ANSWER_OPEN.search(text, position)
        if opening is None:
            return found
        closing = _ANSWER_CLOSE.search(text, opening.end())
        if closing is None:
            return found if found is not None else text[opening.end() :]
        found, position = text[opening.end() : closing.start()], closing.end()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not an answer value")


def _answer_value(raw: str) -> Any:
    """VALUE of the answer convention: JSON when valid JSON, else the stripped text."""
    text = _strip_fences(raw)
    if not text:
        return ""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return text


def parse_answer(text: str) -> Any:
    """The answer in ``text`` by the module's convention: the content of its ``<answer>`` tag,
    or the whole text when it has none, parsed as JSON when it is valid JSON, else stripped text.

    >>> parse_answer("I added them. <answer>41</answer>")
    41
    >>> parse_answer("<answer>Paris</answer>")
    'Paris'
    """
    if not isinstance(text, str):
        return text
    text = _clean(text)
    span = _answer_span(text)
    return _answer_value(span if span is not None else text)


# -- hermes: <tool_call> tags -------------------------------------------------------------------


def _tagged_bodies(text: str) -> list[str]:
    """The text inside each ``<tool_call>`` tag (at most one more than the per-turn limit).

    Linear: each closing tag is searched for once, however many opening tags lack one."""
    bodies: list[str] = []
    position = text.find(_OPEN)
    if position < 0:
        if _CLOSE not in text:
            return bodies
        # opening tags forgotten: the object before each closing tag is a call
        for segment in text.split(_CLOSE, MAX_CALLS_PER_TURN + 1)[:-1]:
            brace = segment.find("{")
            if brace >= 0:
                bodies.append(segment[brace:])
        return bodies
    closing = 0  # the next closing tag at or after `start`; -1 when none is left
    while position >= 0 and len(bodies) <= MAX_CALLS_PER_TURN:
        start = position + len(_OPEN)
        if closing != -1 and closing < start:
            closing = text.find(_CLOSE, start)
        following = text.find(_OPEN, start)
        if closing != -1 and (following == -1 or closing < following):
            bodies.append(text[start:closing])
        else:  # no closing tag before the next call: this one runs up to it (or the end)
            bodies.append(text[start : following if following != -1 else len(text)])
        position = following
    return bodies


def _parse_body(body: str) -> list[ToolCall] | str:
    """The calls in one ``<tool_call>`` body, or why it is malformed."""
    text = _strip_fences(body)
    if not text:
        return "empty <tool_call>"
    values, error, index = _decode_prefix(text)
    if error is not None and (not values or text[index] in "{["):
        repaired = _python_literal(text)
        if repaired is _FAILED:
            return f"malformed JSON in <tool_call>: {_json_error(error)}"
        values = [repaired]
    calls = _calls_from_values(values, f"in <tool_call>: {_snippet(text)}")
    if isinstance(calls, list) and not calls:
        return "empty <tool_call>"
    return calls


def _hermes_calls(text: str) -> tuple[list[ToolCall], str | None]:
    calls: list[ToolCall] = []
    for body in _tagged_bodies(text):
        parsed = _parse_body(body)
        if isinstance(parsed, str):
            return calls, parsed
        calls.extend(parsed)
        if len(calls) > MAX_CALLS_PER_TURN:
            break
    return calls, None


def _bare_calls(text: str, tool_names: set[str] | None) -> list[ToolCall]:
    """Bare JSON call objects anywhere in the text whose name is a known tool (any name when
    ``tool_names`` is None). Bounded: at most a fixed number of decodes are tried."""
    if '"name"' not in text:
        return []
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    position, attempts = text.find("{"), 0
    while position >= 0 and attempts < _MAX_BARE_ATTEMPTS and len(calls) <= MAX_CALLS_PER_TURN:
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            position = text.find("{", position + 1)
            continue
        if _is_call_like(value) and (tool_names is None or _call_name(value) in tool_names):
            call = _as_call(value)
            if isinstance(call, ToolCall):
                calls.append(call)
        position = text.find("{", end)
    return calls


# -- the formats --------------------------------------------------------------------------------


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool spec (OpenAI ``{"type": "function", "function": {...}}`` or bare) as
    ``{"name", "description", "parameters"}``."""
    spec = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    function = {"name": spec.get("name", ""), "description": spec.get("description", "")}
    function["parameters"] = spec.get("parameters") or {"type": "object", "properties": {}}
    return function


def _type_name(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if schema.get("enum"):
        return "|".join(json.dumps(value) for value in schema["enum"])
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return f"list[{_type_name(schema['items'])}]"
    return str(schema.get("type", "any"))


def signature(tool: dict[str, Any], prefix: str = "") -> str:
    """A tool as one compact line, ``name(arg: type, opt: type = ...)  # first sentence``: far
    fewer tokens than its JSON schema, which matters for small models on CPUs."""
    function = _function(tool)
    parameters = function["parameters"]
    required = set(parameters.get("required") or [])
    args = ", ".join(
        f"{name}: {_type_name(schema)}{'' if name in required else ' = ...'}"
        for name, schema in (parameters.get("properties") or {}).items()
    )
    summary = re.split(r"(?<=[.;])\s", function["description"].strip(), maxsplit=1)[0]
    return f"{prefix}{function['name']}({args})  # {summary}".rstrip(" #")


def _example_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "..."
    if schema.get("enum"):
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options and isinstance(options, list):
        return _example_value(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(kind, "...")


def _example_call(function: dict[str, Any]) -> ToolCall:
    """A plausible call of ``function``, for the system prompt's one example."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = [name for name in parameters.get("required") or [] if name in properties]
    names = (required + [name for name in properties if name not in required])[:3]
    return ToolCall(function["name"], {name: _example_value(properties[name]) for name in names})


def _python_repr(value: Any) -> str:
    """``value`` as a Python literal (JSON strings are valid Python strings)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_python_repr(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {_python_repr(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value, ensure_ascii=False)


class ToolCallFormat:
    """How tools are shown to a model and how its turns are parsed; one subclass per format.

    ``native``: the model's chat template renders ``tools=`` itself, so :meth:`system_prompt`
    adds only the final-answer convention; otherwise it adds the tool list and the calling
    syntax. Each class has its usual default; ``native=`` overrides it (``HermesFormat(False)``
    teaches the hermes syntax to a model whose template does not render tools).
    """

    name: ClassVar[str] = ""
    native: bool = True
    call_hint: ClassVar[str] = ""
    """The call syntax in a few words, for error messages the model may read."""

    def __init__(self, native: bool | None = None):
        if native is not None:
            self.native = native

    def __repr__(self) -> str:
        return f"{type(self).__name__}(native={self.native})"

    def system_prompt(self, tools: list[dict]) -> str:
        """Text for the system prompt. Native: the final-answer convention only (the template
        shows the tools). Not native: the tools as JSON, how to call them (one example, using
        the first tool) and the final-answer convention."""
        if self.native or not tools:
            return ANSWER_INSTRUCTIONS
        functions = [_function(tool) for tool in tools]
        lines = ["You can use these tools:"] + [signature(tool) for tool in tools]
        lines += ["", self.call_instructions(_example_call(functions[0])), ANSWER_INSTRUCTIONS]
        return "\n".join(lines)

    def call_instructions(self, example: ToolCall) -> str:
        """How to call tools, with ``example`` written in this format."""
        raise NotImplementedError

    def parse(self, text: str, *, tool_names: set[str] | None = None) -> ParsedTurn:
        """What the model's turn ``text`` is; never raises.

        ``tool_names``: the tools the model has; used to recognise bare calls (fallback) and
        bare pythonic calls, never to reject a well-formed call of an unknown tool."""
        try:
            if not isinstance(text, str):
                return ParsedTurn([], error=f"the turn is not text but {type(text).__name__}")
            raw, text = text, _clean(text)
            if not text and _THINK_START in raw:
                return ParsedTurn([], error="the turn ends inside <think> (no </think>)")
            names = set(tool_names) if tool_names is not None else None
            calls, error = self._extract_calls(text, names)
            if error is None and len(calls) > MAX_CALLS_PER_TURN:
                calls = calls[:MAX_CALLS_PER_TURN]
                error = f"too many tool calls in one turn (at most {MAX_CALLS_PER_TURN})"
            if error is not None:
                return ParsedTurn(calls, error=error)
            if calls:
                return ParsedTurn(calls)
            return self._answer_turn(text, names)
        except Exception as error:  # a garbage turn is data, never a crash
            return ParsedTurn([], error=f"unparseable turn ({type(error).__name__})")

    def _extract_calls(
        self, text: str, tool_names: set[str] | None
    ) -> tuple[list[ToolCall], str | None]:
        """The turn's tool calls and the error that makes it invalid, if any."""
        raise NotImplementedError

    def _answer_turn(self, text: str, tool_names: set[str] | None) -> ParsedTurn:
        span = _answer_span(text)
        if span is not None:
            return ParsedTurn([], answer=_answer_value(span), has_answer=True)
        if not text:
            return ParsedTurn([], error="empty turn")
        problem = self._stray_call(text, tool_names)
        if problem:
            return ParsedTurn([], error=problem)
        return ParsedTurn([], answer=_answer_value(text), has_answer=True)

    def _stray_call(self, text: str, tool_names: set[str] | None) -> str | None:
        """Why a turn with no recognised call and no answer tag is not an answer either: it is a
        JSON tool call this format does not accept there, or a malformed one."""
        body = _strip_fences(text)
        if not body.startswith("{") or '"name"' not in body[:300]:
            return None
        values, error, _ = _decode_prefix(body)
        if not values:
            return f"malformed JSON tool call: {_json_error(error)}; write {self.call_hint}"
        if not _is_call_like(values[0]):
            return None  # a JSON object that merely has a "name": an answer
        call = _as_call(values[0])
        if isinstance(call, str):
            return call
        if tool_names is not None and call.name not in tool_names:
            return f"unknown tool {call.name!r}; write {self.call_hint}"
        return f"write tool calls as {self.call_hint}"


class HermesFormat(ToolCallFormat):
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Qwen, Hermes)."""

    name = "hermes"
    native = True
    call_hint = '<tool_call>{"name": ..., "arguments": {...}}</tool_call>'

    def call_instructions(self, example: ToolCall) -> str:
        call = json.dumps({"name": example.name, "arguments": example.arguments})
        return (
            "To call a tool, write the call as JSON inside <tool_call></tool_call> tags, "
            f"for example:\n<tool_call>{call}</tool_call>\n"
            "You may make several tool calls in one reply; their results come back in the next "
            "message."
        )

    def _extract_calls(self, text, tool_names):
        return _hermes_calls(text)


class FallbackFormat(HermesFormat):
    """For chat templates without tool support: the hermes syntax, taught in the system prompt,
    plus bare JSON calls of known tools (tiny models forget the tags)."""

    name = "fallback"
    native = False

    def _extract_calls(self, text, tool_names):
        calls, error = _hermes_calls(text)
        if calls or error or _OPEN in text or _answer_span(text) is not None:
            return calls, error
        return _bare_calls(text, tool_names), None


class Llama3JsonFormat(ToolCallFormat):
    """``{"name": ..., "parameters": {...}}`` turns, optionally after ``<|python_tag|>``
    (Llama 3.1 / 3.2 / 3.3 JSON tool calling)."""

    name = "llama3_json"
    native = True
    call_hint = '{"name": ..., "parameters": {...}}'

    def call_instructions(self, example: ToolCall) -> str:
        call = json.dumps({"name": example.name, "parameters": example.arguments})
        return (
            "To call a tool, reply with only a JSON object "
            '{"name": tool name, "parameters": {argument name: value}}, for example:\n'
            f"{call}\nPut several calls on separate lines; their results come back in the next "
            "message."
        )

    def _extract_calls(self, text, tool_names):
        if _OPEN in text or _CLOSE in text:
            return _hermes_calls(text)
        tagged = text.find(_PYTHON_TAG)
        body = text
        if tagged >= 0:
            body = text[tagged + len(_PYTHON_TAG) :].replace(_PYTHON_TAG, "\n")
        body = _strip_fences(body)
        if not body.startswith(("{", "[")):
            if tagged >= 0:
                return [], f"expected {self.call_hint} after <|python_tag|>: {_snippet(body)}"
            return [], None
        values, error, index = _decode_prefix(body)
        if error is not None and (not values or body[index] in "{["):
            if tagged >= 0 or '"name"' in body[:300]:
                return [], f"malformed JSON tool call: {_json_error(error)}"
            return [], None  # not a call: the lenient answer rule decides
        items = [
            item for value in values for item in (value if isinstance(value, list) else [value])
        ]
        like = [_is_call_like(item) or _named_only(item, tool_names) for item in items]
        if not any(like):
            if tagged >= 0:
                return [], f"expected {self.call_hint} after <|python_tag|>: {_snippet(body)}"
            return [], None  # a JSON answer
        if not all(like):
            return [], f"unknown structure: expected only {self.call_hint} objects"
        calls = _calls_from_values(items, "")
        if isinstance(calls, str):
            return [], calls.strip()
        return calls, None


def _named_only(value: Any, tool_names: set[str] | None) -> bool:
    """``{"name": "now"}`` (no parameters) naming a known tool: a call without arguments."""
    return (
        tool_names is not None
        and isinstance(value, dict)
        and set(value) <= {"name", "type"}
        and value.get("name") in tool_names
    )


class PythonicFormat(ToolCallFormat):
    """``[name(arg=literal, ...), ...]`` (Llama 3.2 / Llama 4 pythonic tool calling)."""

    name = "pythonic"
    native = True
    call_hint = "[tool_name(argument=value, ...)]"

    def call_instructions(self, example: ToolCall) -> str:
        arguments = ", ".join(f"{k}={_python_repr(v)}" for k, v in example.arguments.items())
        return (
            "To call tools, reply with only a Python list of calls with keyword arguments, "
            f"for example:\n[{example.name}({arguments})]\n"
            "Argument values must be literals (numbers, strings, lists, dicts, True, False, "
            "None). The results come back in the next message."
        )

    def _extract_calls(self, text, tool_names):
        if _OPEN in text:
            return _hermes_calls(text)
        tagged = text.find(_PYTHON_TAG)
        body = text[tagged + len(_PYTHON_TAG) :] if tagged >= 0 else text
        body = _strip_fences(body)
        bare = _PY_CALL.match(body)
        if _PY_LIST.match(body):  # [name(
            candidate, attempt = body, True
        elif body.startswith("["):  # a literal list (an answer), or calls after other items
            candidate, attempt = body, False
        elif bare:  # name(...) without brackets: a call only when it names a known tool
            callee = body[: bare.end() - 1].strip()
            if tool_names is None or callee not in tool_names:
                return [], None  # e.g. an answer like "max(3, 4)"
            candidate, attempt = body, True
        else:  # prose, then a call list: unless the turn gives its answer
            found = _PY_LIST.search(body)
            if found is None or _answer_span(body) is not None:
                return [], None
            candidate, attempt = body[found.start() : body.rfind("]") + 1], True
        if len(candidate) > _MAX_LITERAL_CHARS:
            return [], ("tool call too long" if attempt else None)
        try:
            node = ast.parse(candidate.strip(), mode="eval").body
        except Exception as error:  # SyntaxError, ValueError, MemoryError, RecursionError
            if not attempt:
                return [], None
            message = getattr(error, "msg", None) or type(error).__name__
            return [], f"malformed pythonic tool call: {message}; write {self.call_hint}"
        if isinstance(node, ast.Call):
            nodes: list[ast.expr] = [node]
        elif isinstance(node, (ast.List, ast.Tuple)):
            nodes = list(node.elts)
        else:
            return [], None
        calls_seen = [isinstance(item, ast.Call) for item in nodes]
        if not any(calls_seen):
            return [], None  # a literal list: an answer
        if not all(calls_seen):
            return [], f"unknown structure: a tool call list holds only calls, {self.call_hint}"
        calls: list[ToolCall] = []
        for item in nodes:
            call = self._call(item)
            if isinstance(call, str):
                return calls, call
            calls.append(call)
            if len(calls) > MAX_CALLS_PER_TURN:
                break
        return calls, None

    @staticmethod
    def _call(node: ast.Call) -> ToolCall | str:
        name = _callee(node.func)
        if not name:
            return f"unsupported callee {type(node.func).__name__.lower()}: call tools by name"
        if node.args:
            return f"{name}: positional arguments are not supported; write argument=value"
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                return f"{name}: ** unpacking is not supported"
            try:
                arguments[keyword.arg] = _literal(keyword.value)
            except _NotLiteral as error:
                return f"{name}: argument {keyword.arg!r} is not a literal value ({error})"
        return ToolCall(name, arguments)


def _callee(node: ast.expr) -> str:
    """``name`` or ``a.b.name`` for a callee made of names only, else ''."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


FORMATS: dict[str, type[ToolCallFormat]] = {
    cls.name: cls for cls in (HermesFormat, Llama3JsonFormat, PythonicFormat, FallbackFormat)
}
"""Every format by name: ``FORMATS["hermes"](native=False)`` and so on."""


# -- choosing a format ---------------------------------------------------------------------------


def _template_text(template: Any) -> str:
    """A tokenizer's chat template as one string (dict and list forms joined)."""
    if isinstance(template, str):
        return template[:_MAX_TEMPLATE_CHARS]
    if isinstance(template, dict):
        return "\n".join(_template_text(value) for value in template.values())
    if isinstance(template, (list, tuple)):  # [{"name": ..., "template": ...}, ...]
        return "\n".join(
            _template_text(item.get("template") if isinstance(item, dict) else item)
            for item in template
        )
    return ""


def _uses_tools(template: str) -> bool:
    """The template refers to a ``tools`` variable (in a Jinja block, outside string literals)."""
    return any(
        _TOOLS_WORD.search(_JINJA_STRING.sub("", block.group(1)))
        for block in _JINJA_BLOCK.finditer(template)
    )


def detect_format(tokenizer: Any) -> ToolCallFormat:
    """The format for a tokenizer, read from its ``chat_template`` (a template string is also
    accepted): ``<tool_call>`` -> hermes; a pythonic call list (``[func_name1(`` / "python
    list") -> pythonic; ``<|python_tag|>``, ``Environment: ipython`` or ``"parameters"`` JSON
    calls -> llama3_json (all native); another template that uses ``tools`` -> hermes, native
    (the most common syntax); no template, or one without tool support -> fallback."""
    template = (
        tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "chat_template", None)
    )
    text = _template_text(template)
    if not text.strip():
        return FallbackFormat()
    if _OPEN in text:
        return HermesFormat(native=True)
    if "[func_name1(" in text or "python list" in text:
        return PythonicFormat(native=True)
    if _PYTHON_TAG in text or "Environment: ipython" in text or '"parameters"' in text:
        return Llama3JsonFormat(native=True)
    if _uses_tools(text):
        return HermesFormat(native=True)
    return FallbackFormat()


# -- tool results --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [truncated {len(text) - limit} characters]"


def render_tool_result(
    call: ToolCall, result: Any | None, error: str | None, *, limit: int = MAX_RESULT_CHARS
) -> str:
    """The content of the tool message the model reads after ``call``: ``error: <message>``
    when the call failed, else the result as JSON (unicode kept; sets, bytes and other objects
    made JSON-able), at most ``limit`` characters plus a ``[truncated N characters]`` marker."""
    if error is not None:
        text = f"error: {error or 'the tool failed'}"
    else:
        try:
            text = json.dumps(result, ensure_ascii=False, default=_jsonable)
        except Exception:  # circular, or a str() that raises: still a message, never a crash
            try:
                text = json.dumps(repr(result)[: limit + 1], ensure_ascii=False)
            except Exception:
                text = f'"<unrenderable {type(result).__name__}>"'
    return _truncate(text, limit)
