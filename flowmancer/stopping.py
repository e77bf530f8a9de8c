"""How a run stops: an abort (a signal, ``job.stop(abort=True)``), a ``job.stop()``, and the tasks waiting to
retry that will not. A part of the ``Scheduler`` (its mixin), kept apart to be read on its own."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from .outcome import Stop, aborted_error
from .states import ExecutionState, TaskResult

if TYPE_CHECKING:
    from .executor import TaskHandle
    from .job import Job, TaskRun
    from .signalwatch import SignalWatch
    from .timers import Kind, Timers

S = ExecutionState


class Stopping:
    job: Job
    hook: Any
    aborting: bool
    open: int
    grace: float
    timers: Timers
    ready: list[tuple[int, str]]
    lingering: dict[int, tuple[TaskRun, TaskHandle]]
    _stop_done: bool

    def _timer(self, delay: float, kind: Kind, task: TaskRun) -> None:
        raise NotImplementedError

    def _stop(self) -> Stop:
        raise NotImplementedError

    def _abort(self, signum: int) -> None:
        """Stop the running tasks. ``signum`` 0: asked for by a plugin (``job.stop(abort=True)``)."""
        if self.aborting:  # second signal: no more patience
            for t in self.job.running.values():
                if t.handle is not None:
                    t.handle.kill()
            for _, h in self.lingering.values():
                h.kill()
            return
        self.aborting = True
        if signum:
            self.job.interrupted = signum
        for t in list(self.job.running.values()):
            if t.handle is not None:
                t.handle.terminate()
                self._timer(self.grace, "kill", t)
        for timer in self.timers.take("retry"):  # waiting for a retry: that attempt was the last
            self._retry_called_off(self.job.tasks[timer.task], S.ABORTED, aborted_error(self._stop()))
        self.ready.clear()

    def _honour_stop(self) -> None:
        """``job.stop()`` was asked for: tasks waiting for a retry give up (FAILED), nothing else starts."""
        if not self.job.stopping or self._stop_done:
            return
        self._stop_done = True
        for timer in self.timers.take("retry"):  # they give up: their last attempt's failure stands
            self._retry_called_off(self.job.tasks[timer.task], S.FAILED, None)
        self.ready.clear()
        if self.job.abort_requested and not self.aborting:
            self._abort(0)

    def _retry_called_off(self, task: TaskRun, state: ExecutionState, error: Optional[str]) -> None:
        """A task waiting to retry will not: its last attempt's report becomes its final one (``will_retry``
        false), in ``flowmancer_task_finish`` like any other."""
        last = task.result or TaskResult(name=task.name, state=state, attempt=task.attempt)
        final = dataclasses.replace(last, state=state, will_retry=False, retry_delay=None, error=error or last.error)
        task.result = final
        if task.history and task.history[-1] is last:
            task.history[-1] = final
        self.job.set_state(task, state)
        self.hook.flowmancer_task_finish(job=self.job, task=task, result=final)
        self.open -= 1

    def _take_signals(self, sigs: SignalWatch) -> None:
        while sigs.signals:
            self._abort(sigs.signals.pop(0))
