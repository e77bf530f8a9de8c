"""SIGINT, SIGTERM and SIGHUP as a readable pipe: the scheduler wakes up and aborts in an orderly way."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

#: Ctrl-C while the runner starts, remembered: the ``KeyboardInterrupt`` it raises is lost when it lands in a
#: callback (Python only prints "Exception ignored" for one raised in an import lock's weakref callback, say)
_EARLY: list[int] = []


def _early(signum: int, frame: Any) -> None:
    _EARLY.append(signum)
    raise KeyboardInterrupt


def _unraisable(args: Any) -> None:
    """An exception Python cannot raise (in a callback): the remembered Ctrl-C is taken up later, quietly."""
    if isinstance(args.exc_value, KeyboardInterrupt) and _EARLY:
        return
    sys.__unraisablehook__(args)


def catch_early() -> Any:
    """Until the scheduler watches signals itself: Ctrl-C raises ``KeyboardInterrupt`` as usual and is
    remembered, so that one Python swallowed (it lands in a callback) still stops the run: ``SignalWatch``
    takes it up, and Python's "Exception ignored" report of it is not printed. Returns what to give
    ``release_early``."""
    _EARLY.clear()
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # a host's own handler: theirs
        return None
    old = (signal.signal(signal.SIGINT, _early), sys.unraisablehook)
    sys.unraisablehook = _unraisable
    return old


def release_early(old: Any) -> None:
    _EARLY.clear()
    if old is None:
        return
    if signal.getsignal(signal.SIGINT) is _early:
        signal.signal(signal.SIGINT, old[0])
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = old[1]


class SignalWatch:
    """While entered (in the main thread), the three signals are recorded in ``signals`` and wake ``r``."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.signals: list[int] = []
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)
        try:
            os.write(self.w, b"!")
        except OSError:
            pass

    def __enter__(self) -> SignalWatch:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, self._handler)
        if _EARLY:  # a Ctrl-C while starting that Python swallowed: abort now
            self._handler(_EARLY[0], None)
            _EARLY.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        os.close(self.r)
        os.close(self.w)

    def drain(self) -> None:
        try:
            while os.read(self.r, 64):
                pass
        except BlockingIOError:
            pass
