"""What a parsed turn holds (:class:`ToolCall`, :class:`ParsedTurn`), and reading JSON call
objects, the shape most formats share.

A JSON call object is ``{"name": "add", "arguments": {"a": 1}}``. Accepted as well:
``"parameters"`` instead of ``"arguments"``; arguments given as a JSON string (an empty one, or
null or none at all, is no arguments); the OpenAI shape ``{"function": {"name": ...,
"arguments": ...}}``. The name is stripped; the arguments must be an object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_CALLS_PER_TURN = 32
"""More tool calls than this in one turn make it invalid."""

_SEPARATORS = re.compile(r"[\s;,}]*")


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
    """The final answer, when the turn has no tool calls (see :mod:`sc_core.toolcalls.answer`)."""
    has_answer: bool = False
    error: str | None = None
    """Why the turn is invalid, e.g. ``"malformed JSON in <tool_call>: ..."``; None if valid."""


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


_NUMBER = r"\(*\s*[-+]?\d[\d.]*\s*\)*"
_ARITHMETIC = re.compile(rf"\s*({_NUMBER}(?:\s*(?:\*\*|[-+*/%^×÷])\s*{_NUMBER})+)")


def _json_error(error: BaseException) -> str:
    """What is wrong with the JSON, in words a model can act on. Small models write arithmetic
    where a value goes (``{"answer": 4.75 * 3 + 1.20 * 2}``, Qwen2.5-Coder-0.5B); told only
    "Expecting ',' delimiter", the 0.5B wrote the same call six turns running."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, json.JSONDecodeError) and (expression := _arithmetic_at(error)):
        return (
            f"an argument is arithmetic, {expression}, but arguments are values: work it out "
            "first (with a tool, if one computes it) and pass the result"
        )
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def _arithmetic_at(error: json.JSONDecodeError) -> str | None:
    """The arithmetic expression written as a JSON value where decoding failed, if that is
    what failed it."""
    start = max(error.doc.rfind(mark, 0, error.pos) for mark in ":[,") + 1
    match = _ARITHMETIC.match(error.doc, start)
    return match.group(1).strip()[:200] if match and match.end() > error.pos else None


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
