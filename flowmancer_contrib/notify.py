"""The base of the contrib notifiers: an ``Extension`` that sends a message when the job starts and ends.

Sending happens off the scheduler: messages go into a bounded queue (``max_pending``; more are dropped,
and that is reported) drained in order by one sender on the background loop, blocking clients in a worker
thread, each send cut off after ``timeout`` seconds. A failing endpoint is reported once and never fails
the job. What is queued is delivered (or timed out) before the run exits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import sys
import urllib.request
from abc import abstractmethod
from collections import Counter
from typing import Any, Awaitable, Optional, Union

from pydantic import PrivateAttr

from flowmancer.config import Config
from flowmancer.eventbus.execution import ExecutionStateTransition
from flowmancer.extensions import Extension
from flowmancer.states import ExecutionState

FINAL = {s.value for s in ExecutionState if s.is_final}


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with the standard library; raise unless the answer is 2xx."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's configured URL
        status: int = resp.status
    if not 200 <= status < 300:
        raise OSError(f"HTTP {status} from {url}")
    return status


def add_extension(config: Config, name: str, obj: Extension) -> None:
    """Used by the ``-p`` form of a notifier: add it as if it were in the YAML ``extensions:`` block."""
    from flowmancer import components

    components.add_extension(config, name, obj)


class Notification(Extension):
    notify_on_start: bool = True
    notify_on_success: bool = True
    notify_on_failure: bool = True
    notify_on_abort: bool = True
    timeout: float = 10.0
    max_pending: int = 100

    _queue: Optional[asyncio.Queue[tuple[str, str]]] = PrivateAttr(default=None)
    _sender: Optional[asyncio.Task[None]] = PrivateAttr(default=None)
    _states: dict[str, str] = PrivateAttr(default_factory=dict)
    _reported: bool = PrivateAttr(default=False)
    _dropped: int = PrivateAttr(default=0)

    @abstractmethod
    def send_notification(self, title: str, msg: str) -> Union[None, Awaitable[None]]:
        """Deliver one message; blocking clients are fine (they run in a worker thread)."""

    # what to say -----------------------------------------------------------------------------------

    def summary(self) -> str:
        """Counts per state, then the tasks that did not complete, named (at most 10)."""
        counts = Counter(self._states.values())
        text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no tasks finished"
        bad = [name for name, s in self._states.items() if s in ("FAILED", "DEFAULTED", "ABORTED")]
        if bad:
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            text += f"; not completed: {', '.join(bad[:10])}{more}"
        return text

    def _now(self) -> str:
        return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")

    async def update(self, evt: Any) -> None:
        if isinstance(evt, ExecutionStateTransition):
            self._states[evt.name] = evt.to_state.value

    async def on_create(self) -> None:
        if self.notify_on_start:
            self.notify("Flowmancer Job Notification: STARTING", f"Job '{self.job_name}' initiated at {self._now()}")

    async def on_success(self) -> None:
        if self.notify_on_success:
            self.notify(
                "Flowmancer Job Notification: SUCCESS",
                f"Job '{self.job_name}' completed successfully at {self._now()}: {self.summary()}",
            )

    async def on_failure(self) -> None:
        if self.notify_on_failure:
            self.notify(
                "Flowmancer Job Notification: FAILURE",
                f"Job '{self.job_name}' failed at {self._now()}: {self.summary()}",
            )

    async def on_abort(self) -> None:
        if self.notify_on_abort:
            self.notify(
                "Flowmancer Job Notification: ABORTED",
                f"Job '{self.job_name}' aborted at {self._now()}: {self.summary()}",
            )

    async def on_destroy(self) -> None:
        if self._queue is None or self._sender is None:
            return
        try:  # each send has its own timeout; do not let a dead endpoint hold the exit for long
            await asyncio.wait_for(self._queue.join(), self.timeout * min(self._queue.qsize() + 1, 3))
        except TimeoutError:
            self._report(f"{self._queue.qsize()} notifications still pending at exit were dropped")
        self._sender.cancel()

    # how it is sent ---------------------------------------------------------------------------------

    def notify(self, title: str, msg: str) -> None:
        """Queue one message without waiting for it; messages are sent in order."""
        if self._queue is None:
            self._queue = asyncio.Queue(max(1, self.max_pending))
            self._sender = asyncio.get_running_loop().create_task(self._drain(self._queue))
        try:
            self._queue.put_nowait((title, msg))
        except asyncio.QueueFull:
            self._dropped += 1
            if self._dropped == 1:
                self._report(f"more than {self.max_pending} messages pending; dropping messages")

    async def _drain(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        while True:
            title, msg = await queue.get()
            try:
                await self._send(title, msg)
            finally:
                queue.task_done()

    async def _send(self, title: str, msg: str) -> None:
        try:
            if inspect.iscoroutinefunction(self.send_notification):
                await asyncio.wait_for(self.send_notification(title, msg), self.timeout)  # type: ignore[arg-type]
            else:
                await asyncio.wait_for(asyncio.to_thread(self.send_notification, title, msg), self.timeout)
        except TimeoutError:
            self._report(f"no answer within {self.timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - a notification must never fail the job
            self._report(f"{type(exc).__name__}: {exc}")

    def _report(self, what: str) -> None:
        if not self._reported:
            self._reported = True
            print(
                f"WARNING: {type(self).__name__} could not send a notification: {what} (the job goes on)",
                file=sys.stderr,
            )
