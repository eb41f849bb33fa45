"""Tools, toolsets, and loading a toolset from a spec.

A toolset is a set of tools over an environment: ``reset(seed)`` puts the environment in a fresh,
reproducible state, ``state()`` returns a snapshot of it as JSON data (``{}`` when stateless).
Any Python object can be a toolset without depending on sc:

- a module of plain functions with type hints and Google-style docstrings (stateless);
- a class with ``reset(self, seed)`` and ``state(self)`` (and optionally ``close(self)``): every
  other public method is a tool;
- a module attribute named in the spec (``module:attr``): a class, a Toolset, a list of
  functions, or a zero-argument factory returning one of those.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import json
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ScError
from .sandbox_worker import json_problem  # there: the worker can import nothing from sc
from .schema import function_schema, value_error
from .task import CodeAsTask, TaskFormatError

STATE_METHODS = ("reset", "state", "close")
_TYPE_KEYWORDS = {"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"}
"""Keywords that tell a model what a parameter's values look like."""


class ToolError(Exception):
    """A tool refused a call or failed; the message is what the caller (model or program) sees."""


@dataclass
class Tool:
    """One callable tool: a name, a description and JSON-schema ``parameters``."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None) -> Tool:
        name = name or fn.__name__
        description, parameters = function_schema(fn, name)
        return cls(name, description, parameters, fn)

    def warnings(self) -> list[str]:
        """What a model will not be told about this tool: a missing description, a parameter
        without a JSON type (no type hint, or one sc cannot express) or without a description.
        ``sc tools`` prints them; the tool works either way."""
        found = [] if self.description else [f"tool {self.name!r} has no description"]
        for param, prop in self.parameters.get("properties", {}).items():
            where = f"tool {self.name!r} parameter {param!r}"
            if not (isinstance(prop, dict) and prop.keys() & _TYPE_KEYWORDS):
                found.append(f'{where} has no JSON type; models will see type "any"')
            if not (isinstance(prop, dict) and prop.get("description")):
                found.append(f"{where} has no description")
        return found

    def spec(self) -> dict[str, Any]:
        """The tool in the OpenAI function-calling format that chat templates expect."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _plain_json(value: Any, what: str, path: str, error: type[Exception]) -> Any:
    """A copy of ``value`` made of plain JSON values, sharing nothing with the toolset's own
    objects. Anything else raises ``error("<what> is not JSON data: <path> is ...")``: turning
    it into text would quietly change what verifiers and models see, and hide the author's bug.
    """
    problem = json_problem(value, path)
    if problem:
        raise error(f"{what} is not JSON data: {problem}")
    return json.loads(json.dumps(value))


