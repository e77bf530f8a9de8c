"""``FlowmancerPluginManager``: built-ins, ``-p name`` / ``-p no:name`` and the ``flowmancer`` entry points.

A fresh manager per run: nothing here is a module-level singleton.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Iterable, Optional

import pluggy

from . import hookspec
from .errors import UsageError

#: Built-in plugins, loaded in this order; each is a module ``flowmancer.<name>``.
BUILTINS = (
    "main",
    "runner",
    "spawn",
    "select",
    "concurrency",
    "retry",
    "components",
    "filelogger",
    "checkpoint",
    "terminal",
)
#: Built-ins the runner cannot live without: ``-p no:`` refuses them.
ESSENTIAL = frozenset({"main", "runner", "spawn"})


def preparse_plugin_args(args: Iterable[str]) -> list[str]:
    """Values of ``-p`` in ``args`` (``-p x``, ``-px``), read before the real parser exists."""
    out: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--":
            break
        if a == "-p":
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt)
        elif a.startswith("-p") and not a.startswith("--"):
            out.append(a[2:].lstrip("="))
    return out


class FlowmancerPluginManager(pluggy.PluginManager):
    def __init__(self) -> None:
        super().__init__("flowmancer")
        self.add_hookspecs(hookspec)
        self.origins: dict[str, str] = {}

    def _register_module(self, module: ModuleType | Any, name: str, origin: str) -> None:
        if self.is_blocked(name) or self.has_plugin(name):
            return
        self.register(module, name)
        self.origins[name] = origin

    def consider_preparse(self, plugin_args: Iterable[str]) -> list[str]:
        """Apply ``no:`` blocks now; return the names to load once built-ins are in."""
        to_load = []
        for arg in plugin_args:
            if arg.startswith("no:"):
                name = arg[3:]
                if name in ESSENTIAL:
                    raise UsageError(f"-p no:{name}: the '{name}' plugin is essential and cannot be disabled")
                self.set_blocked(name)
                if name in BUILTINS:
                    self.set_blocked(f"flowmancer.{name}")
            else:
                to_load.append(arg)
        return to_load

    def load_builtins(self) -> None:
        for name in BUILTINS:
            if self.is_blocked(name):
                continue
            self._register_module(importlib.import_module(f"flowmancer.{name}"), name, "builtin")

    def _entry_points(self) -> list[Any]:
        return list(entry_points(group="flowmancer"))

    def load_entry_points(self, only: Optional[str] = None) -> bool:
        found = False
        for ep in self._entry_points():
            if only is not None and ep.name != only:
                continue
            found = True
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            origin = f"entry point of {dist.name} {dist.version}" if dist else "entry point"
            self._register_module(ep.load(), ep.name, origin)
        return found

    def import_plugin(self, name: str) -> None:
        """``-p name``: an entry point of that name, else an importable module."""
        if self.is_blocked(name) or self.has_plugin(name):
            return
        if self.load_entry_points(only=name):
            return
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                raise UsageError(
                    f"-p {name}: no plugin or importable module of that name "
                    "(check the spelling, install the package, or put the module in the app root)"
                ) from None
            raise
        self._register_module(module, name, f"-p {name} ({getattr(module, '__file__', '?')})")

    def load_env_plugins(self) -> list[str]:
        return [p.strip() for p in os.environ.get("FLOWMANCER_PLUGINS", "").split(",") if p.strip()]
