"""The scheduler (plugin ``runner``): an event loop over pipes, process sentinels and timers.

It never sleeps to poll. Each wake-up handles exactly what became ready; dependency bookkeeping is
a counter per task, so the cost per event does not grow with the size of the job.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import Any, Optional

from .events import ExecutionState, LogRecord, Severity, TaskResult
from .hookimpl import hookimpl
from .job import Job, TaskRun
from .spawn import describe_exit

S = ExecutionState
_SATISFIED = (S.COMPLETED, S.SKIPPED)
_BLOCKING = (S.FAILED, S.DEFAULTED, S.ABORTED)
ABORT_GRACE_SECONDS = 5.0


class _SignalWatch:
    """Turns SIGINT/SIGTERM into a readable pipe so the loop wakes up and aborts in an orderly way."""

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

    def __enter__(self) -> _SignalWatch:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
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


class Scheduler:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.hook = job.hook
        self.waiting: dict[str, int] = {}  # unsatisfied dependency count per task
        self.ready: list[tuple[int, str]] = []  # heap by YAML order
        self.timers: list[tuple[float, int, str]] = []  # retry delays
        self.by_waitable: dict[Any, TaskRun] = {}
        self.registered: dict[str, set[Any]] = {}  # waitables per running task
        self.finished_events: dict[str, dict[str, Any]] = {}
        self.open = 0  # tasks not yet in a final state
        self.aborting = False
        self.kill_at: Optional[float] = None
        self._seq = itertools.count()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _queue(self, task: TaskRun) -> None:
        self.job.set_state(task, S.PENDING)
        heapq.heappush(self.ready, (task.index, task.name))

    def _settle(self, task: TaskRun) -> None:
        """``task`` reached a final state: release or default its dependents."""
        self.open -= 1
        if task.state in _SATISFIED:
            for name in task.dependents:
                if name not in self.waiting:  # settled before the run (skipped, restored)
                    continue
                self.waiting[name] -= 1
                dep = self.job.tasks[name]
                if self.waiting[name] == 0 and dep.state is S.INIT:
                    self._queue(dep)
        elif task.state in _BLOCKING and not self.aborting:
            self._default_downstream(task)  # after an abort, dependents stay "not run": -r runs them

    def _default_downstream(self, failed: TaskRun) -> None:
        stack = [(failed.name, n) for n in failed.dependents]
        while stack:
            cause, name = stack.pop()
            t = self.job.tasks[name]
            if t.state is not S.INIT:
                continue
            self.job.set_state(t, S.DEFAULTED)
            t.result = TaskResult(
                name=t.name,
                state=S.DEFAULTED,
                attempt=t.attempt,
                error=f"not run: upstream task '{cause}' {self.job.tasks[cause].state.value.lower()}",
            )
            self.hook.flowmancer_task_finish(job=self.job, task=t, result=t.result)
            self.open -= 1
            stack.extend((name, n) for n in t.dependents)

    # -- starting --------------------------------------------------------------------------------

    def _start_ready(self) -> None:
        while self.ready and not self.aborting:
            _, name = self.ready[0]
            task = self.job.tasks[name]
            answers = self.hook.flowmancer_task_can_start(job=self.job, task=task)
            if False in answers:
                return
            heapq.heappop(self.ready)
            self._spawn(task)

    def _spawn(self, task: TaskRun) -> None:
        task.attempt += 1
        started = time.time()
        task.stash["start"] = started
        handle = self.hook.flowmancer_task_spawn(job=self.job, task=task)
        task.handle = handle
        self.job.running[task.name] = task
        self.registered[task.name] = set(handle.waitables())
        for w in self.registered[task.name]:
            self.by_waitable[w] = task
        self.job.set_state(task, S.RUNNING)
        self.hook.flowmancer_task_start(job=self.job, task=task)

    # -- events ----------------------------------------------------------------------------------

    def _handle(self, task: TaskRun, ready: set[Any]) -> None:
        assert task.handle is not None
        for ev in task.handle.read(ready):
            kind = ev["event"]
            if kind == "log":
                sev = Severity(ev["severity"])
                for line in ev["lines"]:
                    rec = LogRecord(task.name, task.attempt, ev["stream"], sev, line, ev["ts"])
                    self.hook.flowmancer_task_log(job=self.job, task=task, record=rec)
            elif kind == "shared":
                deleted = ev["op"] != "set"
                if deleted:
                    self.job.shared_dict.pop(ev["key"], None)
                else:
                    self.job.shared_dict[ev["key"]] = ev["value"]
                self.hook.flowmancer_task_shared_dict(
                    job=self.job, task=task, key=ev["key"], value=ev.get("value"), deleted=deleted
                )
            elif kind == "finished":
                self.finished_events[task.name] = ev
            elif kind == "exit":
                self._attempt_over(task, ev.get("exitcode"))
        if task.handle is not None:
            live = set(task.handle.waitables())
            for w in self.registered[task.name] - live:
                del self.by_waitable[w]
            self.registered[task.name] = live

    def _attempt_over(self, task: TaskRun, exitcode: Optional[int]) -> None:
        fin = self.finished_events.pop(task.name, None)
        for w in self.registered.pop(task.name, ()):
            self.by_waitable.pop(w, None)
        task.handle = None
        del self.job.running[task.name]
        result = TaskResult(
            name=task.name,
            state=S.COMPLETED,
            attempt=task.attempt,
            start=task.stash.get("start"),
            end=time.time(),
            exitcode=exitcode,
        )
        if fin is None:
            result.state = S.ABORTED if self.aborting else S.FAILED
            result.error = describe_exit(exitcode)
            if self.aborting:
                result.error = f"aborted ({result.error})"
        elif fin["aborted"] or (self.aborting and not fin["ok"]):
            result.state = S.ABORTED
            result.error = (
                f"aborted by {_signame(self.job.interrupted)}"
                if self.job.interrupted
                else "aborted: the task process received SIGTERM"
            )
        elif not fin["ok"]:
            result.state = S.FAILED
            result.error, result.traceback = fin["error"], fin["traceback"]
        delay: Optional[float] = None
        if result.state is S.FAILED and not self.aborting:
            delay = self.hook.flowmancer_task_retry(job=self.job, task=task, result=result)
        task.result = result
        task.history.append(result)
        if delay is not None:
            result.will_retry = True
            self.job.set_state(task, S.PENDING)
            self.hook.flowmancer_task_finish(job=self.job, task=task, result=result)
            heapq.heappush(self.timers, (time.monotonic() + max(0.0, float(delay)), next(self._seq), task.name))
            return
        self.job.set_state(task, result.state)
        self.hook.flowmancer_task_finish(job=self.job, task=task, result=result)
        self._settle(task)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, name = heapq.heappop(self.timers)
            heapq.heappush(self.ready, (self.job.tasks[name].index, name))

    # -- abort -----------------------------------------------------------------------------------

    def _abort(self, signum: int) -> None:
        if self.aborting:  # second signal: no more patience
            for t in self.job.running.values():
                if t.handle is not None:
                    t.handle.kill()
            return
        self.aborting = True
        self.job.interrupted = signum
        for t in list(self.job.running.values()):
            if t.handle is not None:
                t.handle.terminate()
        self.kill_at = time.monotonic() + ABORT_GRACE_SECONDS
        for _, _, name in self.timers:  # waiting for a retry: that attempt was the last
            t = self.job.tasks[name]
            self.job.set_state(t, S.ABORTED)
            self.open -= 1
        self.timers.clear()

    # -- loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        job = self.job
        for t in job:
            if t.state.is_final:
                continue
            self.open += 1
            self.waiting[t.name] = sum(1 for d in t.dependencies if job.tasks[d].state not in _SATISFIED)
        for t in job:  # tasks settled before the run (skipped, restored) may block others
            if t.state in _BLOCKING:
                self._default_downstream(t)
        for t in job:
            if t.state is S.INIT and self.waiting.get(t.name) == 0:
                self._queue(t)
        with _SignalWatch() as sigs:
            while self.open > 0 or job.running:
                if self.aborting and not job.running:
                    break
                self._start_ready()
                if not job.running and not self.timers:
                    if self.ready:
                        raise RuntimeError("a flowmancer_task_can_start hook refuses every task while none runs")
                    break
                deadline = self.timers[0][0] if self.timers else None
                if self.kill_at is not None:
                    deadline = min(deadline, self.kill_at) if deadline is not None else self.kill_at
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = set(wait([*self.by_waitable, sigs.r], timeout))
                if sigs.r in ready:
                    sigs.drain()
                self._take_signals(sigs)
                tasks = {id(self.by_waitable[w]): self.by_waitable[w] for w in ready if w in self.by_waitable}
                for task in tasks.values():
                    if task.handle is not None:
                        self._handle(task, ready)
                if self.kill_at is not None and time.monotonic() >= self.kill_at:
                    for t in job.running.values():
                        if t.handle is not None:
                            t.handle.kill()
                    self.kill_at = None
                self._fire_timers()
            self._take_signals(sigs)  # one that raced the last task's exit still counts

    def _take_signals(self, sigs: _SignalWatch) -> None:
        while sigs.signals:
            self._abort(sigs.signals.pop(0))


def _signame(signum: Optional[int]) -> str:
    return signal.Signals(signum).name if signum else "request"


@hookimpl(trylast=True)
def flowmancer_runjob(job: Job) -> bool:
    Scheduler(job).run()
    return True
