"""sc-langchain: LangChain tools, tool lists and toolkits as sc toolsets, and LangChain chat
models on both sides of sc's model interface.

Registers the toolset scheme ``langchain:``: ``sc tools langchain:my_package.tools:toolkit``, and
the model backend ``langchain``: ``--model langchain:my_package.models:chat`` (or any
``init_chat_model`` spec, ``langchain:openai:gpt-4o-mini``). LangChain itself is imported only
when a ``langchain:`` spec is loaded or one of the classes below is used:

- :class:`SCChatModel` (``sc_langchain.chat_model``): an sc model as a LangChain chat model with
  tool calling;
- :class:`LangChainChatBackend` (``sc_langchain.backend``): a LangChain chat model as an sc
  model backend (challenger or executor).
"""

from typing import Any

from sc_core import hookimpl
from sc_core.tools import ToolsetFactory, ToolsetSpec

from .backend import LangChainChatBackend

__all__ = ["LangChainChatBackend", "SCChatModel", "langchain_toolset", "toolset_spec"]


def langchain_toolset(spec: str = "") -> ToolsetFactory:
    """The ``langchain:`` scheme: see :mod:`sc_langchain.adapter`."""
    from .adapter import langchain_toolset as load

    return load(spec)


def toolset_spec(source: Any, name: str = "app") -> ToolsetSpec:
    """LangChain tools an application holds, as a toolset for ``sc_core.api``'s ``tools=``."""
    from .adapter import toolset_spec as build

    return build(source, name)


def __getattr__(name: str) -> Any:
    if name == "SCChatModel":  # imports langchain-core: only when asked for
        from .chat_model import SCChatModel

        return SCChatModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_toolsets(register):
    register("langchain:", langchain_toolset)


@hookimpl
def register_models(register):
    register("langchain", LangChainChatBackend)
