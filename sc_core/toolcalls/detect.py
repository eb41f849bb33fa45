"""Choosing a format from a tokenizer's chat template, and every format by name."""

from __future__ import annotations

import re
from typing import Any

from .base import ToolCallFormat
from .fallback import FallbackFormat
from .hermes import _OPEN, HermesFormat
from .llama3_json import _PYTHON_TAG, Llama3JsonFormat
from .pythonic import PythonicFormat

_MAX_TEMPLATE_CHARS = 500_000
_JINJA_BLOCK = re.compile(r"\{[{%](.*?)[%}]\}", re.DOTALL)
_TOOLS_WORD = re.compile(r"\btools\b")
_JINJA_STRING = re.compile(r"'[^']*'|\"[^\"]*\"")

FORMATS: dict[str, type[ToolCallFormat]] = {
    cls.name: cls for cls in (HermesFormat, Llama3JsonFormat, PythonicFormat, FallbackFormat)
}
"""Every format by name: ``FORMATS["hermes"](native=False)`` and so on."""


def _template_text(template: Any) -> str:
    """A tokenizer's chat template as one string (dict and list forms joined)."""
    if isinstance(template, str):
        return template[:_MAX_TEMPLATE_CHARS]
    if isinstance(template, dict):
        return "\n".join(_template_text(value) for value in template.values())
    if isinstance(template, (list, tuple)):  # [{"name": ..., "template": ...}, ...]
        return "\n".join(
            _template_text(item.get("template") if isinstance(item, dict) else item)
            for item in template
        )
    return ""


def _uses_tools(template: str) -> bool:
    """The template refers to a ``tools`` variable (in a Jinja block, outside string literals)."""
    return any(
        _TOOLS_WORD.search(_JINJA_STRING.sub("", block.group(1)))
        for block in _JINJA_BLOCK.finditer(template)
    )


def detect_format(tokenizer: Any) -> ToolCallFormat:
    """The format for a tokenizer, read from its ``chat_template`` (a template string is also
    accepted): ``<tool_call>`` -> hermes; a pythonic call list (``[func_name1(`` / "python
    list") -> pythonic; ``<|python_tag|>``, ``Environment: ipython`` or ``"parameters"`` JSON
    calls -> llama3_json (all native); another template that uses ``tools`` -> hermes, native
    (the most common syntax); no template, or one without tool support -> fallback."""
    template = (
        tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "chat_template", None)
    )
    text = _template_text(template)
    if not text.strip():
        return FallbackFormat()
    if _OPEN in text:
        return HermesFormat(native=True)
    if "[func_name1(" in text or "python list" in text:
        return PythonicFormat(native=True)
    if _PYTHON_TAG in text or "Environment: ipython" in text or '"parameters"' in text:
        return Llama3JsonFormat(native=True)
    if _uses_tools(text):
        return HermesFormat(native=True)
    return FallbackFormat()
