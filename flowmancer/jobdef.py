"""The job YAML: merge ``include``s, substitute ``$ENV{}``/``$VAR{}``/``$SYS{}``, validate against pydantic
models (each file read, with line marks, by ``yamlfile``). Every problem is reported at once with its file and
line.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from .errors import JobDefinitionError, Location, Problem, closest
from .yamlfile import Marks, Path_, dotted, locate, read_yaml

# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Trigger = Literal["all_success", "all_done", "one_failed", "none_failed"]
#: a memory limit above this (1 EiB) is no limit a kernel can set
MAX_MEMORY_MB = 1 << 40
#: the longest timeout, backoff or grace period: one year (the scheduler waits in slices of an hour at most)
MAX_SECONDS = 366 * 86400


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

    @field_validator("extension_directories", "extension_packages", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("task_defaults", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any) -> Any:
        return {} if v is None else v


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

    @field_validator("dependencies", "parameters", "tags", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any, info: Any) -> Any:
        if v is None:
            return {} if info.field_name == "parameters" else []
        return v

    def settings(self, defaults: TaskSettings) -> TaskSettings:
        own = {k: getattr(self, k) for k in TaskSettings.model_fields if getattr(self, k) is not None}
        return defaults.model_copy(update=own)


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

    @field_validator("config", mode="before")
    @classmethod
    def _none_config(cls, v: Any) -> Any:
        return {} if v is None else v


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

    def location(self, path: Path_) -> Optional[Location]:
        return locate(self.marks, path)


# --------------------------------------------------------------------------------------------------
# Substitution
# --------------------------------------------------------------------------------------------------

_SUBST = re.compile(r"\$(ENV|VAR|SYS)\{([^}:]*)(?::([^}]*))?\}")


def substitute(
    data: Any, marks: Marks, sources: Mapping[str, Mapping[str, str]], problems: list[Problem], path: Path_ = ()
) -> Any:
    """Replace ``$KIND{NAME}`` / ``$KIND{NAME:default}`` in every string scalar, keys excluded."""
    if isinstance(data, dict):
        return {k: substitute(v, marks, sources, problems, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute(v, marks, sources, problems, (*path, i)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def repl(m: re.Match[str]) -> str:
        kind, name, default = m.group(1), m.group(2), m.group(3)
        value = sources[kind].get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        hint = {
            "ENV": f"export {name}=... before running, or write $ENV{{{name}:default}}",
            "VAR": f"pass --var {name}=..., or write $VAR{{{name}:default}}",
            "SYS": f"known names: {', '.join(sorted(sources['SYS']))}",
        }[kind]
        problems.append(Problem(f"{m.group(0)} is not set", locate(marks, path), where=dotted(path), hint=hint))
        return m.group(0)

    return _SUBST.sub(repl, data)


# --------------------------------------------------------------------------------------------------
# Include and merge
# --------------------------------------------------------------------------------------------------


def deep_merge(base: dict[Any, Any], over: Mapping[Any, Any]) -> dict[Any, Any]:
    """Dicts merge key by key; anything else (lists included) is replaced by the later value."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


