"""Python literals, read with :mod:`ast` and never evaluated: the hermes parser's last-resort
repair of JSON (single quotes, ``True``/``None``, a trailing comma) and the pythonic format's
argument values; and values written back as Python literals for pythonic prompts.

Reading only looks at bounded input (:data:`_MAX_LITERAL_CHARS`, :data:`_MAX_LITERAL_DEPTH`), so
a huge garbage turn is dismissed quickly.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from .. import syntax

_MAX_LITERAL_CHARS = 100_000  # longest text handed to ast (python-literal repair, pythonic calls)
_MAX_LITERAL_DEPTH = 64  # deepest nesting of a Python literal

_NAME_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}
_FAILED = object()


class _NotLiteral(Exception):
    """A Python expression that is not a plain literal."""


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


def _python_literal(text: str) -> Any:
    """``text`` read as one Python literal (single quotes, True/None), or ``_FAILED``."""
    if len(text) > _MAX_LITERAL_CHARS:
        return _FAILED
    try:
        return _literal(syntax.parse(text, mode="eval").body)
    except Exception:  # SyntaxError, ValueError (null bytes), MemoryError, RecursionError, ...
        return _FAILED


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
