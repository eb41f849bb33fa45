"""JSON-schema tool parameters: for a plain Python function, from its type hints and Google
docstring; for a foreign tool (LangChain, MCP), its schema tidied into the same plain shape; and
the check of a call's values against them (:func:`value_error`).

Tidying (:func:`clean_schema`):

- local ``$ref``s (``#/$defs/X``, ``#/definitions/X``) are inlined, except recursive ones, whose
  definitions are kept under ``$defs``;
- ``title`` keys are dropped (pydantic adds one to every model and field; they only cost tokens);
- ``anyOf: [X, {"type": "null"}]`` becomes X with ``"nullable": true``, as sc writes Optional.
"""

from __future__ import annotations

import inspect
import json
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


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def clean_schema(schema: Any) -> dict[str, Any]:
    """The parameters object for ``schema``: an object schema, refs inlined, titles dropped."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    recursive: set[str] = set()
    body = {key: value for key, value in schema.items() if key not in ("$defs", "definitions")}
    cleaned = _clean(body, defs, (), recursive)
    if recursive:
        kept = {name: _clean(defs[name], defs, (name,), recursive) for name in sorted(recursive)}
        cleaned["$defs"] = kept
    cleaned.setdefault("type", "object")
    cleaned.setdefault("properties", {})
    return cleaned


def _ref_name(ref: str) -> str | None:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return None


def _clean(node: Any, defs: dict[str, Any], stack: tuple[str, ...], recursive: set[str]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs, stack, recursive) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    name = _ref_name(ref) if isinstance(ref, str) else None
    if name is not None and name in defs:
        if name in stack:
            recursive.add(name)
            return {"$ref": f"#/$defs/{name}"}
        target = _clean(defs[name], defs, (*stack, name), recursive)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_clean(siblings, defs, stack, recursive)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _clean(v, defs, stack, recursive) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_clean(item, defs, stack, recursive) for item in value]
        elif key in _SCHEMA_VALUES and isinstance(value, (dict, list)):
            out[key] = _clean(value, defs, stack, recursive)
        else:
            out[key] = value
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        others = [option for option in options if option != {"type": "null"}]
        if len(others) == 1 and isinstance(others[0], dict) and "anyOf" not in others[0]:
            del out["anyOf"]
            out = {**others[0], **out, "nullable": True}
    return out


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
    "null": lambda value: value is None,
}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def value_error(
    value: Any, schema: Any, path: str, defs: dict[str, Any] | None = None
) -> str | None:
    """Why ``value`` (called ``path``, e.g. ``argument 'xs'``) does not fit ``schema``, naming
    the bad part by its path (``argument 'xs'[1] must be a number, got "a"``); None if it fits.

    A model's call is checked before the tool runs, so that the tool never sees data its type
    hints rule out and the model learns exactly what to fix. Checked: ``type`` (an integer is a
    number; a boolean is neither), ``nullable``, ``enum``, ``anyOf``/``oneOf``/``allOf``, array
    ``items``/``prefixItems``/``minItems``/``maxItems``, object ``properties``/``required``/
    ``additionalProperties`` and ``#/$defs/`` refs (``defs``: the parameters' ``$defs``). Other
    keywords (``minimum``, ``pattern``, ...) are the tool's own to check. Nothing is coerced.
    """
    try:
        return _check(value, schema, path, defs or {})
    except RecursionError:  # a recursive schema, and a value nested deeper than Python goes
        return f"{path} is nested too deeply"


def _check(value: Any, schema: Any, path: str, defs: dict[str, Any]) -> str | None:
    schema = _resolved(schema, defs)
    if not isinstance(schema, dict) or (value is None and schema.get("nullable")):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, option) for option in enum):
        return f"{path} must be one of {_shown(enum, 80)}, got {_shown(value)}"
    if not _type_fits(value, schema):
        return f"{path} must be {_expected(schema)}, got {_shown(value)}"
    return (
        _options_error(value, schema, path, defs)
        or _array_error(value, schema, path, defs)
        or _object_error(value, schema, path, defs)
    )


def _resolved(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema``, or the definition its ``#/$defs/`` ref names."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.removeprefix("#/$defs/") in defs:
        return defs[ref.removeprefix("#/$defs/")]
    return schema


def _same(value: Any, option: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return value == option and isinstance(value, bool) == isinstance(option, bool)


def _types(schema: Any) -> list[str]:
    """The known JSON types ``schema`` allows; empty when it does not say."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    names = declared if isinstance(declared, list) else [declared]
    return [name for name in names if name in _TYPE_CHECKS]


