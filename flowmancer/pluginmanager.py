"""``FlowmancerPluginManager``: built-ins, ``-p name`` / ``-p no:name`` and the ``flowmancer`` entry points.

A fresh manager per run: nothing here is a module-level singleton.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
from importlib.metadata import distributions
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

import pluggy

from . import hookspec
from .errors import JobDefinitionError, Problem, UsageError, closest

CONF_NAME = "flowmancerconf.py"

#: Built-in plugins, loaded in this order: plugin name -> module.
BUILTINS: dict[str, str] = {
    "main": "flowmancer.main",
    "scheduler": "flowmancer.scheduler",
    "localexec": "flowmancer.localexec",
    "selection": "flowmancer.selection",
    "concurrency": "flowmancer.concurrency",
    "pools": "flowmancer.pools",
    "priority": "flowmancer.priority",
    "command": "flowmancer.command",
    "matrix": "flowmancer.matrix",
    "retry": "flowmancer.retry",
    "timeout": "flowmancer.timeout",
    "failfast": "flowmancer.failfast",
    "durations": "flowmancer.durations",
    "components": "flowmancer.components",
    "filelogger": "flowmancer.loggers.default",
    "checkpoint": "flowmancer.checkpointer.plugin",
    "plan": "flowmancer.plan",
    "incremental": "flowmancer.incremental.plugin",
    "schema": "flowmancer.schema",
    "watch": "flowmancer.watch",
    "helpconfig": "flowmancer.helpconfig",
    "completion": "flowmancer.completion",
    "docs": "flowmancer.docs",
    "terminal": "flowmancer.terminal",
    "ui": "flowmancer.ui.plugin",
}
#: Former names of built-ins, still accepted by ``-p no:NAME``.
ALIASES = {"runner": "scheduler", "spawn": "localexec", "select": "selection"}
#: Built-ins the runner cannot live without: ``-p no:`` refuses them.
ESSENTIAL = frozenset({"main", "scheduler", "localexec"})


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
        #: plugin name -> where it came from (``str()`` of each: ``--plugins``, ``--trace-config``)
        self.origins: dict[str, object] = {}

    def _register_module(self, module: ModuleType | Any, name: str, origin: object) -> None:
        if self.is_blocked(name) or self.has_plugin(name):
            return
        self.register(module, name)
        self.origins[name] = origin

    def consider_preparse(self, plugin_args: Iterable[str]) -> list[str]:
        """Apply ``no:`` blocks now; return the names to load once built-ins are in."""
        to_load = []
        for arg in plugin_args:
            if arg.startswith("no:"):
                given = arg[3:]
                name = ALIASES.get(given, given)
                if name in ESSENTIAL:
                    raise UsageError(f"-p no:{given}: the '{given}' plugin is essential and cannot be disabled")
                self.set_blocked(name)
                if name in BUILTINS:
                    self.set_blocked(BUILTINS[name])
            else:
                to_load.append(arg)
        return to_load

    def load_builtins(self) -> None:
        for name, module in BUILTINS.items():
            if self.is_blocked(name):
                continue
            self._register_module(importlib.import_module(module), name, "builtin")

    def _entry_points(self) -> list[Any]:
        """The ``flowmancer`` group's entry points, one distribution per name (the first on ``sys.path``), as
        ``entry_points(group=...)`` finds them; but only a distribution whose ``entry_points.txt`` names the
        group is parsed (and its name read only when two of them might be one): parsing them all (150 in a
        common environment) cost 5-7 ms of every run's start."""
        dists = [d for d in distributions() if "[flowmancer]" in (d.read_text("entry_points.txt") or "")]
        found: list[Any] = []
        names: set[str] = set()
        for dist in dists:
            if len(dists) > 1:
                name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()  # PEP 503
                if name in names:
                    continue
                names.add(name)
            found.extend(dist.entry_points.select(group="flowmancer"))
        return found

    def load_entry_points(self, only: Optional[str] = None) -> bool:
        found = False
        for ep in self._entry_points():
            if only is not None and ep.name != only:
                continue
            found = True
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            self._register_module(ep.load(), ep.name, _EntryPointOrigin(ep))
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

    # -- flowmancerconf.py ----------------------------------------------------------------------------

    def load_conftests(self, rootdir: Path, jobdir: Optional[Path]) -> None:
        """Load ``flowmancerconf.py`` from the app root down to the job file's folder, outermost first."""
        for folder in conf_dirs(rootdir, jobdir):
            path = folder / CONF_NAME
            if path.is_file() and not self.has_plugin(str(path)):
                self._register_module(_import_conf(path), str(path), f"{CONF_NAME} ({path})")

    # -- validation -----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Like ``check_pending()``, with messages that name the file, the hook and the likely fix."""
        problems = []
        for name, plugin in self.list_name_plugin():
            if plugin is None or self.origins.get(name) == "builtin":
                continue
            problems += hook_problems(plugin, name)
        if problems:
            raise PluginError(problems)
        self.check_pending()


