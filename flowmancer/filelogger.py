"""Built-in plugin ``filelogger``: a ``FileLogger`` when the job has no ``loggers:`` block.

Block it with ``-p no:filelogger`` to write no log files; a ``loggers:`` block replaces it.
"""

from __future__ import annotations

from .components import get
from .config import Config
from .errors import Problem
from .job import Job
from .jobdef import LoadedJobDef
from .loggers.file import FileLogger
from .markers import hookimpl


@hookimpl(trylast=True)
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> list[Problem]:
    if jobdef.model.loggers is None:
        fl = FileLogger()
        fl._fm_root = config.rootdir
        get(config).loggers["file-logger"] = fl
    return []


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> list[str]:
    dirs = sorted(
        {str(lg.resolve_path(lg.base_log_dir)) for lg in get(config).loggers.values() if isinstance(lg, FileLogger)}
    )
    return [f"logs: {d}" for d in dirs]
