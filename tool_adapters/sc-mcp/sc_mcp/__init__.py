"""sc-mcp: the tools of an MCP server as an sc toolset.

Registers the toolset scheme ``mcp:``: ``sc tools "mcp:stdio:python server.py"`` or
``sc tools mcp:http://127.0.0.1:8000/mcp``. The MCP SDK is imported only when an ``mcp:`` spec
is loaded.
"""

from sc_core import hookimpl
from sc_core.tools import ToolsetFactory


def mcp_toolset(spec: str = "") -> ToolsetFactory:
    """The ``mcp:`` scheme: see :mod:`sc_mcp.adapter`."""
    from .adapter import mcp_toolset as load

    return load(spec)


@hookimpl
def register_toolsets(register):
    register("mcp:", mcp_toolset)