class Toolset:
    """Tools plus the environment they act on."""

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        reset: Callable[[int], Any] | None = None,
        state: Callable[[], Any] | None = None,
        close: Callable[[], Any] | None = None,
        examples: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.tools = {tool.name: tool for tool in tools}
        if not self.tools:
            raise ScError("the toolset has no tools")
        self._reset, self._state, self._close = reset, state, close
        # example tasks the toolset ships (a class's EXAMPLES), for the seeded challenger
        try:
            self.examples = [CodeAsTask.from_dict(example) for example in examples]
        except TaskFormatError as error:
            raise ScError(f"the toolset's example tasks: {error}") from error

    def reset(self, seed: int) -> None:
        """Put the environment in the fresh state that ``seed`` determines."""
        if self._reset:
            self._reset(seed)

    def state(self) -> dict[str, Any]:
        """A snapshot of the environment as plain JSON data, for verifiers; ``{}`` when
        stateless. A state that is not JSON data is an :class:`ScError` naming the bad value."""
        if not self._state:
            return {}
        return _plain_json(self._state(), "state()", "state", ScError)

    def close(self) -> None:
        if self._close:
            self._close()

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Validate and run one tool call; any failure becomes a :class:`ToolError`."""
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}")
        if not isinstance(arguments, dict):
            raise ToolError(f"{name}: arguments must be an object")
        properties = tool.parameters.get("properties", {})
        missing = [arg for arg in tool.parameters.get("required", []) if arg not in arguments]
        if missing:
            raise ToolError(f"{name}: missing argument(s) {', '.join(missing)}")
        extra, defs = tool.parameters.get("additionalProperties"), tool.parameters.get("$defs")
        if extra is False:
            unknown = [arg for arg in arguments if arg not in properties]
            if unknown:
                raise ToolError(f"{name}: unknown argument(s) {', '.join(map(str, unknown))}")
        for arg, value in arguments.items():
            problem = value_error(value, properties.get(arg, extra), f"argument {arg!r}", defs)
            if problem:
                raise ToolError(f"{name}: {problem}")
        try:
            result = tool.fn(**arguments)
        except ToolError:
            raise
        except Exception as error:
            raise ToolError(f"{name} failed: {type(error).__name__}: {error}") from error
        return _plain_json(result, f"{name}'s result", "result", ToolError)

    @classmethod
    def from_object(cls, obj: Any, label: str) -> Toolset:
        """Build a toolset from a module, a class, an instance, a list of functions or a factory."""
        if isinstance(obj, Toolset):
            return obj
        if isinstance(obj, types.ModuleType):
            return cls.from_object(_module_target(obj), label)
        if isinstance(obj, (list, tuple)):
            return cls([Tool.from_function(fn) for fn in obj])
        if inspect.isclass(obj) or inspect.isfunction(obj):
            try:
                made = obj()
            except Exception as error:
                raise ScError(f"{label}: {obj.__name__}() failed: {error}") from error
            return cls.from_object(made, label)
        if all(callable(getattr(obj, name, None)) for name in ("reset", "state")):
            methods = [
                Tool.from_function(method)
                for name, method in inspect.getmembers(obj, inspect.ismethod)
                if not name.startswith("_") and name not in STATE_METHODS
            ]
            return cls(
                methods,
                reset=obj.reset,
                state=obj.state,
                examples=getattr(obj, "EXAMPLES", ()),
                close=getattr(obj, "close", None),
            )
        raise ScError(f"{label}: {type(obj).__name__} is not a toolset")


def _module_target(module: types.ModuleType) -> Any:
    """What a module offers as a toolset: a factory, its one stateful class, or its functions."""
    if callable(getattr(module, "make_toolset", None)):
        return module.make_toolset
    own = [
        value
        for value in vars(module).values()
        if getattr(value, "__module__", None) == module.__name__
    ]
    classes = [
        c
        for c in own
        if inspect.isclass(c) and all(callable(getattr(c, m, None)) for m in STATE_METHODS[:2])
    ]
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise ScError(
            f"{module.__name__} defines several toolset classes ({names}); name one as module:Class"
        )
    if classes:
        return classes[0]
    functions = [f for f in own if inspect.isfunction(f) and not f.__name__.startswith("_")]
    if not functions:
        raise ScError(f"{module.__name__} defines no public functions or toolset class")
    return functions


ToolsetFactory = Callable[[], Toolset]


@dataclass(frozen=True)
class ToolsetSpec:
    """A toolset spec string and the factory that builds fresh instances of it."""

    spec: str
    factory: ToolsetFactory

    def create(self) -> Toolset:
        return self.factory()

    def examples(self) -> list[CodeAsTask]:
        """The example tasks the toolset ships (its ``EXAMPLES``), read from a fresh instance
        that is closed again."""
        instance = self.create()
        try:
            return list(instance.examples)
        finally:
            instance.close()


def import_target(spec: str) -> Any:
    """Import ``module``, ``module:attr``, ``path/file.py`` or ``path/file.py:attr``."""
    target, _, attr = spec.partition(":") if not spec.endswith(".py") else (spec, "", "")
    if ":" in spec and not attr.isidentifier():
        target, attr = spec, ""
    try:
        if target.endswith(".py") or "/" in target:
            module = _import_path(Path(target))
        else:
            module = importlib.import_module(target)
    except ScError:
        raise
    except Exception as error:
        raise ScError(
            f"could not import toolset {spec!r}: {type(error).__name__}: {error}"
        ) from error
    if not attr:
        return module
    if not hasattr(module, attr):
        raise ScError(f"toolset {spec!r}: module {module.__name__} has no attribute {attr!r}")
    return getattr(module, attr)


def _import_path(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise ScError(f"toolset file not found: {path}")
    name = f"sc_toolset_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.pop(0)
    return module


def python_toolset(spec: str) -> ToolsetFactory:
    """The factory for a Python module, file or attribute spec: one import, fresh instances.

    A class or factory function is called for each instance; a given object is deep-copied, so
    that parallel workers never share one environment.
    """
    target = import_target(spec)
    if isinstance(target, types.ModuleType):
        target = _module_target(target)
    Toolset.from_object(copy.deepcopy(target), spec)  # fail here, with a clear error
    if inspect.isclass(target) or inspect.isfunction(target):
        return lambda: Toolset.from_object(target, spec)
    return lambda: Toolset.from_object(copy.deepcopy(target), spec)


def load_toolset(spec: str) -> ToolsetSpec:
    """Resolve a spec: a registered name, a registered ``scheme:``, or a Python module/file.

    A bare name (no dot, colon or path separator) that is neither registered nor an installed
    module is most likely a mistyped toolset name, so it gets the registered names and the
    closest one instead of Python's import error; a spec that names a module keeps its error.
    """
    from .plugins import available, registry

    toolsets = registry("register_toolsets")
    scheme, _, rest = spec.partition(":")
    if spec in toolsets:
        factory = toolsets[spec]
    elif rest and f"{scheme}:" in toolsets:
        factory = toolsets[f"{scheme}:"](rest)
    elif _is_bare_name(spec) and importlib.util.find_spec(spec) is None:
        raise ScError(f"no toolset or module named {spec!r}{available(spec, toolsets)}")
    else:
        factory = python_toolset(spec)
    return ToolsetSpec(spec, factory)


def _is_bare_name(spec: str) -> bool:
    return bool(spec) and not any(mark in spec for mark in "./\\:")
