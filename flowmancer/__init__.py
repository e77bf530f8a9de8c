"""Flowmancer: run Python tasks in parallel processes, ordered by a YAML job definition.

Names are imported lazily (PEP 562) so that ``flowmancer --version`` and plugins that only need
``hookimpl`` do not pay for pydantic and the rest. ``flowmancer.task`` is the module (as in the original
project): ``from flowmancer.task import Task, task``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "1.0.0.dev0"

_LAZY = {
    "Flowmancer": "driver",
    "Task": "task",
    "ExecutionState": "states",
    "LogRecord": "states",
    "Severity": "states",
    "TaskResult": "states",
    "ExitCode": "exitcode",
    "hookimpl": "markers",
}

if TYPE_CHECKING:
    from . import hookspec
    from .driver import Flowmancer
    from .exitcode import ExitCode
    from .markers import hookimpl
    from .states import ExecutionState, LogRecord, Severity, TaskResult
    from .task import Task


def __getattr__(name: str) -> Any:
    if name == "hookspec":
        return importlib.import_module(".hookspec", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowmancer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
]
