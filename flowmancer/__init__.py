"""Flowmancer: run Python tasks in parallel processes, ordered by a YAML job definition."""

from __future__ import annotations

from . import hookspec
from .driver import Flowmancer
from .events import ExecutionState, LogRecord, Severity, TaskResult
from .exitcode import ExitCode
from .hookimpl import hookimpl
from .task import Task, task

__version__ = "1.0.0.dev0"

__all__ = [
    "ExecutionState",
    "ExitCode",
    "Flowmancer",
    "LogRecord",
    "Severity",
    "Task",
    "TaskResult",
    "__version__",
    "hookimpl",
    "hookspec",
    "task",
]
