"""How tools are presented to a model, and how its turns are parsed.

A rollout shows the model its tools, lets it write a turn, and asks :meth:`ToolCallFormat.parse`
what that turn is: tool calls to run, a final answer, or garbage (with the reason, which the
rollout records and may show the model). Pure Python: the tokenizer is passed in, never imported.

Formats
-------
A model whose chat template renders ``tools=`` itself is *native*: the template shows the tools
and the model calls them the way it was trained to. :func:`detect_format` reads the template and
picks one of four formats, one module each, whose docstring says exactly what it accepts:

:mod:`~sc_core.toolcalls.hermes` (Qwen2.5/3, Hermes)
    ``<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>``
:mod:`~sc_core.toolcalls.llama3_json` (Llama 3.1/3.2/3.3)
    ``{"name": "add", "parameters": {"a": 1}}``, optionally after ``<|python_tag|>``
:mod:`~sc_core.toolcalls.pythonic` (Llama 3.2 / Llama 4 pythonic templates)
    ``[add(a=1, b="x"), now()]``, read with :mod:`ast`, never evaluated
:mod:`~sc_core.toolcalls.fallback` (templates without tool support, such as SmolLM2's)
    not native: the system prompt shows every tool in full, in a compact readable form (name,
    whole description, and each argument's type, required or optional, default and
    description; not the JSON schema, which costs about 1.7 times the tokens), and teaches
    the hermes syntax with one example

Each format also parses the others' tell-tale syntax where it is unambiguous (a ``<tool_call>``
tag is read as hermes by every format), and, given the toolset's tool names, JSON calls of those
tools written without its syntax: bare, fenced, or as the whole content of an ``<answer>`` tag
(:mod:`~sc_core.toolcalls.untagged`), as real models write them. Names are not checked against
the tools otherwise: an unknown tool is the executor's error to report.

The rest of the package: :mod:`~sc_core.toolcalls.answer` (the final-answer convention, the same
in every format), :mod:`~sc_core.toolcalls.base` (the parse pipeline, invalid turns),
:mod:`~sc_core.toolcalls.calls` (calls and JSON call objects), :mod:`~sc_core.toolcalls.text`
(reasoning and end markers dropped before parsing), :mod:`~sc_core.toolcalls.literals`,
:mod:`~sc_core.toolcalls.prompts` (tools shown in a system prompt),
:mod:`~sc_core.toolcalls.detect` and :mod:`~sc_core.toolcalls.results` (tool results as the
model reads them).
"""

from __future__ import annotations

from .answer import (
    ANSWER_INSTRUCTIONS,
    ANSWER_PROTOCOLS,
    FINAL_ANSWER_TOOL,
    AnswerProtocol,
    parse_answer,
)
from .base import ToolCallFormat
from .calls import MAX_CALLS_PER_TURN, ParsedTurn, ToolCall
from .detect import FORMATS, detect_format
from .fallback import FallbackFormat
from .hermes import HermesFormat
from .llama3_json import Llama3JsonFormat
from .prompts import signature as signature  # not in __all__, but sc_core.challenge uses it
from .pythonic import PythonicFormat
from .results import MAX_RESULT_CHARS, render_tool_result

__all__ = [
    "ANSWER_INSTRUCTIONS",
    "ANSWER_PROTOCOLS",
    "FINAL_ANSWER_TOOL",
    "AnswerProtocol",
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
