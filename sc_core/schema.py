"""JSON-schema parameters for a plain Python function, from its type hints and Google docstring."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import ScError

_PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$"
)
_ARG = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one type hint; an unknown or missing hint allows any value."""
    if annotation in _PRIMITIVES:
        return {"type": _PRIMITIVES[annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        schema: dict[str, Any] = {"enum": list(args)}
        kinds = {_PRIMITIVES.get(type(arg)) for arg in args}
        if len(kinds) == 1 and None not in kinds:  # one JSON type: say which, for the model
            schema = {"type": kinds.pop(), **schema}
        return schema
    if origin in (typing.Union, types.UnionType):
        options = [type_schema(arg) for arg in args if arg is not type(None)]
        schema = dict(options[0]) if len(options) == 1 else {"anyOf": options}
        if type(None) in args:  # Optional: an explicit null is allowed too
            schema["nullable"] = True
        return schema
    if annotation in (list, tuple, set) or origin in (list, tuple, set):
        schema = {"type": "array"}
        item_types = {arg for arg in args if arg is not Ellipsis}
        if len(item_types) == 1:  # list[int], tuple[int, ...], tuple[int, int]
            schema["items"] = type_schema(item_types.pop())
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
            schema["minItems"] = schema["maxItems"] = len(args)
        return schema
    if annotation is dict or origin is dict:
        return {"type": "object"}
    return {}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section, current, args_indent = None, None, 0
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section, current = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            match = _ARG.match(line)
            indent = len(line) - len(line.lstrip())
            if match and (current is None or indent <= args_indent):
                current, args_indent = match.group(1), indent
                args[current] = match.group(2).strip()
            elif current and line.strip():
                args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(" ".join(summary).split()), args


def function_schema(fn: Callable[..., Any], name: str) -> tuple[str, dict[str, Any]]:
    """The description and the JSON-schema ``parameters`` object of a tool function."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to untyped parameters
        hints = {}
    description, arg_docs = parse_docstring(fn.__doc__)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ScError(f"tool {name!r}: *args and **kwargs parameters are not supported")
        prop = type_schema(hints.get(param.name, Any))
        if param.name in arg_docs:
            prop["description"] = arg_docs[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, (str, int, float, bool)):
            prop["default"] = param.default
        properties[param.name] = prop
    parameters = {"type": "object", "properties": properties, "required": required}
    parameters["additionalProperties"] = False
    return description, parameters