class _Loader:
    def __init__(self, rootdir: Path, sources: Mapping[str, Mapping[str, str]]) -> None:
        self.rootdir = rootdir
        self.sources = sources
        self.problems: list[Problem] = []
        self.files: list[Path] = []
        self.outside: list[str] = []  # includes from outside the app root (the header of the run names them)
        self._cache: dict[Path, tuple[dict[Any, Any], Marks]] = {}

    def _resolve(self, raw: str, including: Path) -> Optional[Path]:
        """The file an include names (``read_yaml`` then refuses what is not a regular file)."""
        p = Path(os.path.expanduser(raw))
        if p.is_absolute():
            return p if p.exists() else None
        for base in (self.rootdir, including.parent):
            if (base / p).exists():
                return (base / p).resolve()
        return None

    def load(self, path: Path, stack: tuple[Path, ...] = ()) -> tuple[dict[Any, Any], Marks]:
        path = path.resolve()
        if path in self._cache:  # included twice (a diamond): hand out a copy
            data, marks = self._cache[path]
            return copy.deepcopy(data), dict(marks)
        if path not in self.files:
            self.files.append(path)
        raw, marks = read_yaml(path, self.problems)
        if raw is None:
            return {}, {}
        if raw and _not_a_job(raw):  # say so, and never echo what such a file holds
            self.problems.append(
                Problem(
                    f"{path} is not a job definition: it has none of the keys of one ({', '.join(sorted(_JOB_KEYS))})",
                    Location(str(path), 1),
                    hint="check -j, or the include that names it",
                )
            )
            return {}, {}
        raw = substitute(raw, marks, self.sources, self.problems)
        includes = raw.pop("include", None) or []
        if isinstance(includes, str):
            includes = [includes]
        merged: dict[Any, Any] = {}
        merged_marks: Marks = {}
        if not isinstance(includes, list):
            self.problems.append(
                Problem(
                    "`include` must be a list of YAML file paths",
                    locate(marks, ("include",)),
                    hint="write `include: [a.yaml, b.yaml]`",
                )
            )
            includes = []
        for i, inc in enumerate(includes):
            loc = locate(marks, ("include", i))
            if not isinstance(inc, str):
                self.problems.append(Problem("include entries must be file paths", loc, where=f"include[{i}]"))
                continue
            target = self._resolve(inc, path)
            if target is None:
                self.problems.append(
                    Problem(
                        f"included file not found: {inc}",
                        loc,
                        where=f"include[{i}]",
                        hint=f"include paths are relative to the app root ({self.rootdir})",
                    )
                )
                continue
            if target in stack or target == path:
                chain = " -> ".join(str(p) for p in (*stack, path, target))
                self.problems.append(
                    Problem(
                        f"include cycle: {chain}",
                        loc,
                        where=f"include[{i}]",
                        hint="remove one of the includes that closes the loop",
                    )
                )
                continue
            if self.rootdir.resolve() not in target.resolve().parents:
                self.outside.append(f"{inc} ({target}), included by {path}")
            data, inc_marks = self.load(target, (*stack, path))
            deep_merge(merged, data)
            merged_marks.update(inc_marks)
        if merged:
            deep_merge(merged, raw)
            merged_marks.update(marks)
        else:  # no includes: nothing to merge, nothing to copy
            merged, merged_marks = raw, marks
        self._cache[path] = (merged, merged_marks)
        return merged, merged_marks


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _model_at(loc: Path_, root: type[BaseModel] = JobDefinition) -> Optional[type[BaseModel]]:
    for pattern, model in _MODEL_AT.items():
        if len(pattern) == len(loc) and all(p == "*" or p == q for p, q in zip(pattern, loc)):
            if pattern == ("config",):
                return root.model_fields["config"].annotation  # type: ignore[return-value]
            return root if pattern == () else model
    return None


_EXPECTED = {
    "dict": "a mapping (key: value lines, or {key: value})",
    "model": "a mapping (key: value lines, or {key: value})",
    "list": "a list (- item lines, or [a, b])",
    "string": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
}


def _fix_for(kind: str, ctx: Mapping[str, Any]) -> str:
    """A hint saying what to write instead, from pydantic's error type."""
    for prefix, what in _EXPECTED.items():
        if kind.startswith(prefix):
            return f"write {what} here"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"use a value {bounds[kind]} {limit}"
    if kind == "literal_error":
        return f"use one of: {ctx.get('expected', '')}"
    if kind == "enum":
        return f"use one of: {ctx.get('expected', '')}"
    return "see the README's job definition reference"


def _is_secret(model: Optional[type[BaseModel]], loc: Any) -> bool:
    """Is the value at ``loc`` (inside ``model``) a ``SecretStr``/``SecretBytes``? Then it is never shown."""
    for part in loc:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        if field is None:
            return False
        text = str(field.annotation)
        if "Secret" in text:
            return True
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return False


def _friendly(
    err: Mapping[str, Any], noun: str, loc: Path_, model: Optional[type[BaseModel]], root: type[BaseModel]
) -> tuple[str, str]:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = model if model is not None and len(err["loc"]) == 1 else _model_at(loc[:-1], root)
        known = list(model.model_fields) if model else []
        close = closest(str(loc[-1]), known)
        hint = f"did you mean '{close}'?" if close else (f"known {noun}s: {', '.join(known)}" if known else "")
        return f"unknown {noun} '{loc[-1]}'", hint
    if kind == "missing":
        return f"missing required {noun} '{loc[-1]}'", f"add `{loc[-1]}: ...` here"
    got = err.get("input")
    if _is_secret(model, err["loc"]):
        return f"{err['msg']} (value hidden: a secret)", ""
    shown = type(got).__name__ if isinstance(got, (dict, list)) else repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{err['msg']} (got {shown})", _fix_for(kind, err.get("ctx") or {})


