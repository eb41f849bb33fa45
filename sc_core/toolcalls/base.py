"""The base class of the formats: how a turn goes from text to a :class:`ParsedTurn`, and the
system prompt that shows the tools.

Invalid turns
-------------
:meth:`ToolCallFormat.parse` never raises. ``ParsedTurn.error`` set means the turn is invalid;
``tool_calls`` then holds the calls that did parse before the problem, for diagnostics only.
A turn with more than :data:`MAX_CALLS_PER_TURN` calls is invalid. Parsing is linear in the
length of the text (no backtracking regular expressions; Python-literal repair, pythonic
parsing and the search for untagged calls only look at bounded input), so a 1 MB garbage turn
is dismissed quickly.
"""

from __future__ import annotations

from typing import ClassVar

from .answer import ANSWER_INSTRUCTIONS, _answer_span, _answer_value, _boxed
from .calls import (
    MAX_CALLS_PER_TURN,
    ParsedTurn,
    ToolCall,
    _as_call,
    _decode_prefix,
    _is_call_like,
    _json_error,
)
from .prompts import _example_call, _function, describe
from .text import _THINK_START, _clean, _strip_fences
from .untagged import untagged_calls


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
    untagged_calls_of_any_name: ClassVar[bool] = False
    """Without ``tool_names``, bare JSON calls of any name are still calls (see
    :mod:`sc_core.toolcalls.untagged`); only for the fallback format, whose models were merely
    taught the syntax."""

    def __init__(self, native: bool | None = None):
        if native is not None:
            self.native = native

    def __repr__(self) -> str:
        return f"{type(self).__name__}(native={self.native})"

    def system_prompt(self, tools: list[dict], answer: str = ANSWER_INSTRUCTIONS) -> str:
        """Text for the system prompt. Native: the final-answer instructions ``answer`` only
        (the template shows the tools). Not native: every tool in full (its description and
        each argument's type, whether it is required, default and description; see
        :func:`~sc_core.toolcalls.prompts.describe`), how to call them (one example, using the
        first tool) and the final-answer instructions."""
        if self.native or not tools:
            return answer
        functions = [_function(tool) for tool in tools]
        lines = ["You can use these tools:"] + [describe(tool) for tool in tools]
        lines += ["", self.call_instructions(_example_call(functions[0])), answer]
        return "\n".join(lines)

    def call_instructions(self, example: ToolCall) -> str:
        """How to call tools, with ``example`` written in this format."""
        raise NotImplementedError

    def render(self, calls: list[ToolCall]) -> str:
        """The turn that makes ``calls``, written as the model writes it in this format (what a
        demonstration plays; :meth:`parse` reads it back as the same calls)."""
        raise NotImplementedError

    def parse(self, text: str, *, tool_names: set[str] | None = None) -> ParsedTurn:
        """What the model's turn ``text`` is; never raises.

        ``tool_names``: the tools the model has; used to recognise calls written without the
        format's syntax (:mod:`sc_core.toolcalls.untagged`) and bare pythonic calls, never to
        reject a well-formed call of an unknown tool."""
        try:
            if not isinstance(text, str):
                return ParsedTurn([], error=f"the turn is not text but {type(text).__name__}")
            raw, text = text, _clean(text)
            if not text and _THINK_START in raw:
                return ParsedTurn([], error="the turn ends inside <think> (no </think>)")
            names = set(tool_names) if tool_names is not None else None
            calls, error = self._extract_calls(text, names)
            if not calls and error is None:
                calls = untagged_calls(text, names, any_name=self.untagged_calls_of_any_name)
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
        """The turn's tool calls in this format's own syntax and the error that makes it
        invalid, if any."""
        raise NotImplementedError

    def _answer_turn(self, text: str, tool_names: set[str] | None) -> ParsedTurn:
        span = _answer_span(text)
        if span is None:
            span = _boxed(text)
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
            tools = ", ".join(sorted(tool_names))
            return f"unknown tool {call.name!r} (the tools are {tools}); write {self.call_hint}"
        return f"write tool calls as {self.call_hint}"
