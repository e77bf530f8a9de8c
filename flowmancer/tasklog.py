"""Python's ``logging`` inside a task process: ``self.logger`` and every library's records, captured.

``self.logger`` is a standard ``logging.Logger`` (``flowmancer.task.<task name>``): ``%``-args,
``exception()``, ``isEnabledFor`` and levels work, and the original API's ``info(msg)`` and friends are
simply the stdlib methods. In a task process one handler on the root logger (``CaptureHandler``) turns every
record of every logger into a framed record of its level on the task's stdout, in order with its ``print``
output (``output``): stream ``logger`` for ``self.logger``, ``logging`` for the others (shown as
``<logger name>: <message>``); ``warnings.warn`` is captured as WARNING. Levels: by default ``self.logger``
at every level (the original API logged its ``debug`` lines) and other loggers from INFO (a library's debug
chatter stays out); the task's ``log_level`` (or ``config.task_defaults.log_level``) sets both. Handlers the
scheduler's process had are not the task's: they are replaced while the task process lives.

Built in the process that forks (``Capture``), installed in the task process (``Capture.install``): a fork copies
every page the child writes, and building the objects in each child copied more than installing them.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable, Optional

from .output import frame

LOGGER_PREFIX = "flowmancer.task."


def severity_of(levelno: int) -> str:
    """A ``logging`` level as one of flowmancer's severities (a custom level goes to the one below it)."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


def task_logger(name: str) -> logging.Logger:
    """The logger of the task ``name`` (its records are shown without the logger's name)."""
    return logging.getLogger(LOGGER_PREFIX + name)


class CaptureHandler(logging.Handler):
    """Every record of the task process, framed on its stdout: ``<logger>: <message>`` (the task's own
    logger without its name), the traceback of ``exception()``/``exc_info`` and ``stack_info`` as more lines."""

    def __init__(self, write: Callable[[str], Any], own: str) -> None:
        super().__init__()
        self.write = write
        self.own = own

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().rstrip("\n")  # warnings end theirs with one
            stream = "logger"
            if record.name != self.own:
                stream, text = "logging", f"{record.name}: {text}"
            if record.exc_info and record.exc_info[0] is not None:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if record.stack_info:
                text += "\n" + record.stack_info.rstrip("\n")
            self.write(frame(stream, severity_of(record.levelno), text.split("\n"), record.created))
        except Exception:  # noqa: BLE001 - logging's own rule: a failing handler reports and the task goes on
            self.handleError(record)


class Capture:
    """What ``install`` needs in the task process, made beforehand; but for the task's logger, which
    ``install`` gets in the task process. Got here, in the process that forks (the fork server or the
    scheduler), ``logging`` would keep one logger per task there for good, and every ``setLevel`` walks all
    loggers (it clears their caches): a 100,000-task run slowed down as it went (185 -> 80 tasks a second)."""

    def __init__(self, write: Callable[[str], Any], task: str, level: Optional[str]) -> None:
        self.task = task
        self.logger: Optional[logging.Logger] = None
        self.handler = CaptureHandler(write, LOGGER_PREFIX + task)
        number = logging.getLevelName(level) if level else None
        self.own_level = number if isinstance(number, int) else logging.DEBUG
        self.root_level = number if isinstance(number, int) else logging.INFO

    def install(self) -> None:
        root = logging.getLogger()
        root.handlers[:] = [self.handler]
        root.setLevel(self.root_level)
        self.logger = task_logger(self.task)
        self.logger.setLevel(self.own_level)
        logging.captureWarnings(True)
