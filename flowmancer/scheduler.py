"""The scheduler (plugin ``scheduler``, formerly ``runner``): an event loop over pipes, process sentinels and timers.

It never sleeps to poll. Each wake-up handles exactly what became ready (a persistent epoll set, so a
wake-up costs O(ready), not O(running)); each task keeps counters of its settled dependencies, so
deciding whether it may run (its trigger rule) costs O(1) per event whatever the size of the job.
"""

from __future__ import annotations

import errno
import heapq
import pickle
import selectors
import time
from typing import Any, Optional

from . import messages
from .executor import TaskHandle
from .expanding import Expanding
from .hookrelay import answer
from .job import Job, TaskRun
from .markers import hookimpl
from .outcome import AttemptFacts, Stop, result_of
from .signalwatch import SignalWatch
from .states import ExecutionState, LogLines, Severity, TaskResult
from .stopping import Stopping
from .timers import Kind, Timers
from .triggers import BAD, decide
from .watcher import Watcher, fd_budget

__all__ = ["Scheduler", "decide"]

S = ExecutionState
#: ready tasks a start pass looks past when flowmancer_task_can_start holds them back
HOLD_SCAN = 32
#: the longest the scheduler waits at once (epoll's limit is ~24.8 days; a timer further away is waited for
#: in slices)
MAX_WAIT = 3600.0


