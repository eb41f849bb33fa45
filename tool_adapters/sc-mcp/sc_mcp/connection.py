"""One MCP client session, driven from synchronous code.

The SDK is async; sc's :class:`~sc_core.tools.Toolset` is not. Each :class:`Connection` runs
its own event loop on a daemon thread, opens one ``mcp.Client`` (a ``ClientSession`` over the
stdio or streamable-HTTP transport) on it, and keeps it open until :meth:`Connection.close`.
Calls from any thread are submitted with ``asyncio.run_coroutine_threadsafe`` and waited for
with a timeout, so nothing here can hang: start-up, every call and shutdown are bounded.

A connection that fails mid-episode (the server crashed, closed the pipe or stopped answering)
is marked ``broken``; every later call fails at once with the same reason.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import logging
import math
import os
import shlex
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from sc_core.errors import ScError
from sc_core.tools import ToolError

# The SDK logs transport noise (unparseable lines, teardown) with logger.exception; with no
# handler configured Python's last-resort handler would print those tracebacks on stderr.
logging.getLogger("mcp").addHandler(logging.NullHandler())

GRACE_S = 5.0
"""Extra seconds the calling thread waits beyond the async timeout before giving up itself."""
CLOSE_WAIT_S = 10.0
"""Longest a close waits for the server to shut down (the SDK's stdio shutdown is bounded)."""
MAX_TOOL_PAGES = 100

_live: weakref.WeakSet[Connection] = weakref.WeakSet()

try:
    _GROUP: type[BaseException] = BaseExceptionGroup
except NameError:  # Python 3.10: anyio brings the backport
    from exceptiongroup import BaseExceptionGroup as _GROUP


@dataclass(frozen=True)
class Target:
    """Where the server is: a command to start (stdio) or a streamable-HTTP URL."""

    argv: tuple[str, ...] = ()
    url: str = ""

    def __str__(self) -> str:
        return shlex.join(self.argv) if self.argv else self.url


class StderrTail:
    """The last lines a stdio server wrote on stderr, for error messages (bounded memory)."""

    def __init__(self, lines: int = 20):
        read_fd, write_fd = os.pipe()
        self.writer = os.fdopen(write_fd, "w", encoding="utf-8", errors="replace")
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True)
        thread.name = "sc-mcp stderr"
        thread.start()
        self._thread = thread

    def _pump(self, read_fd: int) -> None:
        with open(read_fd, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.strip():
                    self._lines.append(line.rstrip())

    def close_writer(self) -> None:
        """Drop our copy of the pipe's write end: the server (and its children) keep theirs."""
        if not self.writer.closed:
            self.writer.close()

    def tail(self, count: int = 3, wait_s: float = 0.2) -> str:
        """The last ``count`` lines, joined on one line; waits briefly for a dying server's."""
        self._thread.join(wait_s)
        return " | ".join(list(self._lines)[-count:])


def leaf(error: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(error, _GROUP) and error.exceptions:
        error = error.exceptions[0]
    return error


def describe(error: BaseException) -> str:
    error = leaf(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Connection:
    """An open MCP session on its own event-loop thread; ``tools`` is the server's tool list."""

    def __init__(self, target: Target, label: str, start_timeout: float, call_timeout: float):
        self.target, self.label = target, label
        self.start_timeout, self.call_timeout = start_timeout, call_timeout
        self.broken: str | None = None
        self.tools: list[Any] = []
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self._stderr = StderrTail() if target.argv else None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.name = f"sc-mcp {label}"[:60]
        _live.add(self)
        self._thread.start()
        try:
            self.tools = self._ready.result(timeout=start_timeout + GRACE_S)
        except concurrent.futures.TimeoutError:
            self.close()
            raise ScError(f"{label}: {self._no_answer(start_timeout)}") from None
        except Exception as error:
            self.close()
            raise ScError(f"{label}: {self._start_failure(error)}") from None

    # -- the loop thread ----------------------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            asyncio.run(self._main())
        except BaseException as caught:  # noqa: BLE001 - whatever ends the loop ends the session
            error = caught
        finally:
            if self._stderr is not None:
                self._stderr.close_writer()
            if not self._ready.done():
                self._ready.set_exception(error or ConnectionError("the session ended"))
            if self.broken is None:
                self.broken = (
                    f"the connection to the MCP server was lost (crashed?): {describe(error)}"
                    if error is not None
                    else "the MCP session is closed"
                )

    def _transport(self) -> Any:
        if self.target.argv:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            command, *args = self.target.argv
            # the server gets the user's environment (its API keys, PATH, virtualenv), as a
            # command run from the shell would; the SDK's default would pass only a few names
            params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
            return stdio_client(params, errlog=self._stderr.writer)
        from mcp.client.streamable_http import streamable_http_client

        return streamable_http_client(self.target.url)

    async def _main(self) -> None:
        import anyio
        from mcp import Client

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        with anyio.CancelScope() as scope:
            scope.deadline = anyio.current_time() + self.start_timeout
            client = Client(self._transport(), read_timeout_seconds=self.call_timeout, cache=None)
            async with client:
                tools = await self._list_tools(client)
                scope.deadline = math.inf
                self._client = client
                self._ready.set_result(tools)
                await self._stop.wait()
        if scope.cancelled_caught and not self._ready.done():
            self._ready.set_exception(TimeoutError("start-up timed out"))

    @staticmethod
    async def _list_tools(client: Any) -> list[Any]:
        tools: list[Any] = []
        cursor = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _call(self, name: str, arguments: dict[str, Any], timeout: float) -> Any:
        import anyio

        with anyio.fail_after(timeout):
            return await self._client.call_tool(name, arguments)

    # -- called from any thread ---------------------------------------------------------------

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call one tool; its raw ``CallToolResult``. A failed session: :class:`ToolError`."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        if self.broken is not None or self._loop is None:
            raise ToolError(f"{name}: {self.broken or 'the MCP session is not open'}")
        timeout = self.call_timeout
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._call(name, arguments, timeout), self._loop
            )
        except RuntimeError as error:  # the loop has already stopped
            self._break(f"the MCP session is gone ({error})")
            raise ToolError(f"{name}: {self.broken}") from error
        try:
            return future.result(timeout=timeout + GRACE_S)
        except (concurrent.futures.TimeoutError, TimeoutError) as error:
            future.cancel()
            self._break(f"the MCP server did not answer within {timeout:g} s")
            raise ToolError(f"{name}: {self.broken}") from error
        except concurrent.futures.CancelledError as error:
            self._break("the MCP session ended during the call")
            raise ToolError(f"{name}: {self.broken}") from error
        except MCPError as error:
            if error.code == CONNECTION_CLOSED:
                self._break(self._closed_reason())
                raise ToolError(f"{name}: {self.broken}") from error
            if error.code == REQUEST_TIMEOUT:
                self._break(f"the MCP server did not answer within {timeout:g} s")
                raise ToolError(f"{name}: {self.broken}") from error
            raise ToolError(f"{name}: {describe(error)}") from error
        except Exception as error:
            raise ToolError(f"{name}: {describe(error)}") from error

    def close(self, wait: bool = True) -> None:
        """End the session and stop the server; bounded, idempotent, safe from any thread."""
        if self.broken is None:
            self.broken = "the MCP session is closed"
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                loop.call_soon_threadsafe(stop.set)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_WAIT_S)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- messages -------------------------------------------------------------------------------

    def _break(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason

    def _stderr_note(self) -> str:
        tail = self._stderr.tail() if self._stderr is not None else ""
        return f"; its stderr ends: {tail}" if tail else ""

    def _closed_reason(self) -> str:
        what = "exited" if self.target.argv else "closed the connection"
        return f"the MCP server {what} (crashed?){self._stderr_note()}"

    def _no_answer(self, seconds: float) -> str:
        return f"the MCP server did not answer within {seconds:g} s{self._stderr_note()}"

    def _start_failure(self, error: BaseException) -> str:
        from mcp import MCPError

        error = leaf(error)
        if isinstance(error, TimeoutError):
            return self._no_answer(self.start_timeout)
        if self.target.argv and isinstance(error, OSError):
            return f"cannot start {self.target.argv[0]!r}: {describe(error)}"
        if isinstance(error, (MCPError, EOFError, ConnectionError)):
            if self.target.argv:
                return f"the MCP server exited during start-up{self._stderr_note()}"
            return f"the MCP server closed the connection during start-up: {describe(error)}"
        if not self.target.argv:
            return f"cannot connect to the MCP server: {describe(error)}"
        return f"cannot start the MCP server: {describe(error)}{self._stderr_note()}"


@atexit.register
def _close_all() -> None:
    """At exit, shut every open session down together, within one bounded wait."""
    connections = list(_live)
    for connection in connections:
        connection.close(wait=False)
    deadline = time.monotonic() + CLOSE_WAIT_S
    for connection in connections:
        connection._thread.join(max(0.0, deadline - time.monotonic()))
