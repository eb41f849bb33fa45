"""Tidy a foreign JSON schema into the plain shape sc's tool specs use.

- local ``$ref``s (``#/$defs/X``, ``#/definitions/X``) are inlined, except recursive ones, whose
  definitions are kept under ``$defs``;
- ``title`` keys are dropped (pydantic adds one to every model and field; they only cost tokens);
- ``anyOf: [X, {"type": "null"}]`` becomes X with ``"nullable": true``, as sc writes Optional.
"""

from __future__ import annotations

from typing import Any

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
