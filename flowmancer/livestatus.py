"""The terminal's live status block: what runs now, counts per state, elapsed time.

Kept at the bottom of a TTY while finished-task lines scroll above it; redrawn at most 10 times a second
with plain ANSI (cursor up, clear to end of screen). Off when stdout is not a TTY, with ``NO_COLOR`` or
``--color no``, and with ``-q``.
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Callable, Optional

from .states import ExecutionState
from .stdio import printable

if TYPE_CHECKING:
    from .job import Job

S = ExecutionState
MIN_INTERVAL = 0.1  # at most 10 redraws a second
TICK = 1.0  # elapsed times move on at least once a second
MAX_SHOWN = 8


class LiveStatus:
    def __init__(self, stream: IO[str], paint: Callable[..., str]) -> None:
        self.stream = stream
        self.paint = paint
        self.drawn = 0  # lines of the block currently on screen
        self.last = 0.0
        self.dirty = False
        self.job: Optional[Job] = None

    def lines(self) -> list[str]:
        job = self.job
        if job is None:
            return []
        now = time.time()
        counts = []
        for state, colour in (
            (S.RUNNING, "BLUE"),
            (S.COMPLETED, "GREEN"),
            (S.FAILED, "RED"),
            (S.DEFAULTED, "YELLOW"),
            (S.ABORTED, "MAGENTA"),
            (S.SKIPPED, "CYAN"),
        ):
            n = job.count(state)
            if n:
                counts.append(self.paint(f"{n} {state.value.lower()}", colour))
        waiting = job.count(S.INIT, S.PENDING)
        if waiting:
            counts.append(f"{waiting} waiting")
        head = f"── {now - job.start_time:6.1f}s · " + " · ".join(counts) + " ──"
        out = [head]
        running = sorted(job.running.values(), key=lambda t: t.started_at or now)
        for t in running[:MAX_SHOWN]:
            elapsed = now - (t.started_at or now)
            out.append(f"  ▸ {printable(t.name)}  attempt {t.attempt}/{t.max_attempts}  {elapsed:.1f}s")
        if len(running) > MAX_SHOWN:
            out.append(f"  … and {len(running) - MAX_SHOWN} more running")
        from .pools import usage

        pools = usage(job)
        if pools:
            out.append(f"  {pools}")
        return out

    def clear(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def draw(self) -> None:
        lines = self.lines()
        self.clear()
        if lines:
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)
        self.last = time.monotonic()
        self.dirty = False

    def changed(self) -> None:
        """Something the block shows changed: redraw now unless the last redraw was very recent."""
        if time.monotonic() - self.last >= MIN_INTERVAL:
            self.draw()
        else:
            self.dirty = True

    def tick(self) -> Optional[float]:
        """Called when the scheduler is idle: redraw if due; say when to be called again."""
        if self.job is None:
            return None
        since = time.monotonic() - self.last
        if (self.dirty and since >= MIN_INTERVAL) or since >= TICK:
            self.draw()
            since = 0.0
        if self.dirty:
            return max(0.0, MIN_INTERVAL - since)
        return TICK - since if self.job.running else None
