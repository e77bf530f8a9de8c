"""SIGINT, SIGTERM and SIGHUP as a readable pipe: the scheduler wakes up and aborts in an orderly way."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any


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
