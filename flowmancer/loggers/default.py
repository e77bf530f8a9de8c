"""Built-in plugin ``filelogger``: a ``FileLogger`` when the job has no ``loggers:`` block.

Block it with ``-p no:filelogger`` to write no log files; a ``loggers:`` block replaces it. Every
``FileLogger`` of the job (this one or the YAML's) must be able to write its folder: checked with the rest
of the job definition, before anything runs, so a job never runs without the logs it asked for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ..components import add_logger, get, report_error
from ..config import Config
from ..errors import Location, Problem
from ..job import Job, TaskRun
from ..jobdef import LoadedJobDef
from ..markers import hookimpl
from ..stash import StashKey
from ..states import LogLines, TaskResult
from .file import FileLogger, format_lines


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
    if not problems:
        for name, lg in list(loggers.items()):
            if type(lg) is FileLogger:  # a subclass may change what it does: the components plugin drives it
                del loggers[name]
                sink = FileLogSink(f"logger '{name}' ({type(lg).__name__})", lg)
                config.stash.setdefault(SINKS, []).append(sink)
                config.pluginmanager.register(sink, f"filelogger:{name}")
    return problems


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> list[str]:
    logs = [s.logger for s in config.stash.get(SINKS, [])]
    logs += [lg for lg in get(config).loggers.values() if isinstance(lg, FileLogger)]
    return [f"logs: {d}" for d in sorted({str(lg.resolve_path(lg.base_log_dir)) for lg in logs})]


class FileLogSink:
    """A ``FileLogger`` of the job, driven from the report hooks on the scheduler thread: each ``LogRecord``
    becomes its lines in the task's file, with no event objects in between (as pytest's ``junitxml``: an
    object registered for the run that consumes the report hooks). Like any component, a failure is reported
    once and the job goes on without it.

    Lines are gathered per task while the scheduler handles a batch of events and written in one ``write()``
    per task before it waits again (``flowmancer_runjob_idle``), at the end of an attempt and of the job: a
    task printing a lot costs one system call per wake-up, not one per line, and a file is never behind by
    more than the wake-up at hand (``tail -f`` still follows it)."""

    def __init__(self, key: str, logger: FileLogger) -> None:
        self.key = key
        self.logger = logger
        self.broken = False
        self.pending: dict[str, list[str]] = {}

    def _flush(self, task: Optional[str] = None) -> None:
        names = list(self.pending) if task is None else [task] if task in self.pending else []
        for name in names:
            text = "".join(self.pending.pop(name))
            self._safe(self.logger.write_text, name, text)

    def _safe(self, fn: Callable[..., None], *args: Any) -> None:
        if self.broken:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a logger's failure (a full disk) must not stop the job
            self.broken = True
            report_error(self.key, fn.__name__, exc)

    @hookimpl
    def flowmancer_job_start(self, job: Job) -> None:
        self.logger._fm_job_name = job.name
        self._safe(self.logger.open_run)

    @hookimpl
    def flowmancer_task_start(self, job: Job, task: TaskRun) -> None:
        self._flush(task.name)
        self._safe(self.logger.start_attempt, task.name, task.attempt, task.started_at or time.time())

    @hookimpl
    def flowmancer_task_output(self, job: Job, task: TaskRun, lines: LogLines) -> None:
        if not self.broken:
            text = format_lines(lines.severity.value, lines.messages, lines.timestamp)
            pending = self.pending.get(task.name)
            if pending is None:
                self.pending[task.name] = [text]
            else:
                pending.append(text)

    @hookimpl
    def flowmancer_runjob_idle(self, job: Job) -> None:
        if self.pending:
            self._flush()

    @hookimpl
    def flowmancer_task_finish(self, job: Job, task: TaskRun, result: TaskResult) -> None:
        self._flush(task.name)
        if result.start is not None:
            self._safe(self.logger.end_attempt, task.name)

    @hookimpl(trylast=True)
    def flowmancer_job_finish(self, job: Job, exitcode: int) -> None:
        self._flush()
        self._safe(self.logger.close_run)

    @hookimpl
    def flowmancer_unconfigure(self, config: Config) -> None:
        self._flush()
        self.logger.close_run()


SINKS = StashKey[list[FileLogSink]]("filelogger.sinks")
