"""Built-in plugin ``filelogger``: a ``FileLogger`` when the job has no ``loggers:`` block.

Block it with ``-p no:filelogger`` to write no log files; a ``loggers:`` block replaces it. Every
``FileLogger`` of the job (this one or the YAML's) must be able to write its folder: checked with the rest
of the job definition, before anything runs, so a job never runs without the logs it asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..components import add_logger, get
from ..config import Config
from ..errors import Location, Problem
from ..job import Job
from ..jobdef import LoadedJobDef
from ..markers import hookimpl
from .file import FileLogger


def unwritable(path: Path) -> Optional[str]:
    """Why no folder can be made or written at ``path`` (``None``: one can)."""
    p = path
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    if not p.is_dir():
        return f"{p} is not a folder" + ("" if p == path else f" (on the way to {path})")
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} cannot be written"
    return None


@hookimpl(trylast=True)
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> list[Problem]:
    if jobdef.model.loggers is None:
        add_logger(config, "file-logger", FileLogger())
    loggers = get(config).loggers
    problems = []
    for name, lg in loggers.items():
        if not isinstance(lg, FileLogger):
            continue
        why = unwritable(lg.resolve_path(lg.base_log_dir))
        if why is None:
            continue
        if jobdef.model.loggers is None:  # the default logger: nothing in the YAML to point at
            where, loc = "loggers", Location(str(jobdef.path), 1)
            hint = "remove or rename it, or configure a FileLogger with another base_log_dir (or -p no:filelogger)"
        else:
            where = f"loggers.{name}.parameters.base_log_dir"
            loc = jobdef.location(("loggers", name, "parameters", "base_log_dir")) or Location(str(jobdef.path), 1)
            hint = "point base_log_dir at a folder this user can write"
        problems.append(Problem(f"the log folder cannot be used: {why}", loc, where=where, hint=hint))
    return problems


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> list[str]:
    dirs = sorted(
        {str(lg.resolve_path(lg.base_log_dir)) for lg in get(config).loggers.values() if isinstance(lg, FileLogger)}
    )
    return [f"logs: {d}" for d in dirs]
