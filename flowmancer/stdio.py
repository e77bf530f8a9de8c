"""The runner's own stdout and stderr: a reader that goes away never ends a run.

``flowmancer -j job.yaml | head -1`` closes the pipe after a line; a closed terminal or ssh session makes
writes fail with EIO; a full disk fails them with ENOSPC. Each time the run goes on and ends with the job's
own exit code: output to that stream stops, and its descriptor is pointed at /dev/null so that the
interpreter's last flush at exit cannot fail either. A character the stream's encoding cannot hold
(``PYTHONIOENCODING=ascii``) is written as a replacement (``?``) instead of failing.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, Iterable, Optional, TextIO


class Guarded:
    """A text stream (``sys.stdout``/``sys.stderr``) whose write errors end its output, not the run."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name
        self.broken = False

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, s: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(s)
            except UnicodeEncodeError:
                return self._write_replaced(s)
            except (OSError, ValueError) as exc:
                self._broke(exc)
        return len(s)

    def _write_replaced(self, s: str) -> int:
        encoding = getattr(self._stream, "encoding", None) or "ascii"
        try:
            self._stream.write(s.encode(encoding, "replace").decode(encoding))
        except (OSError, ValueError) as exc:
            self._broke(exc)
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._broke(exc)

    def _broke(self, exc: BaseException) -> None:
        self.broken = True
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)  # whatever is still buffered, and C-level writes, go nowhere without error
        finally:
            os.close(devnull)
        quiet = (errno.EPIPE, errno.EIO, errno.ENXIO)  # the reader or the terminal is gone: nothing to say
        if isinstance(exc, OSError) and exc.errno not in quiet and self._name == "stdout":
            try:
                print(f"flowmancer: stdout: {exc.strerror}; the run goes on without printing", file=sys.stderr)
            except (OSError, ValueError):
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard() -> tuple[Optional[TextIO], Optional[TextIO]]:
    """Put ``Guarded`` wrappers on ``sys.stdout`` and ``sys.stderr``; return what was there for ``restore``."""
    saved = (sys.stdout, sys.stderr)
    if sys.stdout is not None and not isinstance(sys.stdout, Guarded):
        sys.stdout = Guarded(sys.stdout, "stdout")  # type: ignore[assignment]
    if sys.stderr is not None and not isinstance(sys.stderr, Guarded):
        sys.stderr = Guarded(sys.stderr, "stderr")  # type: ignore[assignment]
    return saved


def restore(saved: tuple[Optional[TextIO], Optional[TextIO]]) -> None:
    """Flush through the wrappers (so a closed reader is found now, not by the interpreter at exit), then put
    the streams back."""
    out, err = sys.stdout, sys.stderr
    for stream in (out, err):
        if isinstance(stream, Guarded):
            stream.flush()
    if isinstance(out, Guarded) and out.wrapped is saved[0]:
        sys.stdout = saved[0]  # type: ignore[assignment]
    if isinstance(err, Guarded) and err.wrapped is saved[1]:
        sys.stderr = saved[1]  # type: ignore[assignment]


def printable(text: str) -> str:
    """``text`` with what could act on a terminal escaped: control characters (an ANSI escape sequence starts
    with one), bidi overrides such as U+202E and other invisible format characters become ``\\x1b``,
    ``\\u202e``. For names and output shown on the terminal; log files keep the bytes as written."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode("ascii") for c in text)
