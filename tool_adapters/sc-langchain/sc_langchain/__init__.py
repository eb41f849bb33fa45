"""sc-langchain: LangChain tools, tool lists and toolkits as sc toolsets.

Registers the toolset scheme ``langchain:``: ``sc tools langchain:my_package.tools:toolkit``.
LangChain itself is imported only when a ``langchain:`` spec is loaded.
"""

from sc_core import hookimpl
from sc_core.tools import ToolsetFactory


def langchain_toolset(spec: str = "") -> ToolsetFactory:
    """The ``langchain:`` scheme: see :mod:`sc_langchain.adapter`."""
    from .adapter import langchain_toolset as load

    return load(spec)


@hookimpl
def register_toolsets(register):
    register("langchain:", langchain_toolset)
