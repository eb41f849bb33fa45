"""An MCP server's tools as an sc :class:`~sc_core.tools.Toolset`.

Spec forms (after ``mcp:``):

- ``stdio:<command ...>``: start the command (split as a shell would, without a shell) and speak
  MCP over its stdin/stdout; every toolset instance starts its own server process;
- ``http://host:port/path`` or ``https://...``: connect to a running streamable-HTTP server;
  every toolset instance opens its own session.

State convention: a server may expose a tool ``sc_reset`` taking ``{"seed": <int>}`` (called by
``reset(seed)`` before each episode) and a tool ``sc_state`` taking no arguments and returning a
JSON object (called by ``state()`` for verifiers). Both are hidden from the tool list.

Timeouts (seconds) come from ``SC_MCP_START_TIMEOUT`` (default 30) and ``SC_MCP_CALL_TIMEOUT``
(default 30).
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import weakref
from typing import Any

from sc_core.errors import ScError
from sc_core.schema import clean_schema
from sc_core.tools import Tool, ToolError, Toolset, ToolsetFactory

from .connection import Connection, Target

RESET_TOOL = "sc_reset"
STATE_TOOL = "sc_state"
HIDDEN = (RESET_TOOL, STATE_TOOL)
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_CALL_TIMEOUT = 30.0
USAGE = "use mcp:stdio:<command ...> or mcp:http://host:port/path"


def parse_target(spec: str) -> Target:
    """The server a spec names; a one-line :class:`ScError` for anything else."""
    kind, _, rest = spec.partition(":")
    if kind == "stdio":
        try:
            argv = shlex.split(rest)
        except ValueError as error:
            raise ScError(f"mcp:{spec}: cannot split the command: {error}") from error
        if not argv:
            raise ScError(f"mcp:{spec}: no command given; {USAGE}")
        return Target(argv=tuple(argv))
    if kind in ("http", "https"):
        if not rest.startswith("//") or len(rest) <= 2:
            raise ScError(f"mcp:{spec}: not a URL; {USAGE}")
        return Target(url=spec)
    raise ScError(f"mcp:{spec}: unknown form; {USAGE}")


def _seconds(variable: str, default: float) -> float:
    value = os.environ.get(variable)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ScError(f"{variable}={value!r} must be a positive number of seconds")
    return seconds


def mcp_toolset(
    spec: str = "",
    *,
    start_timeout: float | None = None,
    call_timeout: float | None = None,
) -> ToolsetFactory:
    """The factory for ``mcp:<spec>``: connects once now (to fail early), then once per toolset.

    The connection made to check the spec serves the first toolset the factory builds.
    """
    if not spec:
        raise ScError(f"mcp: needs a server; {USAGE}")
    target = parse_target(spec)
    start = start_timeout or _seconds("SC_MCP_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    call = call_timeout or _seconds("SC_MCP_CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT)
    label = f"mcp:{spec}"

    def connect() -> Connection:
        return Connection(target, label, start, call)

    first = McpTools(connect)
    spare = [first]
    lock = threading.Lock()

    def factory() -> Toolset:
        with lock:
            tools = spare.pop() if spare else None
        return (tools or McpTools(connect)).toolset()

    return factory


def unwrap(value: Any, output_schema: dict[str, Any] | None) -> Any:
    """Structured content without the ``{"result": ...}`` wrapper MCP servers put on non-objects."""
    properties = (output_schema or {}).get("properties")
    if (
        isinstance(value, dict)
        and set(value) == {"result"}
        and isinstance(properties, dict)
        and set(properties) == {"result"}
    ):
        return value["result"]
    return value


def content_text(content: list[Any]) -> str | None:
    """The text of a result's content blocks, joined; a placeholder for non-text blocks."""
    parts = []
    for block in content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            kind = getattr(block, "mime_type", None) or getattr(block, "type", "non-text")
            parts.append(f"[{kind} content]")
    return "\n".join(parts) if parts else None


class McpTools:
    """One toolset instance's connection, restarted by ``reset`` after a crash."""

    def __init__(self, connect):
        self._connect = connect
        self.connection: Connection = connect()
        self._closed = False
        listed = {tool.name: tool for tool in self.connection.tools}
        self.has_reset, self.has_state = RESET_TOOL in listed, STATE_TOOL in listed
        self.output_schemas = {name: tool.output_schema for name, tool in listed.items()}
        self.listed = {name: tool for name, tool in listed.items() if name not in HIDDEN}
        if not self.listed:
            self.connection.close()
            raise ScError(f"{self.connection.label}: the server offers no tools")

    def toolset(self) -> Toolset:
        tools = [self._tool(listed) for listed in self.listed.values()]
        toolset = Toolset(tools, reset=self.reset, state=self.state, close=self.close)
        weakref.finalize(toolset, self._release)  # an unclosed toolset still stops its server
        return toolset

    def _tool(self, listed: Any) -> Tool:
        name = listed.name

        def call(**arguments: Any) -> Any:
            return self.call(name, arguments)

        description = (listed.description or getattr(listed, "title", None) or "").strip()
        return Tool(name, description, clean_schema(listed.input_schema), call)

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        result = self.connection.call(name, arguments)
        text = content_text(result.content)
        if result.is_error:
            raise ToolError(f"{name}: {text or 'the tool reported an error'}")
        if result.structured_content is not None:
            return unwrap(result.structured_content, self.output_schemas.get(name))
        return text

    def reset(self, seed: int) -> None:
        if self._closed:
            raise ToolError("the toolset is closed")
        if self.connection.broken is not None:
            self._reconnect()
        if self.has_reset:
            self.call(RESET_TOOL, {"seed": seed})

    def state(self) -> Any:
        if self.connection.broken is not None:
            raise ToolError(f"no state: {self.connection.broken}")
        if not self.has_state:
            return {}
        value = self.call(STATE_TOOL, {})
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as error:
                raise ToolError(f"{STATE_TOOL} must return JSON, got {value[:80]!r}") from error
        return value

    def _reconnect(self) -> None:
        old = self.connection
        old.close(wait=False)
        try:
            self.connection = self._connect()
        except ScError as error:
            raise ToolError(f"cannot restart the MCP session: {error}") from error

    def close(self) -> None:
        self._closed = True
        self.connection.close()

    def _release(self) -> None:
        self.connection.close(wait=False)
