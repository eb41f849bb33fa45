"""Tool results as the model reads them: the content of the ``tool`` message that follows a call.

The result is compact JSON (unicode kept), or ``error: <message>``, cut to
:data:`MAX_RESULT_CHARS` characters with a ``[truncated N characters]`` marker, so one huge
result cannot fill the model's context.
"""

from __future__ import annotations

import json
from typing import Any

from .calls import ToolCall

MAX_RESULT_CHARS = 4000
"""Longest tool-message content before it is truncated."""


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
