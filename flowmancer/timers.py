"""The scheduler's timers: retry waits, timeouts, kill deadlines and lingering processes, in one heap."""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Iterator, Literal, NamedTuple, Optional

#: ``retry``: the wait before the next attempt; ``timeout``: the attempt's limit; ``kill``: the grace an
#: attempt asked to stop has before SIGKILL; ``linger``: how long a process that reported success may take
#: to exit
Kind = Literal["retry", "timeout", "kill", "linger"]


class Timer(NamedTuple):
    when: float  # time.monotonic()
    seq: int  # ties are fired in the order they were set
    kind: Kind
    task: str
    attempt: int  # the attempt it was set for: a timer of an attempt that is over does nothing
    seconds: float  # the delay asked for (a timeout's limit, for its message)


class Timers:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def add(self, seconds: float, kind: Kind, task: str, attempt: int) -> None:
        when = time.monotonic() + max(0.0, seconds)
        heapq.heappush(self._heap, Timer(when, next(self._seq), kind, task, attempt, seconds))

    def due(self) -> Iterator[Timer]:
        """Take the timers whose time has come, earliest first."""
        now = time.monotonic()
        while self._heap and self._heap[0].when <= now:
            yield heapq.heappop(self._heap)

    def wait(self) -> Optional[float]:
        """Seconds until the next timer; ``None`` if there is none."""
        return max(0.0, self._heap[0].when - time.monotonic()) if self._heap else None

    def take(self, kind: Kind) -> list[Timer]:
        """Remove and return every timer of ``kind``, in the order they were set."""
        taken = sorted((t for t in self._heap if t.kind == kind), key=lambda t: t.seq)
        if taken:
            self._heap = [t for t in self._heap if t.kind != kind]
            heapq.heapify(self._heap)
        return taken

    def has(self, kind: Kind) -> bool:
        return any(t.kind == kind for t in self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
