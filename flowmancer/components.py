"""Built-in plugin ``components``: the YAML ``loggers:``, ``extensions:`` and ``checkpointer:`` blocks.

The original project's ``Logger``/``Extension``/``Checkpointer`` classes are adapted onto the hooks:
their parameters are validated with the rest of the job, and their coroutines run in order on one
background event loop (``AsyncBridge``), so a slow or failing one never stalls the scheduler. The
built-in ``FileLogger`` and ``FileCheckpointer`` are not driven from here: their own plugins
(``loggers/default.py``, ``checkpointer/plugin.py``) call them from the report hooks on the scheduler thread,
since handing each event to the loop thread cost more than writing it (the two threads passed the GIL back
and forth on every system call). With no other component, no loop starts.
"""

from __future__ import annotations

import inspect
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from pydantic import ValidationError

from .basecomponent import Component
from .checkpointer.checkpointer import Checkpointer
from .checkpointer.file import FileCheckpointer  # also registers the built-in class
from .config import Config
from .errors import Location, Problem, closest
from .extensions.extension import Extension
from .job import Job, TaskRun
from .jobdef import LoadedJobDef, problems_from_validation
from .loggers.file import FileLogger  # noqa: F401 - registers the built-in class
from .loggers.logger import Logger
from .markers import hookimpl
from .pluginmanager import hook_problems
from .registry import Registry, class_file
from .stash import StashKey
from .states import ExecutionState, LogLines, TaskResult

if TYPE_CHECKING:
    from .asyncbridge import AsyncBridge

STASH_KEY = StashKey["Components"]("flowmancer.components")
S = ExecutionState


