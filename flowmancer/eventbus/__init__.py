"""Events delivered to ``Logger`` and ``Extension`` classes (the original project's import paths)."""

from .execution import ExecutionState, ExecutionStateTransition, SerializableExecutionEvent
from .log import LogEndEvent, LogStartEvent, LogWriteEvent, SerializableLogEvent, Severity

__all__ = [
    "ExecutionState",
    "ExecutionStateTransition",
    "LogEndEvent",
    "LogStartEvent",
    "LogWriteEvent",
    "SerializableExecutionEvent",
    "SerializableLogEvent",
    "Severity",
]
