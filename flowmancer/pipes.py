"""The event pipe between a task process and the scheduler: length-prefixed pickles, read without blocking.

A message the scheduler cannot unpickle (a class the task defined that the runner cannot import, a value
whose unpickling raises) never crashes the runner: it becomes an ``unreadable`` event, and the task's
attempt fails with what went wrong.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any, Union

from . import messages

_HEADER = struct.Struct("!i")  # multiprocessing Connection's header for messages under 2 GiB
_READ_CHUNK = 1 << 16


def unpickle(data: Union[bytes, bytearray]) -> Any:
    """A message, or an ``unreadable`` event saying why it is not one."""
    try:
        return pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - whatever the task sent, the runner goes on
        return messages.unreadable(f"{type(exc).__name__}: {exc}")


class PipeWriter:
    """The writing end of a ``multiprocessing.connection.Connection`` without its machinery: the same
    framing (a 4-byte big-endian length, then a pickle), but a freshly forked child touches (and so copies)
    far fewer pages to send its first event."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, obj: Any) -> None:
        self.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        os.close(self.fd)


class PipeReader:
    """The scheduler's end of a ``PipeWriter``: a plain pipe read without blocking. ``Connection.poll`` and
    ``recv`` cost four system calls per event and ``recv`` waits for the rest of a message, so a task
    stopped half-way through writing a large event would stall the scheduler; this reads what is there."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._buf = bytearray()

    def fileno(self) -> int:
        return self.fd

    def read(self) -> tuple[list[Any], bool]:
        """The messages complete so far, and whether every writer has closed its end."""
        eof = False
        while True:
            try:
                chunk = os.read(self.fd, _READ_CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self._buf += chunk
            if len(chunk) < _READ_CHUNK:  # a pipe gives all it holds: what comes next wakes the scheduler
                break
        buf, pos, out = self._buf, 0, []
        while len(buf) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, pos)
            end = pos + _HEADER.size + size
            if len(buf) < end:
                break
            out.append(unpickle(buf[pos + _HEADER.size : end]))
            pos = end
        del buf[:pos]
        return out, eof

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ConnectionReader:
    """``PipeReader``'s interface over a ``multiprocessing`` connection (the spawn start method, where the
    child is handed a ``Connection``)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def read(self) -> tuple[list[Any], bool]:
        out: list[Any] = []
        try:
            while self.conn.poll():
                out.append(unpickle(self.conn.recv_bytes()))
        except (EOFError, OSError):
            return out, True
        return out, False

    def close(self) -> None:
        self.conn.close()