def problems_from_validation(
    exc: ValidationError,
    marks: Marks,
    prefix: Path_ = (),
    noun: str = "key",
    hint: str = "",
    model: Optional[type[BaseModel]] = None,
    root: type[BaseModel] = JobDefinition,
) -> list[Problem]:
    """One ``Problem`` per pydantic error; ``model`` is what was validated at ``prefix``."""
    out = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        msg, own_hint = _friendly(err, noun, loc, model, root)
        own_hint = "; ".join(h for h in (own_hint, hint) if h)
        out.append(Problem(msg, locate(marks, loc), where=dotted(loc), hint=own_hint))
    return out


def _prune(data: dict[Any, Any], errors: list[Any]) -> dict[Any, Any]:
    """Drop the parts that failed schema validation so the rest can still be checked."""
    bad_top: set[Any] = set()
    bad_tasks: set[Any] = set()
    for err in errors:
        loc = err["loc"]
        if loc and loc[0] == "tasks" and len(loc) >= 2:
            bad_tasks.add(loc[1])
        elif loc:
            bad_top.add(loc[0])
    pruned = {k: v for k, v in data.items() if k not in bad_top}
    tasks = data.get("tasks")
    pruned["tasks"] = (
        {k: v for k, v in tasks.items() if k not in bad_tasks}
        if isinstance(tasks, dict) and "tasks" not in bad_top
        else {}
    )
    return pruned


def load_jobdef(
    path: Path,
    rootdir: Path,
    variables: Optional[Mapping[str, str]] = None,
    environ: Optional[Mapping[str, str]] = None,
    schema: Optional[ConfigSchema] = None,
    config_defaults: Optional[Mapping[str, Any]] = None,
    defaults_file: Optional[Path] = None,
) -> LoadedJobDef:
    """Read, merge, substitute and validate a job definition.

    YAML that cannot be read raises ``JobDefinitionError`` at once. Schema problems are kept in
    ``LoadedJobDef.problems`` with the invalid parts left out, so later checks still report the rest.
    """
    sources = {
        "ENV": dict(os.environ if environ is None else environ),
        "VAR": dict(variables or {}),
        "SYS": {"APP_ROOT_DIR": str(rootdir)},
    }
    loader = _Loader(rootdir, sources)
    data, marks = loader.load(path)
    if loader.problems and not data:
        raise JobDefinitionError(loader.problems)
    problems = list(loader.problems)
    tasks_raw = data.get("tasks")
    names = [k if isinstance(k, str) else str(k) for k in tasks_raw] if isinstance(tasks_raw, dict) else []

    root = (schema or ConfigSchema()).job_model()
    if config_defaults:  # [tool.flowmancer] keys: defaults below what the job's YAML says
        cfg_model: Any = root.model_fields["config"].annotation
        for key in config_defaults:
            if key not in cfg_model.model_fields:
                close = closest(key, cfg_model.model_fields)
                problems.append(
                    Problem(
                        f"unknown setting '{key}' in [tool.flowmancer]",
                        Location(str(defaults_file), 1),
                        hint=f"did you mean '{close}'?"
                        if close
                        else "settings there are config: keys, addopts and plugins",
                    )
                )
        known = {k: v for k, v in config_defaults.items() if k in cfg_model.model_fields}
        own = data.get("config")
        data = {**data, "config": {**known, **own} if isinstance(own, dict) else (own if own is not None else known)}
    try:
        model = root.model_validate(data)
    except ValidationError as exc:
        problems += problems_from_validation(exc, marks, root=root)
        try:
            model = root.model_validate(_prune(data, exc.errors(include_url=False)))
        except ValidationError:
            model = root.model_validate({"tasks": {}})
    return LoadedJobDef(
        model=model,
        marks=marks,
        path=path.resolve(),
        files=loader.files,
        problems=problems,
        task_names=names,
        outside_root=loader.outside,
    )
