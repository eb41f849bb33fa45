"""The ``fallback`` format, for chat templates without tool support (such as SmolLM2's).

Not native: its system prompt shows each tool in full (:func:`~sc_core.toolcalls.prompts.describe`)
and teaches the hermes syntax with one example.
Its parser is hermes's, untagged calls included (:mod:`sc_core.toolcalls.untagged`), with one
difference for tiny models, which forget the tags they were merely taught: when ``tool_names``
is None, a bare JSON call of any name is a call too (outside an ``<answer>`` tag).
"""

from __future__ import annotations

from .hermes import HermesFormat


class FallbackFormat(HermesFormat):
    """For chat templates without tool support: the hermes syntax, taught in the system prompt,
    plus bare JSON calls of any name when the tools are not known."""

    name = "fallback"
    native = False
    untagged_calls_of_any_name = True