@dataclass
class Components:
    loggers: dict[str, Logger] = field(default_factory=dict)
    extensions: dict[str, Extension] = field(default_factory=dict)
    checkpointer: Optional[Checkpointer] = None  # from the YAML block; None means the default
    bridge: Optional[AsyncBridge] = None  # once started, when there is a component to drive
    started: bool = False
    early: list[tuple[str, ExecutionState, ExecutionState]] = field(default_factory=list)

    def all(self) -> list[tuple[str, Component]]:
        out: list[tuple[str, Component]] = [(f"logger '{n}' ({type(o).__name__})", o) for n, o in self.loggers.items()]
        out += [(f"extension '{n}' ({type(o).__name__})", o) for n, o in self.extensions.items()]
        if self.checkpointer is not None and type(self.checkpointer) is not FileCheckpointer:  # see the module doc
            out.append((f"checkpointer ({type(self.checkpointer).__name__})", self.checkpointer))
        return out

    def start(self) -> bool:
        """Start delivering (``False``: there is nothing to deliver to)."""
        if not self.started and self.all():
            self.started = True
            from .asyncbridge import AsyncBridge  # asyncio is imported only when needed

            self.bridge = AsyncBridge(on_error=report_error)
        return self.started

    def call(self, key: str, obj: Component, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (a method of ``obj``) on the loop, after everything queued for ``key`` before."""
        assert self.bridge is not None
        self.bridge.call(key, fn, *args)


def report_error(key: str, method: str, exc: BaseException) -> None:
    print(
        f"WARNING: {key} failed in {method}(): {type(exc).__name__}: {exc} (the job goes on; further errors "
        "from it are not shown)",
        file=sys.stderr,
    )


def get(config: Config) -> Components:
    """The run's components: what other plugins read (the checkpointer, the event loop) and add to (a
    default logger, a notifier given with ``-p``) through ``add_logger``/``add_extension``."""
    comps = config.stash.get(STASH_KEY)
    if comps is None:
        comps = config.stash[STASH_KEY] = Components()
    return comps


def add_logger(config: Config, name: str, logger: Logger) -> None:
    """Add a logger as if the YAML ``loggers:`` block named it (before the job starts)."""
    logger._fm_root = config.rootdir
    get(config).loggers[name] = logger


def add_extension(config: Config, name: str, ext: Extension) -> None:
    """Add an extension as if the YAML ``extensions:`` block named it (before the job starts)."""
    ext._fm_root = config.rootdir
    get(config).extensions[name] = ext


def build(
    config: Config, jobdef: LoadedJobDef, block: str, kind: str, name: str, class_name: str, params: dict[str, Any]
) -> tuple[Optional[Component], list[Problem]]:
    """Instantiate one YAML-configured component, or explain why not."""
    path: tuple[Any, ...] = (block, name) if name else (block,)
    reg = Registry(kind)
    cls = reg.get(class_name)
    where = ".".join(str(p) for p in path)
    if cls is None:
        close = closest(class_name, reg)
        folder = "loggers" if kind == "logger" else "extensions"
        hint = f"did you mean '{close}'?" if close else ""
        hint = hint or f"decorate the class with @{kind} and put its module under ./{folder} or an extension_directory"
        loc = jobdef.location((*path, kind))
        return None, [Problem(f"unknown {kind} class '{class_name}'", loc, where=f"{where}.{kind}", hint=hint)]
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        loc = Location(class_file(cls), inspect.getsourcelines(cls)[1])
        return None, [Problem(f"{kind} class '{class_name}' does not implement {missing}", loc, where=where)]
    try:
        obj: Component = cls.model_validate(params)
    except ValidationError as exc:
        hint = f"see the type hints of {class_name} in {class_file(cls)}"
        return None, problems_from_validation(exc, jobdef.marks, (*path, "parameters"), "parameter", hint, model=cls)
    obj._fm_root = config.rootdir
    return obj, []


def _hookimpl_names(obj: Any) -> list[str]:
    cls = type(obj)
    return [a for a in dir(cls) if a.startswith("flowmancer_") and hasattr(getattr(cls, a, None), "flowmancer_impl")]


class HookProxy:
    """Carries a component's bound ``@hookimpl`` methods to the plugin manager (which cannot inspect
    pydantic model instances directly)."""

    def __init__(self, obj: Any) -> None:
        self.target = obj
        for name in _hookimpl_names(obj):
            setattr(self, name, getattr(obj, name))


def register_as_plugin(config: Config, obj: Any, name: str, origin: str) -> list[Problem]:
    """Make a component's ``@hookimpl`` methods hook implementations for this run; what is wrong with its
    ``flowmancer_*`` methods (a misspelt hook, a missing ``@hookimpl``) is a job definition problem, as in
    any other plugin. Its ``flowmancer_configure`` runs when it is registered (the hook is historic)."""
    problems = hook_problems(obj, name)
    if problems:
        return problems
    if _hookimpl_names(obj) and not config.pluginmanager.has_plugin(name):
        config.pluginmanager.register(HookProxy(obj), name)
        config.pluginmanager.origins[name] = origin
    return []


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> list[Problem]:
    comps = get(config)
    model = jobdef.model
    problems: list[Problem] = []
    for name, ldef in (model.loggers or {}).items():
        obj, found = build(config, jobdef, "loggers", "logger", name, ldef.logger, ldef.parameters)
        problems += found
        if isinstance(obj, Logger):
            comps.loggers[name] = obj
    for name, edef in (model.extensions or {}).items():
        obj, found = build(config, jobdef, "extensions", "extension", name, edef.extension, edef.parameters)
        problems += found
        if isinstance(obj, Extension):
            comps.extensions[name] = obj
    for name, ext in comps.extensions.items():  # an extension with @hookimpl methods is a plugin too
        problems += register_as_plugin(
            config, ext, f"extension:{name}", f"the YAML extensions: block ({type(ext).__name__})"
        )
    if model.checkpointer is not None:
        c = model.checkpointer
        obj, found = build(config, jobdef, "checkpointer", "checkpointer", "", c.checkpointer, c.parameters)
        problems += found
        if isinstance(obj, Checkpointer):
            comps.checkpointer = obj
    return problems


@hookimpl(tryfirst=True)
def flowmancer_job_start(job: Job) -> None:
    """Start the components only now: loading, ``--dry-run`` and ``--list`` must not create log folders."""
    comps = get(job.config)
    if not comps.start():
        return
    for key, obj in comps.all():
        obj._fm_job_name = job.name
        comps.call(key, obj, obj.on_create)
        if job.restart:
            comps.call(key, obj, obj.on_restart)
    for task, from_state, to_state in comps.early:  # restored or deselected before the start
        _send_transition(comps, task, from_state, to_state)
    comps.early.clear()


def _to_loggers(job: Job, evt: Any) -> None:
    comps = get(job.config)
    for n, lg in comps.loggers.items():
        comps.call(f"logger '{n}' ({type(lg).__name__})", lg, lg.update, evt)


# The event classes are imported where the first one is made: a run without a YAML logger or extension never
# needs them (making them is ~3 ms of every run's start).


@hookimpl
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    comps = get(job.config)
    if comps.started and comps.loggers:
        from .eventbus.log import LogStartEvent

        _to_loggers(job, LogStartEvent(task.name, task.attempt, task.started_at or time.time()))


@hookimpl
def flowmancer_task_output(job: Job, task: TaskRun, lines: LogLines) -> None:
    comps = get(job.config)
    if comps.started and comps.loggers:
        from .eventbus.log import LogWriteEvent

        for message in lines.messages:  # the original API: one event per line
            _to_loggers(job, LogWriteEvent(task.name, lines.severity, message, lines.timestamp, lines.attempt))


@hookimpl
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    comps = get(job.config)
    if comps.started and comps.loggers and result.start is not None:
        from .eventbus.log import LogEndEvent

        _to_loggers(job, LogEndEvent(task.name, result.attempt))


def _send_transition(comps: Components, task: str, from_state: ExecutionState, to_state: ExecutionState) -> None:
    from .eventbus.execution import ExecutionStateTransition

    evt = ExecutionStateTransition(task, from_state, to_state)
    for n, ext in comps.extensions.items():
        comps.call(f"extension '{n}' ({type(ext).__name__})", ext, ext.update, evt)


@hookimpl
def flowmancer_task_transition(job: Job, task: TaskRun, from_state: ExecutionState, to_state: ExecutionState) -> None:
    comps = get(job.config)
    if not comps.extensions:
        return
    if not comps.started:
        comps.early.append((task.name, from_state, to_state))
    else:
        _send_transition(comps, task.name, from_state, to_state)


@hookimpl
def flowmancer_runjob_idle(job: Job) -> None:
    bridge = get(job.config).bridge
    if bridge is not None:
        bridge.flush()
    return None


@hookimpl
def flowmancer_job_finish(job: Job, exitcode: int) -> None:
    comps = get(job.config)
    if not comps.started:
        return
    for key, obj in comps.all():
        if job.interrupted is not None:
            comps.call(key, obj, obj.on_abort)
        comps.call(key, obj, obj.on_success if exitcode == 0 else obj.on_failure)
        comps.call(key, obj, obj.on_destroy)


@hookimpl(trylast=True)
def flowmancer_unconfigure(config: Config) -> None:
    comps = config.stash.get(STASH_KEY)
    if comps is not None and comps.bridge is not None:
        comps.bridge.close()  # every event is delivered before the run returns