def hook_problems(plugin: Any, name: str) -> list[Problem]:
    """What is wrong with the ``flowmancer_*`` attributes of ``plugin`` (a module or an object): a name that
    is no hook, or a hook function not marked with ``@hookimpl`` (pluggy would ignore it silently)."""
    known = set(hookspec.all_hook_names())
    where = _plugin_file(plugin) or name
    problems = []
    for attr in dir(plugin):
        if not attr.startswith("flowmancer_"):
            continue
        fn = getattr(plugin, attr, None)
        if not callable(fn):
            continue
        if attr not in known:
            close = closest(attr, sorted(known))
            hint = f"did you mean '{close}'?" if close else "see flowmancer/hookspec.py for the hooks"
            problems.append(Problem(f"unknown hook '{attr}' in plugin {name}", _loc(where, fn), hint=hint))
        elif not hasattr(fn, "flowmancer_impl"):
            problems.append(
                Problem(
                    f"'{attr}' in plugin {name} is not marked as a hook implementation",
                    _loc(where, fn),
                    hint="decorate it with @flowmancer.hookimpl",
                )
            )
    return problems


class _EntryPointOrigin:
    """ "entry point of <distribution> <version>", read from the distribution's metadata only when shown:
    parsing it costs every run ~2 ms otherwise."""

    __slots__ = ("ep",)

    def __init__(self, ep: Any) -> None:
        self.ep = ep

    def __str__(self) -> str:
        dist = getattr(self.ep, "dist", None)
        return f"entry point of {dist.name} {dist.version}" if dist else "entry point"


class PluginError(JobDefinitionError):
    """A plugin cannot be used as written."""

    def render(self) -> str:
        return "plugin error" + super().render().split(":", 1)[1].join(["s:" if len(self.problems) > 1 else ":", ""])


def conf_dirs(rootdir: Path, jobdir: Optional[Path]) -> list[Path]:
    if jobdir is None:
        return [rootdir]
    try:
        rel = jobdir.resolve().relative_to(rootdir.resolve())
    except ValueError:
        return [rootdir, jobdir]
    out = [rootdir]
    for part in rel.parts:
        out.append(out[-1] / part)
    return out


def _import_conf(path: Path) -> ModuleType:
    from .collect import import_by_location

    module, problems = import_by_location(path, f"flowmancerconf_{abs(hash(str(path)))}", CONF_NAME)
    if problems:
        raise JobDefinitionError(problems)
    assert module is not None
    return module


def _plugin_file(plugin: Any) -> Optional[str]:
    f = getattr(plugin, "__file__", None)
    if f:
        return str(f)
    try:
        return inspect.getsourcefile(type(plugin))
    except TypeError:
        return None


def _loc(file: str, fn: Any) -> Any:
    from .errors import Location

    try:
        return Location(file, inspect.getsourcelines(fn)[1])
    except (OSError, TypeError):
        return Location(file, 1)
