"""Loading plugins: the built-ins in DEFAULT_PLUGINS, then every entry point in the group ``sc``.

``SC_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) allow-lists external
plugins; ``SC_BLOCK_PLUGINS`` blocks some. Built-ins always load. A plugin that fails to import
is reported by name on stderr and skipped.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points, version
from typing import Any

import pluggy

from . import hookspecs

DEFAULT_PLUGINS = (
    "sc_core.default_plugins.calculator",
    "sc_core.default_plugins.shop",
    "sc_core.default_plugins.python_toolsets",
    "sc_core.default_plugins.sandboxes",
)

pm = pluggy.PluginManager("sc")
pm.add_hookspecs(hookspecs)

_versions: dict[str, str] = {}
failed: dict[str, str] = {}
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


def registry(hook: str) -> dict[str, Any]:
    """Call a registration hook and return what the plugins registered, by name."""
    load_plugins()
    items: dict[str, Any] = {}

    def register(name: str, obj: Any) -> None:
        if name in items:
            print(f"sc: {hook}: {name!r} is registered twice; keeping the first", file=sys.stderr)
            return
        items[name] = obj

    getattr(pm.hook, hook)(register=register)
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
