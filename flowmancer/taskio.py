"""What a task process talks through: its event sender, its ``sys.stdout``/``sys.stderr``, ``shared_dict``.

Only the task's own process reports. A process the task forks (``os.fork``, ``multiprocessing``) shares
its pipes; if it runs into this code, its output goes to the raw output stream, a ``shared_dict`` write
from it is refused, and it never sends a result (``Sender``).
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any, Optional

from . import messages
from .states import Severity


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
        if event["event"] == "log":  # as if written below Python: the scheduler reads it as raw output
            data = "".join(line + "\n" for line in event["lines"]).encode("utf-8", "replace")
            while data:
                data = data[os.write(2, data) :]
        elif event["event"] == "shared":
            raise RuntimeError("shared_dict can only be changed by the task's own process, not by a process it started")


class _Bytes(io.RawIOBase):
    """``sys.stdout.buffer``: bytes decoded as UTF-8 (a character split across writes is kept whole)."""

    def __init__(self, text: LineWriter) -> None:
        self._text = text
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._text.write(self._decoder.decode(data))
        return len(data)

    def fileno(self) -> int:
        return self._text.fileno()


class LineWriter(io.TextIOBase):
    """A task's ``sys.stdout`` or ``sys.stderr``: a text stream that sends complete lines; a partial line
    waits for its newline (or ``finish``). It has what code expects of a real one: ``buffer`` (bytes),
    ``fileno()`` (the descriptor below it, whose output the scheduler reads too), ``encoding``, ``isatty()``."""

    def __init__(self, send: Sender, stream: str, severity: Severity, fd: int = 1) -> None:
        self._send = send
        self._stream = stream
        self._severity = severity.value
        self._buf = ""
        self._fd = fd
        self._bytes: Optional[_Bytes] = None

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if "\n" not in s:
            self._buf += s
            return len(s)
        data = self._buf + s
        *lines, self._buf = data.split("\n")
        self._send(messages.log(self._stream, self._severity, lines))
        return len(s)

    def flush(self) -> None:  # complete lines are already sent; a partial line must not be split
        pass

    def finish(self) -> None:
        if self._buf:
            rest, self._buf = self._buf, ""
            self._send(messages.log(self._stream, self._severity, [rest]))

    @property
    def buffer(self) -> _Bytes:
        if self._bytes is None:
            self._bytes = _Bytes(self)
        return self._bytes

    def fileno(self) -> int:
        return self._fd

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    @property
    def line_buffering(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return f"<{self._stream}>"

    @property
    def mode(self) -> str:
        return "w"

    def isatty(self) -> bool:
        return False


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
