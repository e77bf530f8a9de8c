"""The runtime job: validated tasks wired into a DAG, their states and the parent's shared dict.

``build_job`` turns a loaded job definition and the collected classes into a ``Job``, reporting
every semantic problem (unknown class, bad parameters, bad dependencies, cycles) at once.
"""

from __future__ import annotations

import graphlib
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

from pydantic import ValidationError

from .errors import FlowmancerError, JobDefinitionError, Location, Problem, closest
from .jobdef import LoadedJobDef, TaskDef, TaskSettings, problems_from_validation
from .registry import Registry, class_file
from .stash import Stash
from .states import ExecutionState, TaskResult
from .task import Task, TaskInfo

if TYPE_CHECKING:
    from .config import Config
    from .executor import TaskHandle
    from .hookrelay import HookRelay


@dataclass(eq=False)
class TaskRun:
    """One task instance of the job and everything the scheduler knows about it."""

    name: str
    definition: TaskDef
    cls: type[Task]
    instance: Task
    index: int
    settings: TaskSettings
    #: its place among ready tasks (lowest first): the file's order unless the ``priority`` plugin ranks it
    rank: int = -1
    dependents: list[str] = field(default_factory=list)
    state: ExecutionState = ExecutionState.INIT
    attempt: int = 0
    is_restart: bool = False
    result: Optional[TaskResult] = None
    history: list[TaskResult] = field(default_factory=list)
    handle: Optional[TaskHandle] = None
    #: when its latest attempt started (``time.time()``)
    started_at: Optional[float] = None
    #: its state in the checkpoint ``-r`` resumes, if any (``--dry-run`` and ``--graph`` show it)
    checkpoint_state: Optional[str] = None
    stash: Stash = field(default_factory=Stash)

    @property
    def class_name(self) -> str:
        return self.cls.__name__

    @property
    def dependencies(self) -> list[str]:
        return self.definition.dependencies

    @property
    def tags(self) -> list[str]:
        """The task's tags: its class's ``default_tags`` and the YAML ``tags:``."""
        return sorted({*getattr(self.cls, "default_tags", ()), *self.definition.tags})

    @property
    def max_attempts(self) -> int:
        return self.settings.max_attempts

    @property
    def backoff(self) -> float:
        return self.settings.backoff

    def info(self, job_name: str) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            class_name=self.class_name,
            dependencies=tuple(self.dependencies),
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            is_restart=self.is_restart,
            job_name=job_name,
            log_level=self.settings.log_level,
        )

    def __post_init__(self) -> None:
        if self.rank < 0:
            self.rank = self.index

    def __repr__(self) -> str:
        return f"<TaskRun {self.name} {self.state.value} attempt={self.attempt}>"


