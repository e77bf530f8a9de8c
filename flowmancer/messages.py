"""The events an attempt sends to the scheduler, one type each, and the only place they are built.

An attempt's handle (``executor.TaskHandle.read``) returns them in order: ``log`` and ``shared`` while the
task runs, one ``finished`` (the task's own report, or a ``crash`` made for it when its process could not
report), and ``exit`` last, once the process is gone. ``unreadable`` stands for a message the scheduler
could not unpickle. They cross pipes and sockets pickled, so they are plain dicts (``TypedDict``): typed
for readers and mypy, as cheap as before for a freshly forked task process.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Optional, TypedDict, Union


class LogEvent(TypedDict):
    """Lines a task wrote, in order: ``stream`` is ``stdout``, ``stderr`` (whoever wrote them: Python, C code,
    subprocesses), ``logger`` (``self.logger``), ``logging`` (other loggers) or ``traceback``."""

    event: Literal["log"]
    stream: str
    severity: str
    lines: list[str]
    ts: float


class SharedEvent(TypedDict):
    """``shared_dict[key] = value`` (``op`` ``set``, the value pickled) or ``del shared_dict[key]``."""

    event: Literal["shared"]
    op: str
    key: Any
    pickled: bytes


class FinishedEvent(TypedDict):
    """The attempt's outcome. ``kind``: ``exception``, ``exit`` (``sys.exit``), ``crash`` or ``None``."""

    event: Literal["finished"]
    ok: bool
    aborted: bool
    error: Optional[str]
    traceback: Optional[str]
    kind: Optional[str]
    exc_types: list[str]


class _ExitRequired(TypedDict):
    event: Literal["exit"]
    exitcode: Optional[int]


class ExitEvent(_ExitRequired, total=False):
    """The process is gone (``exitcode`` as ``multiprocessing`` gives it: negative for a signal; ``None``
    when unknown, with a ``reason``). Always the last event of an attempt."""

    reason: str


class UnreadableEvent(TypedDict):
    """A message that could not be unpickled; the attempt fails with ``error``."""

    event: Literal["unreadable"]
    error: str


Event = Union[LogEvent, SharedEvent, FinishedEvent, ExitEvent, UnreadableEvent]


def log(stream: str, severity: str, lines: list[str], ts: Optional[float] = None) -> LogEvent:
    when = time.time() if ts is None else ts
    return {"event": "log", "stream": stream, "severity": severity, "lines": lines, "ts": when}


def shared_set(key: Any, pickled: bytes) -> SharedEvent:
    return {"event": "shared", "op": "set", "key": key, "pickled": pickled}


def shared_del(key: Any) -> SharedEvent:
    return {"event": "shared", "op": "del", "key": key, "pickled": b""}


def finished(
    ok: bool,
    aborted: bool = False,
    error: Optional[str] = None,
    traceback: Optional[str] = None,
    kind: Optional[str] = None,
    exc_types: Optional[list[str]] = None,
) -> FinishedEvent:
    return {
        "event": "finished",
        "ok": ok,
        "aborted": aborted,
        "error": error,
        "traceback": traceback,
        "kind": kind,
        "exc_types": exc_types or [],
    }


def crash(error: str) -> FinishedEvent:
    """The outcome of an attempt whose process could not report one itself."""
    return finished(False, error=error, kind="crash")


def exited(exitcode: Optional[int], reason: Optional[str] = None) -> ExitEvent:
    event: ExitEvent = {"event": "exit", "exitcode": exitcode}
    if reason is not None:
        event["reason"] = reason
    return event


def unreadable(error: str) -> UnreadableEvent:
    return {"event": "unreadable", "error": error}
