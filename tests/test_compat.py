"""The original project's public import paths and names (COMPAT.md)."""

from __future__ import annotations

import dataclasses


def test_import_paths():
    from flowmancer import Flowmancer  # noqa: F401
    from flowmancer.checkpointer import (  # noqa: F401
        CheckpointContents,
        Checkpointer,
        NoCheckpointAvailableError,
        checkpointer,
    )
    from flowmancer.checkpointer.checkpointer import Checkpointer as C2  # noqa: F401
    from flowmancer.checkpointer.file import FileCheckpointer  # noqa: F401
    from flowmancer.eventbus.execution import (  # noqa: F401
        ExecutionState,
        ExecutionStateTransition,
        SerializableExecutionEvent,
    )
    from flowmancer.eventbus.log import (  # noqa: F401
        LogEndEvent,
        LogStartEvent,
        LogWriteEvent,
        SerializableLogEvent,
        Severity,
    )
    from flowmancer.extensions import Extension, extension  # noqa: F401
    from flowmancer.extensions.extension import Extension as E2  # noqa: F401
    from flowmancer.loggers import Logger, logger  # noqa: F401
    from flowmancer.loggers.file import FileLogger  # noqa: F401
    from flowmancer.loggers.logger import Logger as L2  # noqa: F401
    from flowmancer.task import Task, task  # noqa: F401


def test_event_base_classes_where_the_original_imported_them():
    """The original's ``loggers/logger.py`` and ``extensions/extension.py`` imported these (made on first use)."""
    from flowmancer.eventbus.execution import SerializableExecutionEvent as E
    from flowmancer.eventbus.log import SerializableLogEvent as L
    from flowmancer.extensions.extension import SerializableExecutionEvent as E3
    from flowmancer.loggers.logger import SerializableLogEvent as L3

    assert (E3, L3) == (E, L)


def test_names_and_shapes():
    from flowmancer.checkpointer import CheckpointContents
    from flowmancer.eventbus.execution import ExecutionState, ExecutionStateTransition
    from flowmancer.eventbus.log import LogEndEvent, LogStartEvent, LogWriteEvent, Severity

    assert [s.name for s in Severity] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    for name in ["INIT", "PENDING", "RUNNING", "COMPLETED", "FAILED", "DEFAULTED", "ABORTED", "SKIP", "SKIPPED"]:
        assert hasattr(ExecutionState, name)
    assert ExecutionState.SKIP is ExecutionState.SKIPPED
    w = LogWriteEvent("t", Severity.ERROR, "m")
    assert (w.name, w.severity, w.message) == ("t", Severity.ERROR, "m")
    assert LogStartEvent("t").name == "t" and LogEndEvent("t").name == "t"
    tr = ExecutionStateTransition("t", ExecutionState.INIT, ExecutionState.PENDING)
    assert (tr.name, tr.from_state, tr.to_state) == ("t", ExecutionState.INIT, ExecutionState.PENDING)
    assert dataclasses.is_dataclass(CheckpointContents)
    assert [f.name for f in dataclasses.fields(CheckpointContents)] == ["name", "states", "shared_dict"]


def test_decorators_refuse_wrong_classes():
    import pytest

    from flowmancer.checkpointer import checkpointer
    from flowmancer.extensions import extension
    from flowmancer.loggers import logger
    from flowmancer.task import task

    for deco in (task, logger, extension, checkpointer):
        with pytest.raises(TypeError, match="needs a subclass"):
            deco(dict)
