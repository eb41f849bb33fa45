"""Turn text before and around parsing: reasoning and end markers dropped, code fences removed,
short excerpts for error messages.

Before any format parses a turn, reasoning is dropped (everything up to the last ``</think>``,
and an unclosed ``<think>`` with all after it), and end-of-turn markers left at the end
(``<|im_end|>``, ``<|eot_id|>``, ...) are removed.
"""

from __future__ import annotations

import re

_SNIPPET_CHARS = 60

_THINK_START, _THINK_END = "<think>", "</think>"
_END_MARKERS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
)

_FENCE_OPEN = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?")


def _snippet(text: str, limit: int = _SNIPPET_CHARS) -> str:
    """A short one-line excerpt of ``text`` for error messages."""
    flat = " ".join(text[: limit * 4].split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _clean(text: str) -> str:
    """The turn without reasoning (up to the last ``</think>``, or from an unclosed ``<think>``)
    and without trailing end markers."""
    cut = text.rfind(_THINK_END)
    if cut >= 0:
        text = text[cut + len(_THINK_END) :]
    unfinished = text.find(_THINK_START)
    if unfinished >= 0:  # reasoning cut off before its end: none of it counts
        text = text[:unfinished]
    text = text.strip()
    trimmed = True
    while trimmed:
        trimmed = False
        for marker in _END_MARKERS:
            if text.endswith(marker):
                text, trimmed = text[: -len(marker)].rstrip(), True
    return text


def _strip_fences(text: str) -> str:
    """``text`` stripped, without a Markdown code fence around it."""
    text = text.strip()
    if text.startswith("```"):
        text = text[_FENCE_OPEN.match(text).end() :].rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text.strip()