class ChangeLog(dict):  # type: ignore[type-arg]
    """``job.shared_dict``: a dict that remembers which keys changed since ``take_changes`` was last called,
    so a consumer (the fork server's replica) is updated with what changed, not a copy of everything."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[Any] = set()
        self.cleared = False

    def take_changes(self) -> tuple[bool, set[Any]]:
        """(was it cleared, keys set or deleted since) and forget them."""
        out = (self.cleared, self.changed)
        self.changed, self.cleared = set(), False
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.changed.add(key)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self.changed.add(key)

    def pop(self, key: Any, *default: Any) -> Any:
        self.changed.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()
        self.changed.add(item[0])
        return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.changed.add(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def clear(self) -> None:
        super().clear()
        self.changed, self.cleared = set(), True

    def __ior__(self, other: Any) -> ChangeLog:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # a task process gets a plain dict
        return (dict, (dict(self),))


class Job:
    """A loaded, validated job and its live state (owned by the parent process)."""

    def __init__(self, config: Config, jobdef: LoadedJobDef, tasks: dict[str, TaskRun]) -> None:
        self.config = config
        self.jobdef = jobdef
        self.tasks = tasks
        cfg = jobdef.model.config
        #: ``config.name``, else the job file's path from the app root (``jobs/nightly`` for
        #: ``jobs/nightly.yaml``): checkpoints and locks are kept by it, so two job files never share one
        self.name = cfg.name if "name" in cfg.model_fields_set else default_name(jobdef.path, config.rootdir)
        self.shared_dict: dict[str, Any] = ChangeLog()
        self.restart = False
        self.start_time = time.time()
        self.end_time: Optional[float] = None
        self.interrupted: Optional[int] = None  # the signal number that stopped the run
        self.stash = Stash()  # plugin state for this job: typed with ``flowmancer.stash.StashKey``
        #: what plugins found out about this run before it starts (resuming from a checkpoint, ``--fresh``, a
        #: stale lock): shown under the header and by ``--dry-run``
        self.notes: list[str] = []
        self.running: dict[str, TaskRun] = {}  # maintained by the scheduler
        self.stopping = False  # start nothing new (e.g. -x after a failure)
        self.abort_requested = False  # also stop the running tasks
        self.stop_reason = ""
        #: what stopped the run when it was not a task's failure (the checkpoint could not be written, ...):
        #: printed in the summary, and its ``exit_code`` is the run's
        self.error: Optional[FlowmancerError] = None
        #: descriptors the job's own modules (tasks/, extension folders and packages) opened when imported:
        #: a task process keeps these and its own pipes, nothing else of the runner (see ``lifeline``)
        self.module_fds: tuple[int, ...] = ()
        #: descriptors that must stay open until every task process of the run is gone (the run's lock): the
        #: helpers that may outlive the scheduler (the guardian, the fork server) hold them (see ``lifeline``)
        self.hold_fds: list[int] = []

    @property
    def hook(self) -> HookRelay:
        return self.config.hook

    def __iter__(self) -> Iterator[TaskRun]:
        return iter(self.tasks.values())

    def __len__(self) -> int:
        return len(self.tasks)

    def deselect(self, task: TaskRun, reason: str = "deselected") -> None:
        """Leave ``task`` out of this run (``flowmancer_collection_modifytasks``): SKIPPED, with ``reason`` as
        its result's error; its dependents treat it as done. It gets ``flowmancer_task_not_run``."""
        self.set_state(task, ExecutionState.SKIPPED)
        task.result = TaskResult(name=task.name, state=ExecutionState.SKIPPED, error=reason)

    def stop(self, abort: bool = False, reason: str = "") -> None:
        """Start no new task (tasks waiting for a retry will not retry); with ``abort``, stop running ones
        too (they get ``on_abort``). The scheduler acts on it at its next wake-up."""
        self.stopping = True
        self.abort_requested = self.abort_requested or abort
        self.stop_reason = self.stop_reason or reason

    def set_state(self, task: TaskRun, state: ExecutionState) -> None:
        old = task.state
        if old is state:
            return
        task.state = state
        self.hook.flowmancer_task_transition(job=self, task=task, from_state=old, to_state=state)

    @property
    def results(self) -> dict[str, TaskResult]:
        out = {}
        for t in self:
            out[t.name] = t.result or TaskResult(name=t.name, state=t.state, attempt=t.attempt)
        return out

    def count(self, *states: ExecutionState) -> int:
        return sum(1 for t in self if t.state in states)

    @property
    def failed_count(self) -> int:
        """FAILED + DEFAULTED + ABORTED: what ``Flowmancer().start()`` returns."""
        return self.count(ExecutionState.FAILED, ExecutionState.DEFAULTED, ExecutionState.ABORTED)


def _above_hard_memory_limit(megabytes: Optional[int]) -> str:
    """Why the kernel would refuse a task process this memory limit ('' when it would not)."""
    if not megabytes:
        return ""
    try:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    except (ImportError, OSError, ValueError):
        return ""
    if hard == resource.RLIM_INFINITY or megabytes * 1024 * 1024 < hard:
        return ""
    return f"is above the hard limit for a process's data here ({hard // (1024 * 1024)} MB, ulimit -d)"


def default_name(jobfile: Path, rootdir: Path) -> str:
    """The name of a job whose ``config.name`` is not set: its file's path from the app root, no suffix."""
    path = jobfile.with_suffix("")
    try:
        return path.relative_to(rootdir).as_posix()
    except ValueError:  # outside the app root
        return path.as_posix()


def _suggest(name: str, choices: list[str]) -> str:
    squashed = {c.replace(" ", "").replace("_", "").lower(): c for c in choices}
    key = name.replace(" ", "").replace("_", "").replace("-", "").lower()
    if key in squashed:
        return f"did you mean '{squashed[key]}'?"
    close = closest(name, choices)
    return f"did you mean '{close}'?" if close else ""


def _problem_order(p: Problem) -> tuple[str, int]:
    return (p.location.file, p.location.line) if p.location else ("", 0)


