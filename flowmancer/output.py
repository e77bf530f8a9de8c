"""What a task writes, on its way to the log: two pipes, one per file descriptor, read in true order.

A task process's descriptor 1 is one pipe and descriptor 2 another, and everything it writes goes down
one of them: ``print``/``sys.stdout`` (line-buffered, so each line is in the pipe before the next
statement runs), ``sys.stderr``, and what C code, subprocesses or faulthandler write to the same
descriptors. The kernel keeps the order of writes to one pipe, so each stream arrives exactly as written.
Records that carry more than text (a ``logging`` record's level and time, a failure's traceback) travel
in-band on the stdout pipe as one framed line (``frame``): they keep their place among the ``print``
lines around them.

Streams and severities: ``stdout`` INFO, ``stderr`` ERROR (whoever wrote it, Python or not), framed
records their own (``logger``: ``self.logger``; ``logging``: other loggers; ``traceback``: ERROR).
Between the two pipes the order is the order the runner read them in: the kernel keeps no order across
pipes, and one pipe for both would lose which stream a C library's line came from.
"""

from __future__ import annotations

import os
import time
from typing import Optional

from . import messages

#: starts a framed record; a line can hold one after text (a partial line written before the record)
MARK = "\x00fm\x1e"
_SEP = "\x00"  # between the lines of a framed record (the record itself is one line)
_SEVERITIES = frozenset(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
_STREAMS = frozenset(("logger", "logging", "traceback"))
_CHUNK = 1 << 16
#: reads per wake-up: a task flooding its output lets the scheduler handle the rest between reads
_READS = 4
#: a longer line is logged in pieces of this size: a task writing without line ends cannot exhaust memory
MAX_LINE = 64 << 20
#: reads once the task is gone: what is in the pipe, but not forever from a process it left behind
_FINAL_READS = 256


def frame(stream: str, severity: str, lines: list[str], ts: float) -> str:
    """A record as the task writes it to its stdout: one line, read back by ``OutputReader``."""
    text = _SEP.join(lines)
    if "\n" in text:
        text = text.replace("\n", _SEP)
    return f"{MARK}{stream} {severity} {ts!r} {text}\n"


def _parse(rec: str) -> Optional[messages.LogEvent]:
    """The framed record after ``MARK``; ``None`` when it is not one (the line is then kept as text)."""
    try:
        stream, severity, ts, text = rec.split(" ", 3)
        if severity not in _SEVERITIES or stream not in _STREAMS:
            return None
        return messages.log(stream, severity, text.split(_SEP), float(ts))
    except ValueError:
        return None


class OutputReader:
    """The runner's end of one of a task's output pipes: lines as ``log`` events, framed records as theirs,
    in the order written. Non-blocking; a partial line waits for its end (or the end of the pipe)."""

    __slots__ = ("fd", "stream", "severity", "buf", "open")

    def __init__(self, fd: int, stream: str, severity: str) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.stream = stream
        self.severity = severity
        self.buf = bytearray()
        self.open = True

    def fileno(self) -> int:
        return self.fd

    def read(self, events: list[messages.Event], final: bool = False, partial: bool = False) -> None:
        """Append what arrived to ``events``. ``final``: the writers are gone, read to the end; ``partial``:
        a line without its end yet counts as a line (the task has reported: it wrote nothing more)."""
        if not self.open:
            return
        buf = self.buf
        seen = len(buf)  # what is in ``buf`` already has no line end: look for one in what arrives only
        reads = 0
        while reads < (_FINAL_READS if final else _READS):
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                break
            if not chunk:
                final = True
                break
            buf += chunk
            reads += 1
            if len(chunk) < _CHUNK:  # the pipe is empty: what comes next wakes the scheduler
                break
        if final:
            self.open = False
        if final or partial or len(buf) > MAX_LINE:
            end = len(buf)
        else:
            end = buf.rfind(b"\n", seen) + 1
        if not end:
            return
        # One decode and one split for the whole read; a character cut by a read waits in ``buf`` whole.
        text = buf[: end - 1 if buf[end - 1] == 10 else end].decode("utf-8", "replace")
        del buf[:end]
        now = time.time()
        if MARK not in text:
            events.append(messages.log(self.stream, self.severity, text.split("\n"), now))
            return
        plain: list[str] = []
        for ln in text.split("\n"):
            if MARK not in ln:
                plain.append(ln)
                continue
            before, _, rec = ln.partition(MARK)
            if before:
                plain.append(before)
            ev = _parse(rec)
            if ev is None:
                plain.append(rec.replace(_SEP, " "))
                continue
            if plain:
                events.append(messages.log(self.stream, self.severity, plain, now))
                plain = []
            events.append(ev)
        if plain:
            events.append(messages.log(self.stream, self.severity, plain, now))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.open = False


def pipes() -> tuple[tuple[OutputReader, OutputReader], tuple[int, int]]:
    """The two output pipes of a task process: the runner's readers (stdout, stderr) and the write ends,
    which become the task's descriptors 1 and 2."""
    out_r, out_w = os.pipe()
    try:
        err_r, err_w = os.pipe()
    except OSError:
        os.close(out_r)
        os.close(out_w)
        raise
    return (OutputReader(out_r, "stdout", "INFO"), OutputReader(err_r, "stderr", "ERROR")), (out_w, err_w)
