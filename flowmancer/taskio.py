"""What a task process talks through: its event sender, its ``sys.stdout``/``sys.stderr``, ``shared_dict``.

Only the task's own process reports. A process the task forks (``os.fork``, ``multiprocessing``) shares
its pipes: its output and ``logging`` records reach the task's log as the task's own, a ``shared_dict``
write from it is refused, and it never sends a result (``Sender``).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any, Optional

from . import messages


class Sender:
    """Sends events to the scheduler, from the task's own process only (``owner``, set when it starts)."""

    __slots__ = ("conn", "owner")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.owner = os.getpid()

    def __call__(self, event: messages.Event) -> None:
        if os.getpid() != self.owner:
            self._not_ours(event)
        else:
            self.conn.send(event)

    def pickled(self, data: bytes) -> None:
        """Send an event pickled in advance (the task's own process only)."""
        if os.getpid() == self.owner:
            self.conn.send_bytes(data)

    @staticmethod
    def _not_ours(event: messages.Event) -> None:
        if event["event"] == "shared":
            raise RuntimeError("shared_dict can only be changed by the task's own process, not by a process it started")


def text_stream(fd: int) -> io.TextIOWrapper:
    """A task's ``sys.stdout`` (``fd`` 1) or ``sys.stderr`` (2): a real text file on that descriptor, UTF-8,
    line-buffered, so each line reaches the pipe before the task's next statement (and in order with what
    is written to the descriptor directly). A character UTF-8 cannot hold (a lone surrogate) is written
    escaped rather than failing the task. Built before the fork (see ``worker.Attempt``); it closes nothing."""
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", errors="backslashreplace", line_buffering=True)


def _pickled(key: Any, value: Any) -> bytes:
    """``value`` as it travels to the scheduler, after checking that it comes back: a value that cannot is
    refused where the task writes it, with a traceback at that line, rather than failing the run later."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(
            f"shared_dict[{key!r}]: this value cannot be shared with other tasks: it cannot be pickled "
            f"({type(exc).__name__}: {exc})"
        ) from None
    try:
        pickle.loads(data)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(
            f"shared_dict[{key!r}]: this value cannot be shared with other tasks: it pickles but cannot be "
            f"unpickled ({type(exc).__name__}: {exc})"
        ) from None
    return data


class SharedDict(MutableMapping[Any, Any]):
    """A task's ``shared_dict``: the job's values as of the task's start; every change made through any
    mapping operation (``[k] = v``, ``del``, ``update``, ``|=``, ``pop``, ``setdefault``, ``clear`` ...)
    reaches the scheduler at once. Built on ``MutableMapping`` so that no method can change it without
    going through ``__setitem__``/``__delitem__``; ``dict(sd)`` or ``sd.copy()`` give a plain dict.

    The fork server keeps its replica in one of these (changed through ``data``, so nothing is sent); each
    task process it forks points ``send`` at its own pipe and uses the replica without a copy."""

    __slots__ = ("data", "send")

    def __init__(self, data: dict[Any, Any], send: Optional[Sender]) -> None:
        self.data = data  # not copied: a forked task has its own copy already
        self.send: Any = send

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        pickled = _pickled(key, value)
        self.send(messages.shared_set(key, pickled))
        self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.data[key]
        self.send(messages.shared_del(key))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: Any, default: Any = None) -> Any:
        return self.data.get(key, default)

    def keys(self) -> KeysView[Any]:
        return self.data.keys()

    def values(self) -> ValuesView[Any]:
        return self.data.values()

    def items(self) -> ItemsView[Any, Any]:
        return self.data.items()

    def clear(self) -> None:
        for key in list(self.data):
            del self[key]

    def copy(self) -> dict[Any, Any]:
        return dict(self.data)

    def __ior__(self, other: Any) -> SharedDict:
        self.update(other)
        return self

    def __or__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {**self.data, **other}

    def __ror__(self, other: Any) -> dict[Any, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {**other, **self.data}

    def __repr__(self) -> str:
        return repr(self.data)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (to another process) as the plain dict it holds
        return (dict, (dict(self.data),))
