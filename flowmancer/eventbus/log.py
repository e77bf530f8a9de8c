"""Log events for ``Logger.update``: a task's log opens, gets lines, and closes (once per attempt)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..states import Severity

__all__ = ["LogEndEvent", "LogStartEvent", "LogWriteEvent", "SerializableLogEvent", "Severity"]


@dataclass(frozen=True)
class SerializableLogEvent:
    name: str  #: the task's instance name


@dataclass(frozen=True)
class LogStartEvent(SerializableLogEvent):
    attempt: int = 1
    timestamp: float = field(default_factory=time.time)  #: when the attempt started


@dataclass(frozen=True)
class LogEndEvent(SerializableLogEvent):
    attempt: int = 1


@dataclass(frozen=True)
class LogWriteEvent(SerializableLogEvent):
    severity: Severity = Severity.INFO
    message: str = ""
    timestamp: float = field(default_factory=time.time)  #: when the task wrote the line
    attempt: int = 1
