"""LangChain tools as an sc :class:`~sc_core.tools.Toolset`.

``langchain:<target>`` where ``<target>`` is what sc imports for a Python toolset
(``pkg.module:attr``, ``pkg.module``, ``path/file.py:attr``). The target may be:

- a tool (``@tool`` function, ``StructuredTool``, any ``BaseTool`` instance), or a list of tools;
- a toolkit instance (``BaseToolkit``, or any object with ``get_tools()``), stateless;
- a class or a zero-argument factory that returns one of those: it is called once per toolset
  instance, so every episode (and every parallel worker) gets its own tools and state;
- a module: every LangChain tool object it holds at top level.

State hooks (optional, on the toolkit object): ``sc_reset(seed)`` puts the environment in the
fresh state ``seed`` determines, ``sc_state()`` returns a JSON-able snapshot of it for verifiers,
``sc_close()`` releases what it holds. A toolkit *instance* with state hooks is refused: it would
be shared by every episode; name its class or a factory instead.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sc_core.errors import ScError
from sc_core.schema import clean_schema
from sc_core.tools import Tool, ToolError, Toolset, ToolsetFactory, ToolsetSpec, import_target

STATE_HOOKS = ("sc_reset", "sc_state")
HOOKS = (*STATE_HOOKS, "sc_close")
TOOLS = "a LangChain tool, a list of tools, or a toolkit"
WHAT = f"{TOOLS}, or a zero-argument factory of one"


def langchain_toolset(spec: str = "") -> ToolsetFactory:
    """The factory for ``langchain:<spec>``: imports once, builds a fresh toolset per call."""
    if not spec:
        raise ScError("langchain: needs a target, e.g. langchain:my_package.tools:toolkit")
    try:
        import langchain_core.tools  # noqa: F401
    except ImportError as error:
        raise ScError(
            f"the langchain: scheme needs langchain-core ({error}); pip install langchain-core"
        ) from error
    label = f"langchain:{spec}"
    try:
        target = import_target(spec)
    except ScError as error:
        raise ScError(one_line(error)) from error
    make = _maker(target, label)
    _build(make(), label).close()  # fail now, with a clear error, not in the first episode
    return lambda: _build(make(), label)


def toolset_spec(source: Any, name: str = "app") -> ToolsetSpec:
    """A toolset over LangChain objects an application already holds, for the Python API's
    ``tools=``: anything a ``langchain:`` target may be. ``name`` labels it in tasks and errors."""
    label = f"langchain:{name}"
    make = _maker(source, label)
    _build(make(), label).close()
    return ToolsetSpec(label, lambda: _build(make(), label))


def one_line(error: BaseException) -> str:
    """An error's text on one line (pydantic and others write several)."""
    return " ".join(str(error).split())


def _base_tool() -> type:
    from langchain_core.tools import BaseTool

    return BaseTool


def _is_tool(value: Any) -> bool:
    return isinstance(value, _base_tool())


def _is_toolkit(value: Any) -> bool:
    from langchain_core.tools import BaseToolkit

    if isinstance(value, BaseToolkit):
        return True
    return not inspect.isclass(value) and callable(getattr(value, "get_tools", None))


def _tool_list(value: Any, label: str, where: str) -> list[Any]:
    """``value`` as a list of tools, or a clear error naming the first thing that is not one."""
    for number, item in enumerate(value, 1):
        if not _is_tool(item):
            raise ScError(f"{label}: item {number} of {where} is {type(item).__name__}, not a tool")
    return list(value)


def _maker(target: Any, label: str) -> Callable[[], Any]:
    """A zero-argument callable returning the tools' source for one toolset instance."""
    if isinstance(target, types.ModuleType):
        tools = [value for value in vars(target).values() if _is_tool(value)]
        if not tools:
            raise ScError(
                f"{label}: module {target.__name__} holds no LangChain tools; "
                "name a tool, list, toolkit or factory as module:attr"
            )
        return lambda: tools
    if _is_tool(target) or isinstance(target, (list, tuple)):
        return lambda: target
    if _is_toolkit(target):
        hooks = [hook for hook in STATE_HOOKS if callable(getattr(target, hook, None))]
        if hooks:
            raise ScError(
                f"{label}: {type(target).__name__} is a toolkit instance with state "
                f"({', '.join(hooks)}) that every episode would share; "
                "name its class or a zero-argument factory instead"
            )
        return lambda: target
    if callable(target):
        name = getattr(target, "__name__", type(target).__name__)

        def make() -> Any:
            try:
                return target()
            except Exception as error:
                raise ScError(
                    f"{label}: {name}() failed: {type(error).__name__}: {one_line(error)}"
                ) from error

        return make
    raise ScError(f"{label}: {type(target).__name__} is not {WHAT}")


