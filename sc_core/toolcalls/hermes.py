"""The ``hermes`` format (Qwen2.5/3, Hermes; and the ``fallback``): ``<tool_call>`` tags.

A turn holds one or more ``<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>``.
Accepted as well: the lenient call objects of :mod:`sc_core.toolcalls.calls` (``"parameters"``,
arguments as a JSON string, the OpenAI shape); a missing closing tag (the call then runs to the
next ``<tool_call>`` or the end of the text); a missing opening tag before a closing one; several
objects, or a JSON list of them, in one tag; code fences around the JSON; stray closing braces or
text after it; and, as a last resort, Python literals (single quotes, ``True``/``None``, a
trailing comma), read with :mod:`ast`, never evaluated. Given ``tool_names``, calls of those
tools without tags are accepted too (:mod:`sc_core.toolcalls.untagged`); any other turn that
starts with a JSON call object is an error that tells the model to use the tags. Every other
format reads ``<tool_call>`` tags with this parser.
"""

from __future__ import annotations

import json

from .base import ToolCallFormat
from .calls import MAX_CALLS_PER_TURN, ToolCall, _calls_from_values, _decode_prefix, _json_error
from .literals import _FAILED, _python_literal
from .text import _snippet, _strip_fences

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


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

    def render(self, calls: list[ToolCall]) -> str:
        """One JSON call object per line, without the tags: what this parser reads as calls of
        the toolset's tools. Why not the tags: in Qwen2.5's tokenizer ``<tool_call>`` is an
        added token that the small Qwen2.5-Coder models never produce (the 0.5B gives it a
        probability of 1e-14 where it starts a call, and writes ``{"`` or a code fence instead).
        Fine-tuned on demonstrations with the tag, the 0.5B learned to write unrelated tokens
        near that token's embedding (" Arcade") in its place; bare JSON is a habit it has."""
        return "\n".join(
            json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
            for c in calls
        )

    def _extract_calls(self, text, tool_names):
        return _hermes_calls(text)


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
    """The calls in the turn's ``<tool_call>`` tags, and the first malformed one's error."""
    calls: list[ToolCall] = []
    for body in _tagged_bodies(text):
        parsed = _parse_body(body)
        if isinstance(parsed, str):
            return calls, parsed
        calls.extend(parsed)
        if len(calls) > MAX_CALLS_PER_TURN:
            break
    return calls, None
