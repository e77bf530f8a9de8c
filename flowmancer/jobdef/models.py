"""What a job YAML may say: the pydantic models of each block, and a loaded job definition.

Plugins add ``config:`` keys through ``ConfigSchema`` (the ``flowmancer_addconfig`` hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ..errors import Location, Problem, closest
from .yamlfile import Marks, Path_, locate


class _Strict(BaseModel):
    """A block of the job YAML: unknown keys are errors, and a key left empty (``dependencies:`` with nothing
    after it, YAML's null) means its default, as if it were not written."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            fields = cls.model_fields
            return {k: v for k, v in data.items() if v is not None or k not in fields or fields[k].is_required()}
        return data


Trigger = Literal["all_success", "all_done", "one_failed", "none_failed"]
#: a memory limit above this (1 EiB) is no limit a kernel can set
MAX_MEMORY_MB = 1 << 40
#: the longest timeout, backoff or grace period: one year (the scheduler waits in slices of an hour at most)
MAX_SECONDS = 366 * 86400


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class TaskSettings(_Strict):
    """How a task runs: retries, timeout, trigger rule, memory limit. ``config.task_defaults`` sets them for
    every task; a task's own keys win."""

    max_attempts: int = Field(1, ge=1)
    backoff: float = Field(0.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds before the 2nd attempt")
    backoff_factor: float = Field(
        1.0, ge=1, allow_inf_nan=False, description="each later wait is this many times the previous one"
    )
    backoff_max: Optional[float] = Field(
        None, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="cap on the wait between attempts"
    )
    backoff_jitter: float = Field(0.0, ge=0, le=1, description="randomise each wait by up to this fraction")
    retry_on: Optional[List[str]] = Field(None, description="retry only these exceptions (or 'timeout', 'crash')")
    no_retry_on: List[str] = Field(default_factory=list, description="never retry these exceptions")
    timeout: Optional[float] = Field(
        None, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds an attempt may run before it is stopped"
    )
    trigger: Trigger = "all_success"
    memory_limit_mb: Optional[int] = Field(
        None, gt=0, le=MAX_MEMORY_MB, description="MB the task process may allocate beyond what it starts with"
    )
    log_level: Optional[LogLevel] = Field(
        None,
        description="the least severe logging records captured (default: self.logger at every level, other loggers "
        "from INFO)",
    )
    priority: int = Field(0, description="among ready tasks, a higher priority starts first")


class ConfigDef(_Strict):
    name: str = "flowmancer"
    max_concurrency: int = 0
    extension_directories: List[str] = Field(default_factory=list)
    extension_packages: List[str] = Field(default_factory=list)
    task_defaults: TaskSettings = Field(default_factory=lambda: TaskSettings())
    abort_grace_seconds: float = Field(
        5.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="time a stopped task has for on_abort"
    )
    # Accepted for compatibility; the scheduler is event driven and has no polling interval.
    synchro_interval_seconds: float = 0.25
    loggers_interval_seconds: float = 0.25
    extensions_interval_seconds: float = 0.25
    checkpointer_interval_seconds: float = 10.0


def _word(value: Any) -> Any:
    """A scalar of a command's argument list as the word the YAML spells (``true``, ``5``, ``0.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


#: keys of a command task's entry, given to the ``Command`` task as parameters (see ``command``)
COMMAND_KEYS = ("command", "shell", "cwd", "env")


class TaskDef(_Strict):
    task: str
    dependencies: List[str] = Field(default_factory=list)
    parameters: Dict[str, Any] = Field(default_factory=dict)
    tags: List[str] = Field(default_factory=list, description="labels for -m selection")
    # Unset (None) means "as in config.task_defaults".
    max_attempts: Optional[int] = Field(None, ge=1)
    backoff: Optional[float] = Field(None, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    backoff_factor: Optional[float] = Field(None, ge=1, allow_inf_nan=False)
    backoff_max: Optional[float] = Field(None, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    backoff_jitter: Optional[float] = Field(None, ge=0, le=1)
    retry_on: Optional[List[str]] = None
    no_retry_on: Optional[List[str]] = None
    timeout: Optional[float] = Field(None, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    trigger: Optional[Trigger] = None
    memory_limit_mb: Optional[int] = Field(None, gt=0, le=MAX_MEMORY_MB)
    log_level: Optional[LogLevel] = None
    priority: Optional[int] = None
    # Incremental runs (--incremental): files the task reads and writes, relative to the app root (globs).
    inputs: List[str] = Field(
        default_factory=list,
        description="files the task reads (globs): a change reruns it",
        json_schema_extra={"type": ["array", "string"]},  # one glob may be given alone (_one_glob)
    )
    outputs: List[str] = Field(
        default_factory=list,
        description="files the task writes (globs): missing or changed, it reruns",
        json_schema_extra={"type": ["array", "string"]},
    )
    cache: bool = Field(True, description="false: always run, even in an incremental run")
    resources: Dict[str, float] = Field(
        default_factory=dict,
        description="what an attempt holds while it runs: config.pools here, worker resources on Dask",
    )
    # A command task (``task: Command`` implied): these keys are also its parameters (see ``_command``).
    command: Optional[Union[str, List[str]]] = Field(
        None,
        description="a program to run: an argument list, or a string",
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number", "boolean"]}}]
        },
    )
    shell: Optional[bool] = Field(None, description="run the command string with /bin/sh -c")
    cwd: Optional[str] = Field(None, description="the command's working folder, relative to the app root")
    env: Optional[Dict[str, str]] = Field(None, description="variables added to the command's environment")
    matrix: Optional[Dict[str, Any]] = Field(
        None,
        description="parameter lists: one task per combination (the cartesian product), with include/exclude",
    )

    @model_validator(mode="before")
    @classmethod
    def _command(cls, data: Any) -> Any:
        """``command:`` makes a ``Command`` task: its keys become the task's parameters."""
        if not isinstance(data, dict) or not any(k in data for k in COMMAND_KEYS):
            return data
        if data.get("command") is None:
            key = next(k for k in COMMAND_KEYS if k in data)
            raise ValueError(f"{key}: is for a command task: add command: (the program to run) or remove {key}:")
        if data.setdefault("task", "Command") != "Command":
            raise ValueError("command: runs a program, task: a class of yours: keep one")
        if isinstance(data["command"], list):  # [sleep, 5], [test, -e, x, true]: words as YAML wrote them
            data = {**data, "command": [_word(w) for w in data["command"]]}
        params = data.get("parameters")
        own = {k: data[k] for k in COMMAND_KEYS if k in data}
        return {**data, "parameters": {**params, **own} if isinstance(params, dict) else own}

    @field_validator("resources")
    @classmethod
    def _positive(cls, v: Dict[str, float]) -> Dict[str, float]:
        for name, amount in v.items():
            if not amount > 0 or amount == float("inf"):
                raise ValueError(f"resources.{name}: give a positive amount, not {amount}")
        return v

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _one_glob(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def deferred(self) -> bool:
        """A run-time fan-out (a ``matrix:`` value ``$SHARED{key}``): expanded when its dependencies are done."""
        from .matrix import deferred

        return deferred(self)

    def settings(self, defaults: TaskSettings) -> TaskSettings:
        """``defaults`` with this task's own keys over them (``defaults`` itself when it has none: a big job's
        tasks share one object)."""
        d = self.__dict__
        own = {k: d[k] for k in _SETTINGS if d[k] is not None}
        return defaults.model_copy(update=own) if own else defaults


#: the keys of TaskSettings a task may set for itself
_SETTINGS = tuple(TaskSettings.model_fields)


class LoggerDef(_Strict):
    logger: str
    parameters: Dict[str, Any] = Field(default_factory=dict)


class ExtensionDef(_Strict):
    extension: str
    parameters: Dict[str, Any] = Field(default_factory=dict)


class CheckpointerDef(_Strict):
    checkpointer: str
    parameters: Dict[str, Any] = Field(default_factory=dict)


class JobDefinition(_Strict):
    version: Optional[Union[float, int, str]] = None
    config: ConfigDef = Field(default_factory=ConfigDef)
    tasks: Dict[str, TaskDef]
    loggers: Optional[Dict[str, LoggerDef]] = None
    extensions: Optional[Dict[str, ExtensionDef]] = None
    checkpointer: Optional[CheckpointerDef] = None
    aliases: Any = None


class ConfigSchema:
    """Extra ``config:`` keys declared by plugins (``flowmancer_addconfig``), validated like the rest."""

    def __init__(self) -> None:
        self.fields: dict[str, tuple[Any, Any]] = {}
        self.help: dict[str, str] = {}

    def add(self, name: str, type_: Any, default: Any = ..., help: str = "") -> None:
        """Declare ``config.<name>`` of type ``type_``; omit ``default`` to make it required."""
        if name in ConfigDef.model_fields or name in self.fields:
            raise ValueError(f"config key '{name}' is already defined")
        self.fields[name] = (type_, Field(default, description=help or None))
        self.help[name] = help

    def job_model(self) -> type[JobDefinition]:
        if not self.fields:
            return JobDefinition
        cfg: Any = create_model("ConfigDef", __base__=ConfigDef, **self.fields)  # type: ignore[call-overload]
        model: type[JobDefinition] = create_model(
            "JobDefinition", __base__=JobDefinition, config=(cfg, Field(default_factory=cfg))
        )
        return model


#: the keys a job definition file may have at the top
_JOB_KEYS = frozenset({*JobDefinition.model_fields, "include"})


def _not_a_job(data: dict[Any, Any]) -> bool:
    """No key of ``data`` is a job definition's, nor a misspelling of one (a file included by mistake)."""
    keys = [str(k) for k in list(data)[:50]]
    return not set(keys) & _JOB_KEYS and not any(closest(k, _JOB_KEYS) for k in keys if len(k) < 40)


# Which model describes the mapping found at a path (for "did you mean" on unknown keys).
_MODEL_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): JobDefinition,
    ("config",): ConfigDef,
    ("config", "task_defaults"): TaskSettings,
    ("tasks", "*"): TaskDef,
    ("loggers", "*"): LoggerDef,
    ("extensions", "*"): ExtensionDef,
    ("checkpointer",): CheckpointerDef,
}


@dataclass
class LoadedJobDef:
    model: JobDefinition
    marks: Marks
    path: Path
    files: list[Path] = field(default_factory=list)  # the job file and every include, for --watch
    problems: list[Problem] = field(default_factory=list)  # schema problems (invalid parts left out)
    task_names: list[str] = field(default_factory=list)  # every task named, valid or not
    outside_root: list[str] = field(default_factory=list)  # includes from outside the app root
    #: each matrix task -> the tasks it was expanded into (a dependency on it means all of them)
    matrix: dict[str, list[str]] = field(default_factory=dict)
    matrix_expanded: bool = False  # the ``matrix`` plugin did (see main._load)

    def location(self, path: Path_) -> Optional[Location]:
        return locate(self.marks, path)
