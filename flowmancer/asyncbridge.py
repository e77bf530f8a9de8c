"""One background event loop per run for the coroutines of loggers, extensions and checkpointers.

The scheduler thread only appends to a deque; the loop thread moves work into one queue per component
and runs it in order. A slow or failing component therefore never stalls scheduling, and ``close()``
delivers everything before the run ends.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional


class AsyncBridge:
    def __init__(self, on_error: Callable[[str, str, BaseException], None]) -> None:
        self.loop = asyncio.new_event_loop()
        # Blocking calls a component hands off (asyncio.to_thread: the notifiers) run here; shut down with the
        # loop, so a run leaves no idle thread in the process (the next run in it, a --watch rerun, would
        # otherwise count as multi-threaded and never fork its tasks itself: see localexec).
        self._executor = ThreadPoolExecutor(thread_name_prefix="flowmancer-async-call")
        self.loop.set_default_executor(self._executor)
        self._inbox: deque[tuple[str, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_pending = False
        self._queues: dict[str, asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...]]]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._failed: set[str] = set()
        self._on_error = on_error
        self._thread = threading.Thread(target=self.loop.run_forever, name="flowmancer-async", daemon=True)
        self._thread.start()
        self._closed = False

    # scheduler thread ---------------------------------------------------------------------------

    def call(self, key: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` (sync or async) after everything already queued under ``key``.

        Delivery starts at the next ``flush()`` (the scheduler flushes before it waits for events), so a
        burst of calls costs one wake-up of the loop thread, not one each.
        """
        if not self._closed:
            self._inbox.append((key, fn, args))

    def flush(self) -> None:
        """Wake the loop thread for what ``call`` queued."""
        if self._inbox and not self._wake_pending and not self._closed:
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._pump)

    def run_now(self, fn: Callable[..., Any], *args: Any, timeout: Optional[float] = None) -> Any:
        """Run ``fn(*args)`` on the loop and wait for its result (for reads that must happen first)."""
        self.flush()

        async def call() -> Any:
            r = fn(*args)
            return await r if inspect.isawaitable(r) else r

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver everything queued, then stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:  # _drain pumps the inbox itself
            asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result(timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()
            self._executor.shutdown(wait=False, cancel_futures=True)  # a call still hanging ends on its own

    # loop thread --------------------------------------------------------------------------------

    def _pump(self) -> None:
        self._wake_pending = False
        while self._inbox:
            key, fn, args = self._inbox.popleft()
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = asyncio.Queue()
                self._workers.append(self.loop.create_task(self._work(key, q)))
            q.put_nowait((fn, args))

    async def _work(self, key: str, q: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        while True:
            fn, args = await q.get()
            try:
                r = fn(*args)
                if inspect.isawaitable(r):
                    await r
            except Exception as exc:  # noqa: BLE001 - a component's bug must not stop the job
                if key not in self._failed:
                    self._failed.add(key)
                    self._on_error(key, getattr(fn, "__name__", "call"), exc)
            finally:
                q.task_done()

    async def _drain(self) -> None:
        self._pump()
        for q in list(self._queues.values()):
            await q.join()
        for w in self._workers:
            w.cancel()
