"""Tool specs as system-prompt text, for formats that are not native (the model's chat template
does not show the tools): each tool in full, in a compact readable form rather than its JSON
schema (:func:`describe`), and a plausible example call. The one-line :func:`signature` is how
the challenger's prompt shows the tools a solution calls."""

from __future__ import annotations

import json
import re
from typing import Any

from .calls import ToolCall


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool spec (OpenAI ``{"type": "function", "function": {...}}`` or bare) as
    ``{"name", "description", "parameters"}``."""
    spec = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    function = {"name": spec.get("name", ""), "description": spec.get("description", "")}
    function["parameters"] = spec.get("parameters") or {"type": "object", "properties": {}}
    return function


def _type_name(schema: Any) -> str:
    """A JSON schema as a short type expression: ``string``, ``list[integer]``, ``"a"|"b"``,
    ``{id: string, quantity: integer}``, ``integer or null``."""
    if not isinstance(schema, dict):
        return "any"
    options = schema.get("anyOf") or schema.get("oneOf")
    kind = schema.get("type")
    if schema.get("enum"):
        name = "|".join(json.dumps(value) for value in schema["enum"])
    elif isinstance(options, list) and options:
        name = " or ".join(_type_name(option) for option in options)
    elif isinstance(kind, list):
        name = " or ".join(str(k) for k in kind) or "any"
    elif kind == "array" and isinstance(schema.get("items"), dict):
        name = f"list[{_type_name(schema['items'])}]"
    elif kind == "object" and isinstance(schema.get("properties"), dict) and schema["properties"]:
        keys = ", ".join(f"{k}: {_type_name(v)}" for k, v in schema["properties"].items())
        name = f"{{{keys}}}"
    else:
        name = str(kind or "any")
    return f"{name} or null" if schema.get("nullable") else name


def signature(tool: dict[str, Any], prefix: str = "") -> str:
    """A tool as one compact line, ``name(arg: type, opt: type = ...)  # first sentence``: far
    fewer tokens than its JSON schema, which matters for small models on CPUs."""
    function = _function(tool)
    parameters = function["parameters"]
    required = set(parameters.get("required") or [])
    args = ", ".join(
        f"{name}: {_type_name(schema)}{'' if name in required else ' = ...'}"
        for name, schema in (parameters.get("properties") or {}).items()
    )
    summary = re.split(r"(?<=[.;])\s", function["description"].strip(), maxsplit=1)[0]
    return f"{prefix}{function['name']}({args})  # {summary}".rstrip(" #")


def _parameter(name: str, schema: Any, required: bool) -> str:
    """One argument as ``name (type, required): description`` or ``name (type, optional,
    default value): description``."""
    facts = [_type_name(schema), "required" if required else "optional"]
    if isinstance(schema, dict) and "default" in schema:
        facts.append(f"default {json.dumps(schema['default'])}")
    text = " ".join(str(schema.get("description", "")).split()) if isinstance(schema, dict) else ""
    return f"{name} ({', '.join(facts)})" + (f": {text}" if text else "")


def describe(tool: dict[str, Any]) -> str:
    """A tool in full, for a model that only sees it in the system prompt: its name and whole
    description, then one indented line per argument with its type, whether it is required,
    its default and its description. Small models call tools better when they see what each
    argument means, and this form costs far fewer tokens than the JSON schema it renders."""
    function = _function(tool)
    description = " ".join(function["description"].split())
    lines = [f"{function['name']}: {description}" if description else function["name"]]
    parameters = function["parameters"]
    required = set(parameters.get("required") or [])
    properties = parameters.get("properties") or {}
    lines += [
        f"  {_parameter(name, schema, name in required)}" for name, schema in properties.items()
    ]
    return "\n".join(lines if properties else [*lines, "  (no arguments)"])


def _example_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "..."
    if schema.get("enum"):
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if options and isinstance(options, list):
        return _example_value(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(kind, "...")


def _example_call(function: dict[str, Any]) -> ToolCall:
    """A plausible call of ``function``, for the system prompt's one example."""
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = [name for name in parameters.get("required") or [] if name in properties]
    names = (required + [name for name in properties if name not in required])[:3]
    return ToolCall(function["name"], {name: _example_value(properties[name]) for name in names})
