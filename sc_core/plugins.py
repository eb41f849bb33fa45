"""Loading plugins: the built-ins in DEFAULT_PLUGINS, then every entry point in the group ``sc``.

``SC_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) allow-lists external
plugins; ``SC_BLOCK_PLUGINS`` blocks some. Built-ins always load. A plugin is named by its
entry point; a built-in by its module's last part (``calculator``), with ``builtin`` set.

pluggy accepts a module whose hook is misspelled, or lacks ``@hookimpl``, and never calls it:
the plugin would look installed and do nothing, and what it should have added would fail later
with a misleading error. So each external plugin is checked as it loads: every ``@hookimpl``
must name a hook in ``hookspecs`` (``register_toolset`` is reported with the closest real hook),
a plugin must implement at least one hook (the functions that look like hooks but lack
``@hookimpl`` are named), and a function named exactly like a hook must carry the marker. A
plugin that fails to import, fails this check or pluggy's own (a hookimpl's arguments against
its hookspec), or takes a name already loaded is reported in one line on stderr, recorded in
``failed`` (``sc plugins`` shows the reason) and skipped: a broken plugin must never break sc.
Built-ins are held to the same check by the test suite.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points, version
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import ScError

DEFAULT_PLUGINS = (
    "sc_core.default_plugins.calculator",
    "sc_core.default_plugins.shop",
    "sc_core.default_plugins.python_toolsets",
    "sc_core.default_plugins.sandboxes",
    "sc_core.default_plugins.smollm2",
    "sc_core.default_plugins.transformers_backend",
    "sc_core.default_plugins.openai_backend",
    "sc_core.default_plugins.challengers",
    "sc_core.default_plugins.reward_shapers",
)

pm = pluggy.PluginManager("sc")
pm.add_hookspecs(hookspecs)

HOOKS = tuple(sorted(name for name in vars(hookspecs) if pm.parse_hookspec_opts(hookspecs, name)))
"""Every hook sc calls."""
REGISTRATION_HOOKS = tuple(h for h in HOOKS if getattr(pm.hook, h).spec.argnames == ("register",))
"""The hooks whose implementations call ``register(name, obj)``."""

_versions: dict[str, str] = {}
_builtins: set[str] = set()
failed: dict[str, str] = {}
"""Plugin name to the reason it was skipped."""
_registries: dict[str, dict[str, Any]] = {}
_owners: dict[str, dict[str, str]] = {}
_loaded = False


def _names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_plugins() -> None:
    """Register the built-ins and the installed plugins, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    core_version = version("sc-core")
    for module_name in DEFAULT_PLUGINS:
        name = module_name.rpartition(".")[2]
        pm.register(importlib.import_module(module_name), name=name)
        _versions[name] = core_version
        _builtins.add(name)
    allowed, blocked = _names("SC_LOAD_PLUGINS"), _names("SC_BLOCK_PLUGINS") or set()
    for entry_point in entry_points(group="sc"):
        name = entry_point.name
        if name in blocked or (allowed is not None and name not in allowed):
            continue
        reason = _add(name, entry_point.load)
        if reason:
            failed[name] = reason
            print(f"sc: plugin {name!r} {reason}; skipped", file=sys.stderr)
            continue
        _versions[name] = entry_point.dist.version if entry_point.dist else "unknown"


