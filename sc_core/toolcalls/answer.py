"""The final-answer convention, the same in every format.

The model ends an episode by writing ``<answer>VALUE</answer>`` in a turn with no tool call
(the tag is case-insensitive; a missing closing tag runs to the end of the text; with several
tags, the last complete one counts). VALUE is parsed as JSON when it is valid JSON (``41`` and
``41.0`` are numbers, ``"Paris"`` is a string, ``[1, 2]`` a list, ``true`` a bool, ``null``
None; ``NaN`` and ``Infinity`` stay text), otherwise it is the stripped text; code fences around
it are dropped. Lenient for small models: a turn with no tool call and no ``<answer>`` tag
answers with the content of its last ``\\boxed{...}`` if it has one (maths-trained models box
their answers), else is an answer as a whole (the same VALUE rule applies), unless it is empty
(error ``"empty turn"``) or is a tool call the format cannot accept (a malformed or misplaced
one: an error that says so).

Tool calls take precedence: a turn with tool calls has no answer (``has_answer`` False). A tag
whose whole content is JSON calls of the toolset's tools holds calls, not an answer; other
untagged calls, and prose-embedded pythonic calls, yield to an ``<answer>`` tag (see
:mod:`sc_core.toolcalls.untagged`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .text import _clean, _strip_fences

ANSWER_INSTRUCTIONS = (
    "When you have the final answer, reply with <answer>VALUE</answer> and no tool call, "
    "for example <answer>42</answer>: a number as digits, a list as a JSON list "
    '(<answer>["a", "b"]</answer>), anything else as plain text.'
)
"""The final-answer convention, as the model is told it under the ``tag`` protocol."""

FINAL_ANSWER_TOOL = "final_answer"


@dataclass(frozen=True)
class AnswerProtocol:
    """How the model is told to end an episode. Every protocol's answers are parsed the same
    way (an ``<answer>`` tag, a turn with no tool call, or a call of :data:`FINAL_ANSWER_TOOL`
    when ``tool`` is set); the protocols differ in what the system prompt asks for, and in
    whether the model is given the answer tool."""

    name: str
    instructions: str
    reminder: str
    """Added to the last tool result of each turn: small models otherwise repeat a call whose
    result they already have instead of answering with it."""
    tool: dict[str, Any] | None = None
    """A tool spec the model calls with its answer (shown with the toolset's tools)."""


ANSWER_PROTOCOLS: dict[str, AnswerProtocol] = {
    protocol.name: protocol
    for protocol in (
        AnswerProtocol(
            "tag",
            ANSWER_INSTRUCTIONS,
            "If this answers the task, reply with <answer>VALUE</answer> now.",
        ),
        AnswerProtocol(
            "plain",
            "When you have the final answer, reply with only the answer and no tool call: a "
            "number as digits (42), anything else as short text.",
            "If this answers the task, reply with only the answer now.",
        ),
        AnswerProtocol(
            "tool",
            f"When you have the final answer, call the {FINAL_ANSWER_TOOL} tool with it; that "
            "ends the task. Give a number as a number, anything else as short text.",
            f"If this answers the task, call {FINAL_ANSWER_TOOL} with the answer now.",
            {
                "type": "function",
                "function": {
                    "name": FINAL_ANSWER_TOOL,
                    "description": "Give the final answer to the user's task. This ends the task.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "answer": {"description": "The answer: a number, text or a list."}
                        },
                        "required": ["answer"],
                    },
                },
            },
        ),
    )
}
"""Every answer protocol by name (``AgentConfig.answer_protocol``)."""

_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)


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


_BOXED = "\\boxed{"


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (braces balanced), or None. Qwen
    models, trained on maths, box their final answer in prose: "reaches \\(\\boxed{12}\\)
    meters"."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, begin = 1, start + len(_BOXED)
    for index in range(begin, min(len(text), begin + 1000)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[begin:index]
    return None


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
    if span is None:
        span = _boxed(text)
    return _answer_value(span if span is not None else text)
