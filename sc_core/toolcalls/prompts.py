"""Tool specs as system-prompt text, for formats that are not native (the model's chat template
does not show the tools): one compact line per tool, and a plausible example call."""

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
    if not isinstance(schema, dict):
        return "any"
    if schema.get("enum"):
        return "|".join(json.dumps(value) for value in schema["enum"])
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return f"list[{_type_name(schema['items'])}]"
    return str(schema.get("type", "any"))


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