def _build(source: Any, label: str) -> Toolset:
    """A toolset over the tools ``source`` offers, with its state hooks if it has them."""
    owner = None
    if _is_tool(source):
        tools = [source]
    elif isinstance(source, (list, tuple)):
        tools = _tool_list(source, label, "the list")
    elif _is_toolkit(source):
        owner = source
        try:
            listed = source.get_tools()
        except Exception as error:
            raise ScError(
                f"{label}: {type(source).__name__}.get_tools() failed: "
                f"{type(error).__name__}: {one_line(error)}"
            ) from error
        if not isinstance(listed, (list, tuple)):
            raise ScError(f"{label}: get_tools() returned {type(listed).__name__}, not a list")
        tools = _tool_list(listed, label, "get_tools()")
    else:
        raise ScError(f"{label}: the factory returned {type(source).__name__}, not {TOOLS}")
    if not tools:
        raise ScError(f"{label}: no tools")
    names = [tool.name for tool in tools]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ScError(f"{label}: several tools are named {', '.join(map(repr, twice))}")
    hooks: dict[str, Any] = {}
    for hook in HOOKS:
        value = getattr(owner, hook, None) if owner is not None else None
        if value is not None and not callable(value):
            raise ScError(f"{label}: {type(owner).__name__}.{hook} is not callable")
        hooks[hook] = value
    return Toolset(
        [to_tool(tool, label) for tool in tools],
        reset=hooks["sc_reset"],
        state=hooks["sc_state"],
        close=hooks["sc_close"],
    )


def tool_parameters(tool: Any) -> dict[str, Any]:
    """The JSON-schema parameters a model sees for a LangChain tool."""
    from langchain_core.tools import Tool as SimpleTool

    if tool.args_schema is None and isinstance(tool, SimpleTool):
        # the legacy one-string-input Tool: its _run(*args, **kwargs) has no useful signature
        properties = dict(tool.args)
        raw: Any = {"type": "object", "properties": properties, "required": list(properties)}
        from_model = True
    else:
        schema = tool.tool_call_schema
        from_model = not isinstance(schema, dict)
        raw = schema.model_json_schema() if from_model else schema
    parameters = clean_schema(raw)
    parameters.pop("description", None)  # the tool's own description says it already
    if from_model:
        # the model's validation ignores unknown arguments; tell the caller instead
        parameters.setdefault("additionalProperties", False)
    return parameters


def to_tool(tool: Any, label: str) -> Tool:
    """One LangChain tool as an sc :class:`Tool`, called through ``tool.invoke(arguments)``."""
    try:
        parameters = tool_parameters(tool)
    except Exception as error:
        raise ScError(
            f"{label}: tool {tool.name!r}: cannot read its argument schema: "
            f"{type(error).__name__}: {one_line(error)}"
        ) from error

    def call(**arguments: Any) -> Any:
        return invoke(tool, arguments)

    call.__name__ = tool.name
    return Tool(tool.name, (tool.description or "").strip(), parameters, call)


def invoke(tool: Any, arguments: dict[str, Any]) -> Any:
    """Run the tool; whatever goes wrong becomes a :class:`ToolError` whose message says why."""
    from langchain_core.tools import ToolException
    from pydantic import ValidationError

    try:
        if getattr(tool, "func", "") is None and getattr(tool, "coroutine", None) is not None:
            result = _run_coroutine(tool.ainvoke(arguments))  # an async-only tool
        else:
            result = tool.invoke(arguments)
    except ToolError:
        raise
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, problem['loc'])) or 'arguments'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ToolError(f"{tool.name}: invalid arguments: {problems}") from error
    except ToolException as error:
        raise ToolError(f"{tool.name}: {error}") from error
    except Exception as error:
        raise ToolError(f"{tool.name} failed: {type(error).__name__}: {error}") from error
    return plain(result)


def _run_coroutine(coroutine: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as executor:  # called from inside a loop: run it on another
        return executor.submit(asyncio.run, coroutine).result()


def plain(value: Any) -> Any:
    """A tool's output as plain data: pydantic models dumped, messages reduced to content."""
    from langchain_core.messages import BaseMessage
    from pydantic import BaseModel

    if isinstance(value, BaseMessage):
        return plain(value.content)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
