"""JSON tool calls written without the format's own syntax, which every format accepts when
they name the toolset's tools.

Real models drop the syntax they were trained on or taught: Qwen2.5-Coder-0.5B-Instruct, whose
template teaches ``<tool_call>`` tags, also writes a bare ``{"name": "add", "arguments": {...}}``,
the same in a code fence, or the call as its final answer
(``<answer>{"name": "divide", "arguments": {...}}</answer>``); tiny models taught the hermes
syntax in a prompt forget the tags. An object that names one of the model's tools and has
arguments is unambiguously a call, so when a format's own parser finds neither a call nor an
error, :meth:`~sc_core.toolcalls.ToolCallFormat.parse` takes, given ``tool_names``:

- in a turn without an ``<answer>`` tag: every JSON call object (see
  :mod:`sc_core.toolcalls.calls`) whose name is one of ``tool_names`` and whose arguments are an
  object, wherever it is (bare, several in a row, in a JSON list, in a code fence, after
  prose); also a known tool's name with its arguments beside it instead of under
  ``"arguments"`` (``{"name": "final_answer", "answer": 42}``), and an object the turn ends
  before closing (its last few brackets missing); other JSON objects are skipped (and a turn
  that starts with a call of a known tool whose arguments are not an object is invalid, saying
  why);
- in a turn with an ``<answer>`` tag: the calls that are the whole content of the tag that
  counts (code fences aside): one or several such call objects, or a JSON list of them, every
  one naming a known tool with object arguments. Anything else in the tag is the answer, and
  the untagged calls outside it yield to it.

Without ``tool_names``, nothing is taken, except by the fallback format, which takes bare calls
of any name (never from an ``<answer>`` tag). At most :data:`_MAX_BARE_ATTEMPTS` JSON decodes
are tried, so a huge garbage turn is dismissed quickly.
"""

from __future__ import annotations

import json
from typing import Any

from .answer import _answer_span
from .calls import MAX_CALLS_PER_TURN, ToolCall, _as_call, _call_name, _decode_prefix, _is_call_like
from .text import _strip_fences

_MAX_BARE_ATTEMPTS = 64  # JSON decodes tried when looking for bare calls in a turn


def untagged_calls(
    text: str, tool_names: set[str] | None, *, any_name: bool = False
) -> list[ToolCall]:
    """The untagged calls in the (cleaned) turn ``text``; ``any_name``: without ``tool_names``,
    bare calls of any name count (the fallback format)."""
    span = _answer_span(text)
    if span is not None:
        return _answer_calls(span, tool_names) if tool_names is not None else []
    if tool_names is None and not any_name:
        return []
    return _bare_calls(text, tool_names)


def _known_call(value: Any, tool_names: set[str] | None, flat: bool = True) -> ToolCall | None:
    """``value`` as a call: a call object naming one of ``tool_names`` (any name when None) with
    arguments that are an object, or, if ``flat``, a flat one (:func:`_flat_call`); else None.
    The tool's name may also be under ``"function"`` (Qwen2.5-Coder-1.5B-Instruct wrote
    ``{"function": "evaluate", "arguments": {...}}``)."""
    if isinstance(value, dict) and "name" not in value and isinstance(value.get("function"), str):
        value = {"name": value["function"]} | {k: v for k, v in value.items() if k != "function"}
    if not _is_call_like(value):
        return _flat_call(value, tool_names) if flat else None
    if tool_names is not None and _call_name(value) not in tool_names:
        return None
    call = _as_call(value)
    return call if isinstance(call, ToolCall) else None


def _flat_call(value: Any, tool_names: set[str] | None) -> ToolCall | None:
    """A call object with its arguments beside the name instead of under ``"arguments"``, as
    Qwen2.5-Coder-0.5B-Instruct calls the answer tool: ``{"name": "final_answer", "answer":
    "1048576"}``. Only for a name among ``tool_names``: an object that merely has a "name" key
    stays data."""
    if not isinstance(value, dict) or tool_names is None or value.get("name") not in tool_names:
        return None
    arguments = {key: item for key, item in value.items() if key not in ("name", "type")}
    return ToolCall(value["name"], arguments) if arguments else None


def _bare_calls(text: str, tool_names: set[str] | None) -> list[ToolCall]:
    """The known calls among the JSON objects anywhere in ``text``. Bounded: at most a fixed
    number of decodes are tried."""
    if '"name"' not in text and '"function"' not in text:
        return []
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    position, attempts = text.find("{"), 0
    while position >= 0 and attempts < _MAX_BARE_ATTEMPTS and len(calls) <= MAX_CALLS_PER_TURN:
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            closed = _closed(text[position:])
            if closed is not None:  # the turn ended before the object did
                call = _known_call(closed, tool_names)
                return calls + [call] if call is not None else calls
            position = text.find("{", position + 1)
            continue
        call = _known_call(value, tool_names)
        if call is not None:
            calls.append(call)
        position = text.find("{", end)
    return calls


_MAX_UNCLOSED = 3  # brackets a turn may leave open at its end and still be read as a call
_CLOSER = {"{": "}", "[": "]"}


def _closed(tail: str) -> Any:
    """``tail``, the rest of the turn from an object that does not decode, read as JSON once the
    brackets left open at its end are closed (Qwen2.5-Coder-0.5B writes
    ``{"name": "divide", "arguments": {"a": 84.6, "b": 4}`` and stops); None when that is not
    the problem (a string left open, another syntax error, more than a few brackets open)."""
    tail = tail.rstrip()
    if len(tail) > 4096:
        return None
    stack: list[str] = []
    in_string = escaped = False
    for char in tail:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in _CLOSER:
            stack.append(_CLOSER[char])
        elif char in "}]" and (not stack or stack.pop() != char):
            return None
    if in_string or not 0 < len(stack) <= _MAX_UNCLOSED:
        return None
    try:
        return json.loads(tail + "".join(reversed(stack)))
    except (ValueError, RecursionError):
        return None


def _answer_calls(span: str, tool_names: set[str]) -> list[ToolCall]:
    """The calls that make up the whole answer tag content ``span``; [] when it is an answer."""
    body = _strip_fences(span)
    if not body.startswith(("{", "[")) or ('"name"' not in body and '"function"' not in body):
        return []
    values, error, index = _decode_prefix(body)
    if error is not None or index < len(body):
        return []
    calls: list[ToolCall] = []
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            call = _known_call(item, tool_names, flat=False)  # flat: the answer may be data
            if call is None:
                return []
            calls.append(call)
    return calls
