"""Reading a job definition: the one path every caller takes (a run, ``--schema``, ``--watch``)."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

from pydantic import ValidationError

from ..errors import JobDefinitionError, Location, Problem, closest
from .includes import _Loader
from .models import ConfigSchema, LoadedJobDef
from .validation import _prune, problems_from_validation

if TYPE_CHECKING:
    from ..config import Config


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
    with collector_paused():
        return _load(path, rootdir, variables, environ, schema, config_defaults, defaults_file)


@contextmanager
def collector_paused(freeze: bool = False) -> Iterator[None]:
    """The cyclic garbage collector waits while the runner starts and a job is loaded and set up: what that
    makes all lives on, and the collector's passes over a big job's millions of objects (which free nothing)
    made loading a 100,000-task job three times slower. Reference counting still frees what is dropped.

    ``freeze``: then move what exists out of the collector's sight (``gc.freeze``), or its first pass would
    go over all of it at once (10-15 ms of a small job's start). The first task's fork gives it back to the
    oldest generation (``lifeline.frozen_fork``), or the end of the run (``thaw``, from ``cli.run``): garbage
    made meanwhile is still collected, in the ``flowmancer`` command and in a driver's process alike."""
    global _frozen
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
            _frozen = True
        if enabled:
            gc.enable()


_frozen = False  # collector_paused froze what start-up made (gc.get_freeze_count() would count it: ~2 ms)


def thaw() -> None:
    """Give what ``collector_paused(freeze=True)`` froze back to the collector, if anything did."""
    global _frozen
    if _frozen:
        _frozen = False
        gc.unfreeze()


def _load(
    path: Path,
    rootdir: Path,
    variables: Optional[Mapping[str, str]],
    environ: Optional[Mapping[str, str]],
    schema: Optional[ConfigSchema],
    config_defaults: Optional[Mapping[str, Any]],
    defaults_file: Optional[Path],
) -> LoadedJobDef:
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


def read_jobdef(config: Config) -> LoadedJobDef:
    """The run's job definition, as every part of flowmancer reads it: the plugins' ``config:`` keys
    (``flowmancer_addconfig``) and the ``[tool.flowmancer]`` defaults included."""
    if config.jobdef_path is None:
        from ..errors import UsageError

        raise UsageError(
            "no job definition given and none here (job.yaml, job.yml, flowmancer.yaml, flowmancer.yml): "
            "pass -j/--jobdef PATH"
        )
    schema = ConfigSchema()
    config.hook.flowmancer_addconfig(schema=schema)
    return load_jobdef(
        config.jobdef_path,
        config.rootdir,
        config.variables,
        schema=schema,
        config_defaults=config.settings.config,
        defaults_file=config.settings.path,
    )