def _type_fits(value: Any, schema: Any) -> bool:
    types = _types(schema)
    return not types or any(_TYPE_CHECKS[name](value) for name in types)


def _expected(schema: Any) -> str:
    """What ``schema`` allows, in words: ``an integer or null``."""
    if not isinstance(schema, dict):
        return "any value"
    if "enum" in schema:
        words = [f"one of {_shown(schema['enum'], 80)}"]
    elif _types(schema):
        words = [_TYPE_NAMES[name] for name in _types(schema)]
    elif isinstance(schema.get("anyOf") or schema.get("oneOf"), list):
        words = [_expected(option) for option in schema.get("anyOf") or schema["oneOf"]]
    else:
        return "any value"
    if schema.get("nullable") and "null" not in words:
        words.append("null")
    return " or ".join(words)


def _options_error(
    value: Any, schema: dict[str, Any], path: str, defs: dict[str, Any]
) -> str | None:
    parts = schema.get("allOf")
    for part in parts if isinstance(parts, list) else []:
        problem = _check(value, part, path, defs)
        if problem:
            return problem
    options = schema.get("anyOf") or schema.get("oneOf")
    if not isinstance(options, list) or not options:
        return None
    options = [_resolved(option, defs) for option in options]
    problems = [_check(value, option, path, defs) for option in options]
    if None in problems:
        return None
    pairs = zip(options, problems, strict=True)
    typed = [problem for option, problem in pairs if _type_fits(value, option)]
    if len(typed) == 1:  # the one option of its type: what is wrong inside it
        return typed[0]
    expected = _expected({"anyOf": options, "nullable": schema.get("nullable")})
    return f"{path} must be {expected}, got {_shown(value)}"


def _array_error(value: Any, schema: dict[str, Any], path: str, defs: dict[str, Any]) -> str | None:
    if not isinstance(value, list):
        return None
    least, most = schema.get("minItems"), schema.get("maxItems")
    if isinstance(least, int) and len(value) < least:
        return f"{path} must have at least {least} item(s), got {len(value)}"
    if isinstance(most, int) and len(value) > most:
        return f"{path} must have at most {most} item(s), got {len(value)}"
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        item_schema = prefix[index] if index < len(prefix) else schema.get("items")
        problem = _check(item, item_schema, f"{path}[{index}]", defs)
        if problem:
            return problem
    return None


def _object_error(
    value: Any, schema: dict[str, Any], path: str, defs: dict[str, Any]
) -> str | None:
    if not isinstance(value, dict):
        return None
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    missing = [key for key in required if key not in value] if isinstance(required, list) else []
    if missing:
        return f"{path} is missing key(s) {', '.join(map(_shown, missing))}"
    extra = schema.get("additionalProperties")
    if extra is False:
        unknown = [key for key in value if key not in properties]
        if unknown:
            return f"{path} has unknown key(s) {', '.join(map(_shown, unknown))}"
    for key, item in value.items():
        problem = _check(item, properties.get(key, extra), f"{path}[{_shown(key)}]", defs)
        if problem:
            return problem
    return None


def _shown(value: Any, limit: int = 40) -> str:
    """``value`` as the JSON a model writes, cut to about ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON data: a Python caller's object
        text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
