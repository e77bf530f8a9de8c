"""Task states, results and log records: plain, serialisable data shared by the scheduler, the worker and plugins.

Nothing here holds a process, a pipe or a plugin: these values cross process boundaries and are
stored in checkpoints, so they stay small and picklable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, Optional


class ExecutionState(str, Enum):
    """Where a task is in its life. ``SKIP`` is the original project's spelling of ``SKIPPED``."""

    INIT = "INIT"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DEFAULTED = "DEFAULTED"
    ABORTED = "ABORTED"
    SKIPPED = "SKIPPED"
    SKIP = "SKIPPED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    def __str__(self) -> str:
        return self.value


_FINAL = frozenset(
    {
        ExecutionState.COMPLETED,
        ExecutionState.FAILED,
        ExecutionState.DEFAULTED,
        ExecutionState.ABORTED,
        ExecutionState.SKIPPED,
    }
)


class Severity(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LogRecord:
    """One line a task wrote: to stdout/stderr (``print``), through ``self.logger``, or a traceback."""

    task: str
    attempt: int
    stream: str  # "stdout", "stderr", "logger" (self.logger), "logging" (other loggers) or "traceback"
    severity: Severity
    message: str
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class LogLines:
    """Consecutive lines a task wrote to one stream, with one severity and time (``flowmancer_task_output``):
    a flood of output costs one object per read, not one per line."""

    task: str
    attempt: int
    stream: str  # as LogRecord.stream
    severity: Severity
    messages: list[str]
    timestamp: float

    def records(self) -> Iterator[LogRecord]:
        for message in self.messages:
            yield LogRecord(self.task, self.attempt, self.stream, self.severity, message, self.timestamp)


@dataclass
class TaskResult:
    """What one task came to: the report every plugin consumes in ``flowmancer_task_finish``."""

    name: str
    state: ExecutionState
    attempt: int = 0
    start: Optional[float] = None
    end: Optional[float] = None
    exitcode: Optional[int] = None
    error: Optional[str] = None  # one line: why it failed
    traceback: Optional[str] = None  # full text, when a Python exception was the cause
    failure_kind: Optional[str] = None  # "exception", "exit" (sys.exit), "timeout" or "crash"
    exception_types: tuple[str, ...] = ()  # the exception's classes, most derived first, short and dotted names
    will_retry: bool = False
    retry_delay: Optional[float] = None
    #: an incremental run found it up to date and did not run it: when the run it reuses completed
    up_to_date: Optional[float] = None

    @property
    def duration(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start
