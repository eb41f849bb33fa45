"""The ``llama3_json`` format (Llama 3.1/3.2/3.3 JSON tool calls).

The turn is a JSON object ``{"name": "add", "parameters": {"a": 1}}``, optionally after
``<|python_tag|>``; several are separated by ``;``, commas or newlines (or given as a JSON list).
``"arguments"`` is accepted for ``"parameters"`` (and the other lenient call objects of
:mod:`sc_core.toolcalls.calls`), code fences around the JSON and text after it are ignored, and
``{"name": "now"}`` alone is a call when ``now`` is one of ``tool_names``. A JSON value that is not
a call (``[1, 2]``) is an answer. ``<tool_call>`` tags are read as hermes; given ``tool_names``,
calls of those tools written elsewhere in the turn (after prose, in an ``<answer>`` tag) are
accepted too (:mod:`sc_core.toolcalls.untagged`).
"""

from __future__ import annotations

import json
from typing import Any

from .base import ToolCallFormat
from .calls import ToolCall, _calls_from_values, _decode_prefix, _is_call_like, _json_error
from .hermes import _CLOSE, _OPEN, _hermes_calls
from .text import _snippet, _strip_fences

_PYTHON_TAG = "<|python_tag|>"


class Llama3JsonFormat(ToolCallFormat):
    """``{"name": ..., "parameters": {...}}`` turns, optionally after ``<|python_tag|>``
    (Llama 3.1 / 3.2 / 3.3 JSON tool calling)."""

    name = "llama3_json"
    native = True
    call_hint = '{"name": ..., "parameters": {...}}'

    def call_instructions(self, example: ToolCall) -> str:
        return (
            "To call a tool, reply with only a JSON object "
            '{"name": tool name, "parameters": {argument name: value}}, for example:\n'
            f"{self.render([example])}\n"
            "Put several calls on separate lines; their results come back in the next message."
        )

    def render(self, calls: list[ToolCall]) -> str:
        """One JSON object per call, each on its own line."""
        return "\n".join(
            json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False)
            for c in calls
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
