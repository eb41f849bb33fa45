"""Loading plugins: the built-ins in DEFAULT_PLUGINS, then every entry point in the group ``sc``.

``SC_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) allow-lists external
plugins; ``SC_BLOCK_PLUGINS`` blocks some. Built-ins always load. A plugin that fails to import
is reported by name on stderr and skipped.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points, version
from typing import Any

import pluggy

from . import hookspecs

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

_versions: dict[str, str] = {}
failed: dict[str, str] = {}
_registries: dict[str, dict[str, Any]] = {}
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
        pm.register(importlib.import_module(module_name), name=module_name)
        _versions[module_name] = core_version
    allowed, blocked = _names("SC_LOAD_PLUGINS"), _names("SC_BLOCK_PLUGINS") or set()
    for entry_point in entry_points(group="sc"):
        name = entry_point.name
        if name in blocked or (allowed is not None and name not in allowed):
            continue
        if pm.has_plugin(name):
            continue
        try:
            module = entry_point.load()
            pm.register(module, name=name)
        except Exception as error:  # a broken plugin must never break sc
            failed[name] = f"{type(error).__name__}: {error}"
            print(f"sc: plugin {name!r} failed to load ({failed[name]}); skipped", file=sys.stderr)
            continue
        _versions[name] = entry_point.dist.version if entry_point.dist else "unknown"


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
    _registries[hook] = items
    return items


def plugin_info() -> list[dict[str, Any]]:
    """Every plugin with its version and the hooks it implements; failed ones with the error."""
    load_plugins()
    rows = [
        {
            "name": pm.get_name(plugin),
            "version": _versions.get(pm.get_name(plugin), "unknown"),
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or []),
            "builtin": pm.get_name(plugin) in DEFAULT_PLUGINS,
        }
        for plugin in pm.get_plugins()
    ]
    rows += [
        {"name": name, "version": None, "hooks": [], "builtin": False, "error": error}
        for name, error in failed.items()
    ]
    return sorted(rows, key=lambda row: (not row["builtin"], row["name"]))