class Scheduler(Stopping, Expanding):
    """Runs one job: starts what may start, watches what runs, settles what ends, until all is final."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.hook = job.hook
        self.done: dict[str, int] = {}
        self.bad: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.ready: list[tuple[int, str]] = []  # heap by rank (see priority)
        self.timers = Timers()
        self.watcher = Watcher()
        #: attempts that reported success and were settled while their process still exits: id -> (task, handle)
        self.lingering: dict[int, tuple[TaskRun, TaskHandle]] = {}
        self.facts: dict[str, AttemptFacts] = {}  # task -> what is known of its running attempt
        self.last_ts: dict[str, float] = {}  # task -> the time of its latest log line
        self.open = 0  # tasks not yet in a final state
        self.aborting = False
        self._stop_done = False
        #: seconds a task stopped by an abort or a timeout has to run on_abort before it is killed
        self.grace = job.jobdef.model.config.abort_grace_seconds
        self.fd_budget = fd_budget()
        self.reuse_asked: set[str] = set()  # tasks flowmancer_task_reuse was asked about
        self.per_line: Any = job.hook.flowmancer_task_log  # called only while a plugin implements it

    # -- dependency bookkeeping ----------------------------------------------------------------

    def _timer(self, delay: float, kind: Kind, task: TaskRun) -> None:
        self.timers.add(delay, kind, task.name, task.attempt)

    def _count(self, dependent: str, state: ExecutionState) -> None:
        self.done[dependent] += 1
        if state in BAD:
            self.bad[dependent] += 1
        if state is S.FAILED:
            self.failed[dependent] += 1

    def _apply(self, task: TaskRun, stack: list[TaskRun]) -> None:
        action = decide(
            task.settings.trigger,
            len(task.dependencies),
            self.done[task.name],
            self.bad[task.name],
            self.failed[task.name],
        )
        if action == "run":
            self.job.set_state(task, S.PENDING)
            heapq.heappush(self.ready, (task.rank, task.name))
        elif action in ("default", "skip"):
            state = S.DEFAULTED if action == "default" else S.SKIPPED
            culprits = [d for d in task.dependencies if self.job.tasks[d].state in BAD]
            why = (
                f"not run: upstream task '{culprits[0]}' {self.job.tasks[culprits[0]].state.value.lower()}"
                if action == "default"
                else f"not run: trigger {task.settings.trigger} and no dependency failed"
            )
            self.job.set_state(task, state)
            task.result = TaskResult(name=task.name, state=state, attempt=task.attempt, error=why)
            self.hook.flowmancer_task_finish(job=self.job, task=task, result=task.result)
            self.open -= 1
            stack.append(task)

    def _settle(self, task: TaskRun) -> None:
        """``task`` reached a final state: tell its dependents, and theirs if they settle too."""
        self.open -= 1
        if self.aborting:  # after an abort, dependents stay "not run": -r runs them
            return
        stack = [task]
        while stack:
            t = stack.pop()
            for name in t.dependents:
                dep = self.job.tasks[name]
                if dep.state is not S.INIT:
                    continue
                self._count(name, t.state)
                self._apply(dep, stack)

    def _settle_all(self, stack: list[TaskRun]) -> None:
        """Settle the tasks ``_apply`` defaulted or skipped right away, and their dependents in turn."""
        while stack:
            self.open += 1  # _apply counted them as settled already
            self._settle(stack.pop())

    # -- starting --------------------------------------------------------------------------------

    def _start_ready(self) -> None:
        started: list[TaskRun] = []
        held: list[tuple[int, str]] = []  # refused by flowmancer_task_can_start in this pass
        try:
            while self.ready and not self.aborting and not self.job.stopping:
                if len(self.job.running) + len(self.lingering) >= self.fd_budget:  # "no limit" has a limit too
                    return
                if False in self.hook.flowmancer_job_has_room(job=self.job):  # max_concurrency, say
                    return
                entry = self.ready[0]
                task = self.job.tasks[entry[1]]
                if task.attempt == 0 and task.name not in self.reuse_asked:  # once, when it first becomes ready
                    self.reuse_asked.add(task.name)
                    heapq.heappop(self.ready)
                    if self._expanded(task):  # a run-time fan-out: settled, the tasks it stands for applied
                        continue
                    heapq.heappush(self.ready, entry)
                    reused = self.hook.flowmancer_task_reuse(job=self.job, task=task)
                    if reused is not None:
                        heapq.heappop(self.ready)
                        self._reused(task, reused)
                        continue
                answers = self.hook.flowmancer_task_can_start(job=self.job, task=task)
                if False in answers:
                    # Held back: a later task may still start (a gate such as a resource pool refuses some tasks
                    # only). A per-task gate that refuses every task ends the pass after HOLD_SCAN refusals.
                    held.append(heapq.heappop(self.ready))
                    if len(held) >= HOLD_SCAN:
                        return
                    continue
                heapq.heappop(self.ready)
                try:
                    self._spawn(task)
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.EAGAIN) or not self.job.running:
                        raise
                    task.attempt -= 1  # out of file descriptors or processes: wait for one to end, then retry
                    heapq.heappush(self.ready, (task.rank, task.name))
                    self.fd_budget = max(1, len(self.job.running))
                    return
                started.append(task)
        finally:
            for entry in held:
                heapq.heappush(self.ready, entry)
            # Watched after the whole batch: a spawner may still be forking the first ones meanwhile.
            for task in started:
                if task.handle is not None:
                    self.watcher.watch(task, task.handle)

    def _reused(self, task: TaskRun, result: TaskResult) -> None:
        """Settled without running: an earlier run's result stands (``flowmancer_task_reuse``)."""
        if result.state is not S.COMPLETED:
            raise RuntimeError(f"flowmancer_task_reuse answered {result.state.value} for '{task.name}': only COMPLETED")
        task.result = result
        task.history.append(result)
        self.job.set_state(task, S.COMPLETED)
        self.hook.flowmancer_task_finish(job=self.job, task=task, result=result)
        self._settle(task)

    def _spawn(self, task: TaskRun) -> None:
        task.attempt += 1
        task.started_at = time.time()
        self.facts[task.name] = AttemptFacts(task.started_at)
        handle = answer(self.hook.flowmancer_task_spawn(job=self.job, task=task), "flowmancer_task_spawn")
        task.handle = handle
        self.job.running[task.name] = task
        self.watcher.add(handle)
        self.job.set_state(task, S.RUNNING)
        timeout = self.hook.flowmancer_task_timeout(job=self.job, task=task)
        if timeout is not None and timeout is not False and timeout > 0:  # False: no limit (see the hook)
            self._timer(float(timeout), "timeout", task)
        self.hook.flowmancer_task_start(job=self.job, task=task)

    def _forget(self, handle: TaskHandle) -> None:
        self.watcher.forget(handle)
        self.lingering.pop(id(handle), None)

    # -- events ----------------------------------------------------------------------------------

    def _handle(self, task: TaskRun, handle: TaskHandle, ready: set[Any]) -> None:
        settle = False
        for ev in handle.read(ready):
            if handle is not task.handle:  # settled already, its process is exiting: only the exit matters
                if ev["event"] == "exit":
                    self._forget(handle)
                    return
                continue
            if ev["event"] == "log":
                self._log(task, ev)
            elif ev["event"] == "shared":
                self._shared(task, ev)
            elif ev["event"] == "unreadable":
                self._unreadable(task, f"a message from the task could not be read: {ev['error']}")
            elif ev["event"] == "finished":
                facts = self.facts[task.name]
                facts.finished = ev
                settle = facts.may_settle_early(self.aborting)
            elif ev["event"] == "exit":
                self._forget(handle)
                self._attempt_over(task, ev.get("exitcode"))
                return
        if settle:
            # Its code is done: settle now and let dependents start while the process tears down. Output it
            # wrote before reporting is in its pipes already: log it first.
            for late in getattr(handle, "drain", list)():  # optional for a handle not made from TaskHandle
                if late["event"] == "log":
                    self._log(task, late)
            self.lingering[id(handle)] = (task, handle)
            self._timer(self.grace, "linger", task)
            self._attempt_over(task, 0)
        self.watcher.watch(task, handle)

    def _shared(self, task: TaskRun, ev: messages.SharedEvent) -> None:
        key, deleted = ev["key"], ev["op"] != "set"
        value = None
        if deleted:
            self.job.shared_dict.pop(key, None)
        else:
            try:
                value = pickle.loads(ev["pickled"])
            except Exception as exc:  # noqa: BLE001 - the task's value, not the runner's failure
                self._unreadable(task, f"shared_dict[{key!r}] as the task wrote it cannot be read back: {exc!r}")
                return
            self.job.shared_dict[key] = value
        self.hook.flowmancer_task_shared_dict(job=self.job, task=task, key=key, value=value, deleted=deleted)

    def _unreadable(self, task: TaskRun, error: str) -> None:
        """The task sent what the runner cannot read: its attempt fails with that, whatever it reports."""
        facts = self.facts[task.name]
        if facts.unreadable is None:
            facts.unreadable = error

    def _log(self, task: TaskRun, ev: messages.LogEvent) -> None:
        # Never earlier than the task's previous line: plain output is stamped when read, logging records when
        # made, and a task's log must not go back in time.
        ts = ev["ts"]
        last = self.last_ts.get(task.name)
        if last is not None and ts < last:
            ts = last
        self.last_ts[task.name] = ts
        lines = LogLines(task.name, task.attempt, ev["stream"], Severity(ev["severity"]), ev["lines"], ts)
        self.hook.flowmancer_task_output(job=self.job, task=task, lines=lines)
        if self.per_line.get_hookimpls():
            for rec in lines.records():
                self.per_line(job=self.job, task=task, record=rec)

    def _stop(self) -> Stop:
        return Stop(self.aborting, self.job.interrupted, self.job.stop_reason)

    def _attempt_over(self, task: TaskRun, exitcode: Optional[int]) -> None:
        task.handle = None
        del self.job.running[task.name]
        result = result_of(task.name, task.attempt, self.facts.pop(task.name), exitcode, self._stop())
        delay: Any = None
        if result.state is S.FAILED and not self.aborting:
            delay = self.hook.flowmancer_task_retry(job=self.job, task=task, result=result)
        task.result = result
        task.history.append(result)
        if delay is not None and delay is not False:  # False: a plugin forbids it (see the hook)
            result.will_retry = True
            result.retry_delay = float(delay)
            self.job.set_state(task, S.PENDING)
            self.hook.flowmancer_task_finish(job=self.job, task=task, result=result)
            self._timer(float(delay), "retry", task)
            return
        self.job.set_state(task, result.state)
        self.hook.flowmancer_task_finish(job=self.job, task=task, result=result)
        self._settle(task)

    def _fire_timers(self) -> None:
        for timer in self.timers.due():
            kind, name = timer.kind, timer.task
            task = self.job.tasks[name]
            current = task.attempt == timer.attempt and task.handle is not None
            if kind == "retry":
                heapq.heappush(self.ready, (task.rank, name))
            elif kind == "timeout" and current:
                assert task.handle is not None
                self.facts[name].timed_out = timer.seconds
                task.handle.terminate()  # on_abort runs in the task; then it is killed if still there
                self._timer(self.grace, "kill", task)
            elif kind == "kill" and current:
                assert task.handle is not None
                task.handle.kill()
            elif kind == "linger":  # reported success but its process does not end: stop waiting for it
                for t, h in list(self.lingering.values()):
                    if t is task and h is not task.handle:
                        h.kill()

    def _read_waiting(self) -> bool:
        """Read the handles that wait for news no waitable will signal (see ``TaskHandle.waiting``); ``True``
        if that made tasks ready."""
        before = len(self.ready)
        for task, handle in list(self.watcher.waiting.values()):
            if self.watcher.knows(handle):
                self._handle(task, handle, set())
        return len(self.ready) > before

    def _retry_pending(self) -> bool:
        return self.timers.has("retry")

    # -- loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        job = self.job
        for t in job:
            self.done[t.name] = self.bad[t.name] = self.failed[t.name] = 0
        for t in job:
            if not t.state.is_final:
                self.open += 1
        for t in job:  # tasks settled before the run (skipped, restored) count for their dependents
            if t.state.is_final:
                for name in t.dependents:
                    if not job.tasks[name].state.is_final:
                        self._count(name, t.state)
        stack: list[TaskRun] = []
        for t in job:
            if t.state is S.INIT:
                self._apply(t, stack)
        self._settle_all(stack)
        with SignalWatch() as sigs, self.watcher.selector:
            self.watcher.selector.register(sigs.r, selectors.EVENT_READ)
            while self.open > 0 or job.running or self.lingering:
                if self.aborting and not job.running and not self.lingering:
                    break
                self._start_ready()
                while self._read_waiting():  # an attempt that ended there may have made tasks ready
                    self._start_ready()
                self._honour_stop()
                if not job.running and not self.lingering and not self._retry_pending():
                    if self.ready and not job.stopping:
                        raise RuntimeError(
                            "a flowmancer_job_has_room or flowmancer_task_can_start hook refuses every task while "
                            "none runs"
                        )
                    break  # what timers are left belong to attempts that are over
                timeout = self.timers.wait()
                wake = [w for w in self.hook.flowmancer_runjob_idle(job=job) if w is not None]
                if wake:
                    timeout = min(wake) if timeout is None else min(timeout, *wake)
                if timeout is not None:
                    timeout = min(timeout, MAX_WAIT)
                ready, handles, signalled = self.watcher.select(timeout, skip=sigs.r)
                if signalled:
                    sigs.drain()
                self._take_signals(sigs)
                for task, handle in handles.values():
                    if self.watcher.knows(handle):
                        self._handle(task, handle, ready)
                self._fire_timers()
            self._take_signals(sigs)  # one that raced the last task's exit still counts


@hookimpl(trylast=True)
def flowmancer_runjob(job: Job) -> bool:
    Scheduler(job).run()
    return True
