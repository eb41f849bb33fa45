"""The ``pythonic`` format (Llama 3.2 / Llama 4 pythonic templates).

A turn is a call list ``[add(a=1, b="x"), now()]`` (optionally after ``<|python_tag|>``, or in a
code fence), read with :mod:`ast`; every argument must be a keyword whose value is a literal
(numbers, strings, lists, dicts, ``True``/``False``/``None``, also ``true``/``false``/``null``);
anything else (names, calls, operators, ``**kwargs``, positional arguments) makes the turn
invalid. Nothing is ever evaluated. A bare ``name(...)`` without brackets is a call only when
``name`` is one of ``tool_names``; a call list after some prose is found too, unless there is an
answer tag. A literal list (``[1, 2]``) is an answer. ``<tool_call>`` tags are read as hermes;
given ``tool_names``, JSON calls of those tools are accepted too
(:mod:`sc_core.toolcalls.untagged`); any other turn that starts with a JSON call object is an
error that shows this format's syntax.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .. import syntax
from .answer import _answer_span
from .base import ToolCallFormat
from .calls import MAX_CALLS_PER_TURN, ToolCall
from .hermes import _OPEN, _hermes_calls
from .literals import _MAX_LITERAL_CHARS, _literal, _NotLiteral, _python_repr
from .llama3_json import _PYTHON_TAG
from .text import _strip_fences

_PY_LIST = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")
_PY_CALL = re.compile(r"[A-Za-z_][\w.]*\s*\(")


class PythonicFormat(ToolCallFormat):
    """``[name(arg=literal, ...), ...]`` (Llama 3.2 / Llama 4 pythonic tool calling)."""

    name = "pythonic"
    native = True
    call_hint = "[tool_name(argument=value, ...)]"

    def call_instructions(self, example: ToolCall) -> str:
        return (
            "To call tools, reply with only a Python list of calls with keyword arguments, "
            f"for example:\n{self.render([example])}\n"
            "Argument values must be literals (numbers, strings, lists, dicts, True, False, "
            "None). The results come back in the next message."
        )

    def render(self, calls: list[ToolCall]) -> str:
        """One call list, the values written as Python literals."""
        written = (
            f"{c.name}({', '.join(f'{k}={_python_repr(v)}' for k, v in c.arguments.items())})"
            for c in calls
        )
        return f"[{', '.join(written)}]"

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
            node = syntax.parse(candidate.strip(), mode="eval").body
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