def build_job(config: Config, loaded: LoadedJobDef, registry: Registry, problems: list[Problem]) -> Job:
    """Check classes, parameters and the DAG; raise every problem (``problems`` plus new ones) at once."""
    model = loaded.model
    known = set(loaded.task_names) | set(model.tasks)
    tasks: dict[str, TaskRun] = {}
    if not known:
        problems.append(
            Problem(
                "the job has no tasks",
                loaded.location(("tasks",)) or Location(str(loaded.path), 1),
                where="tasks",
                hint="add at least one task under `tasks:`",
            )
        )
    for index, (name, tdef) in enumerate(model.tasks.items()):
        cls = registry.get(tdef.task)
        where = f"tasks.{name}.task"
        if cls is None:
            hint = _suggest(tdef.task, list(registry))
            if not hint:
                hint = (
                    "decorate the class with @task and put its module under ./tasks or a folder listed in "
                    "config.extension_directories"
                )
            problems.append(
                Problem(
                    f"unknown task class '{tdef.task}'",
                    loaded.location(("tasks", name, "task")),
                    where=where,
                    hint=hint,
                )
            )
            continue
        if tdef.task in registry.conflicts:
            files = ", ".join(sorted({class_file(c) for c in registry.conflicts[tdef.task]}))
            problems.append(
                Problem(
                    f"two task classes are named '{tdef.task}': {files}",
                    loaded.location(("tasks", name, "task")),
                    where=where,
                    hint="rename one of them; task classes are looked up by class name",
                )
            )
            continue
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            problems.append(
                Problem(
                    f"task class '{tdef.task}' does not implement {missing}",
                    Location(class_file(cls), inspect.getsourcelines(cls)[1]),
                    where=where,
                    hint="add `def run(self) -> None:` to the class",
                )
            )
            continue
        try:
            instance = cls.model_construct(**tdef.parameters) if tdef.deferred else cls.model_validate(tdef.parameters)
        except ValidationError as exc:
            problems += problems_from_validation(
                exc,
                loaded.marks,
                ("tasks", name, "parameters"),
                noun="parameter",
                hint=f"see the type hints of {cls.__name__} in {class_file(cls)}",
                model=cls,
            )
            continue
        settings = tdef.settings(model.config.task_defaults)
        too_much = _above_hard_memory_limit(settings.memory_limit_mb)
        if too_much:
            own = tdef.memory_limit_mb is not None
            path = ("tasks", name, "memory_limit_mb") if own else ("config", "task_defaults", "memory_limit_mb")
            problems.append(
                Problem(
                    f"memory_limit_mb: {settings.memory_limit_mb} MB {too_much}",
                    loaded.location(path),
                    where=".".join(path),
                    hint="use a smaller limit, or raise the hard limit (ulimit -d) of the shell that runs flowmancer",
                )
            )
        tasks[name] = TaskRun(name=name, definition=tdef, cls=cls, instance=instance, index=index, settings=settings)

    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name, tdef in model.tasks.items():
        seen: set[str] = set()
        deps_ok = []
        for i, dep in enumerate(tdef.dependencies):
            if dep == name or name in loaded.matrix.get(dep, ()):  # itself, or the matrix it is part of
                problems.append(
                    Problem(
                        f"task '{dep}' depends on itself",
                        loaded.location(("tasks", name, "dependencies", i)),
                        where=f"tasks.{dep}.dependencies[{i}]",
                        hint="remove it from its own dependencies",
                    )
                )
            elif dep in loaded.matrix:  # a matrix task: each of its instances
                for inst in loaded.matrix[dep]:
                    if inst not in seen and inst in model.tasks:
                        seen.add(inst)
                        deps_ok.append(inst)
            elif dep not in known:
                hint = _suggest(dep, sorted(known)) or f"defined tasks: {', '.join(sorted(known))}"
                problems.append(
                    Problem(
                        f"undefined dependency '{dep}'",
                        loaded.location(("tasks", name, "dependencies", i)),
                        where=f"tasks.{name}.dependencies[{i}]",
                        hint=hint,
                    )
                )
            elif dep not in seen and dep in model.tasks:
                seen.add(dep)
                deps_ok.append(dep)
        tdef.dependencies = deps_ok
        sorter.add(name, *deps_ok)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        problems.append(
            Problem(
                f"dependency cycle: {' -> '.join(cycle)}",
                loaded.location(("tasks", cycle[0])),
                where=f"tasks.{cycle[0]}.dependencies",
                hint="a task cannot (even indirectly) depend on itself; remove one dependency",
            )
        )
    if problems:  # a matrix's instances share their entry's problems: each once
        once = {(p.message, p.location): p for p in reversed(problems)}
        raise JobDefinitionError(sorted(once.values(), key=_problem_order))
    for t in tasks.values():
        for dep in t.dependencies:
            tasks[dep].dependents.append(t.name)
    return Job(config, loaded, tasks)