def _add(name: str, load: Callable[[], ModuleType]) -> str | None:
    """Load and register plugin ``name``; return why it was not, or None."""
    if pm.has_plugin(name):
        return "has the name of a plugin already loaded"
    try:
        module = load()
    except Exception as error:  # a broken plugin must never break sc
        return f"failed to load ({_one_line(error)})"
    reason = hook_problem(module)
    if reason:
        return reason
    try:
        pm.register(module, name=name)  # pluggy checks each hookimpl's arguments
    except Exception as error:
        return f"failed to register ({_one_line(error)})"
    return None


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def hook_problem(module: ModuleType) -> str | None:
    """Why sc would never call ``module``'s hooks, or None: a ``@hookimpl`` named after no hook,
    or no ``@hookimpl`` at all (naming the functions that look like hooks but lack it)."""
    implemented = []
    for attr in dir(module):
        opts = pm.parse_hookimpl_opts(module, attr)
        if opts is not None:
            implemented.append(opts.get("specname") or attr)
    for hook in implemented:
        if hook not in HOOKS:
            return f"implements unknown hook {hook!r}{did_you_mean(hook, HOOKS)}"
    functions = [
        attr
        for attr, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__
    ]
    if implemented:  # a function named exactly like a hook, unmarked, is a forgotten marker
        unmarked = [attr for attr in functions if attr in HOOKS and attr not in implemented]
        if unmarked:
            return f"{unmarked[0]} is named like a hook but lacks @sc_core.hookimpl"
        return None
    lookalikes = [attr for attr in functions if difflib.get_close_matches(attr, HOOKS, n=1)]
    if not lookalikes:
        return "implements no hook (mark each hook function with @sc_core.hookimpl)"
    look = "looks like a hook but lacks" if len(lookalikes) == 1 else "look like hooks but lack"
    return f"implements no hook: {', '.join(lookalikes)} {look} @sc_core.hookimpl"


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` with the name closest to a mistyped one, or ``""``."""
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def available(name: str, names: Iterable[str]) -> str:
    """The tail of an unknown-name error: what is registered, and the closest to ``name``."""
    names = sorted(names)
    return f"; available: {', '.join(names) or 'none'}{did_you_mean(name, names)}"


def lookup(hook: str, kind: str, name: str, hint: str = "") -> Any:
    """What a plugin registered as ``name`` under ``hook``; an unknown name is a one-line
    error (``unknown {kind} 'x'{hint}; available: ... (did you mean ...?)``)."""
    items = registry(hook)
    if name not in items:
        raise ScError(f"unknown {kind} {name!r}{hint}{available(name, items)}")
    return items[name]


def call_each(hook: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
    """Call ``hook`` on every plugin in load order (built-ins first), one plugin at a time, with
    ``make_kwargs(plugin_name)``. A plugin whose hook raises is reported by name and skipped."""
    load_plugins()
    impls = [
        impl
        for impl in getattr(pm.hook, hook).get_hookimpls()  # registration order
        if not (impl.hookwrapper or getattr(impl, "wrapper", False))
    ]
    for impl in sorted(impls, key=lambda impl: (not impl.tryfirst, impl.trylast)):
        try:
            impl.function(**make_kwargs(impl.plugin_name))
        except Exception as error:  # a broken plugin must never break sc
            print(
                f"sc: plugin {impl.plugin_name!r} failed in {hook} "
                f"({type(error).__name__}: {error}); skipped",
                file=sys.stderr,
            )


def registry(hook: str) -> dict[str, Any]:
    """Call a registration hook and return what the plugins registered, by name.

    On a name clash the earlier plugin's registration stands (built-ins load first). Plugins
    are loaded once per process, so each hook is called once and its result kept.
    """
    if hook in _registries:
        return _registries[hook]
    items: dict[str, Any] = {}
    owners: dict[str, str] = {}

    def kwargs(plugin: str) -> dict[str, Any]:
        def register(name: str, obj: Any) -> None:
            if name in items:
                print(
                    f"sc: {hook}: {name!r} from plugin {plugin!r} is already registered by "
                    f"{owners[name]!r}; ignored",
                    file=sys.stderr,
                )
                return
            items[name], owners[name] = obj, plugin

        return {"register": register}

    call_each(hook, kwargs)
    _registries[hook], _owners[hook] = items, owners
    return items


def owners(hook: str) -> dict[str, str]:
    """Which plugin registered each name under the registration hook ``hook``."""
    registry(hook)
    return _owners[hook]


def plugin_info() -> list[dict[str, Any]]:
    """Every plugin with its version, the hooks it implements and the names it registered under
    each registration hook; skipped ones with the reason (``error``). Built-ins come first."""
    load_plugins()
    registered: dict[str, dict[str, list[str]]] = {}
    for hook in REGISTRATION_HOOKS:
        for item, owner in sorted(owners(hook).items()):
            registered.setdefault(owner, {}).setdefault(hook, []).append(item)
    rows = [
        {
            "name": name,
            "version": _versions.get(name, "unknown"),
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or []),
            "registered": registered.get(name, {}),
            "builtin": name in _builtins,
        }
        for name, plugin in pm.list_name_plugin()
    ]
    rows += [
        {
            "name": name,
            "version": None,
            "hooks": [],
            "registered": {},
            "builtin": False,
            "error": error,
        }
        for name, error in failed.items()
    ]
    return sorted(rows, key=lambda row: (not row["builtin"], row["name"]))
