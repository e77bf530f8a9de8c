"""Execution events for ``Extension.update``: every task state change."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..states import ExecutionState

__all__ = ["ExecutionState", "ExecutionStateTransition", "SerializableExecutionEvent"]


@dataclass(frozen=True)
class SerializableExecutionEvent:
    pass


@dataclass(frozen=True)
class ExecutionStateTransition(SerializableExecutionEvent):
    name: str  #: the task's instance name
    from_state: ExecutionState
    to_state: ExecutionState
    timestamp: float = field(default_factory=time.time)
