"""The scheduler's part of a run-time fan-out: a ready task replaced by the tasks it stands for.

``flowmancer_task_expand`` answers with the new tasks; they get the task's dependencies (all done) and
dependents (which now wait for them, not for it), join ``job.tasks`` and are applied like any task that just
became ready; the task itself ends COMPLETED ("expanded into N tasks") without settling, since no dependent
counts it any more. An empty list leaves the dependents waiting for nothing of it. ``ExpandError`` fails the
task without running it (its dependents follow their trigger rules).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import ExpandError
from .states import ExecutionState as S
from .states import TaskResult

if TYPE_CHECKING:
    from .job import Job, TaskRun


class Expanding:
    """Mixed into ``Scheduler``: the names below are its."""

    job: Job
    open: int
    done: dict[str, int]
    bad: dict[str, int]
    failed: dict[str, int]

    def _apply(self, task: TaskRun, stack: list[TaskRun]) -> None: ...
    def _settle(self, task: TaskRun) -> None: ...
    def _settle_all(self, stack: list[TaskRun]) -> None: ...

    def _expanded(self, task: TaskRun) -> bool:
        """Ask whether ``task`` stands for others (once, when it first becomes ready); ``True`` if it did, or
        failed trying: either way it is settled and must not start."""
        job = self.job
        try:
            new = job.hook.flowmancer_task_expand(job=job, task=task)
        except ExpandError as exc:
            now = time.time()
            result = TaskResult(name=task.name, state=S.FAILED, start=now, end=now, error=str(exc))
            task.result = result
            task.history.append(result)
            job.set_state(task, S.FAILED)
            job.hook.flowmancer_task_finish(job=job, task=task, result=result)
            self._settle(task)
            return True
        if new is None:
            return False
        self._replace(task, new)
        return True

    def _replace(self, task: TaskRun, new: list[TaskRun]) -> None:
        job = self.job
        names = [t.name for t in new]
        for t in new:
            t.definition.dependencies, t.dependents = list(task.dependencies), list(task.dependents)
            job.tasks[t.name] = t
            self.done[t.name], self.bad[t.name], self.failed[t.name] = (
                self.done[task.name],
                self.bad[task.name],
                self.failed[task.name],
            )
            self.open += 1
        for name in task.dependencies:
            job.tasks[name].dependents.extend(names)
        waiting = [job.tasks[n] for n in task.dependents]
        for w in waiting:
            w.definition.dependencies = [n for n in w.dependencies if n != task.name] + names
        task.dependents = []
        now = time.time()
        plural = "" if len(new) == 1 else "s"
        result = TaskResult(
            name=task.name, state=S.COMPLETED, start=now, end=now, error=f"expanded into {len(new)} task{plural}"
        )
        task.result = result
        task.history.append(result)
        job.set_state(task, S.COMPLETED)
        job.hook.flowmancer_task_finish(job=job, task=task, result=result)
        self.open -= 1  # not settled: its dependents wait for the new tasks instead
        stack: list[TaskRun] = []
        for t in new:
            job.hook.flowmancer_task_added(job=job, task=t)
            if t.state.is_final:  # settled by a plugin (restored from a checkpoint)
                self._settle(t)
            else:
                self._apply(t, stack)
        if not new:
            for w in waiting:
                if w.state is S.INIT:
                    self._apply(w, stack)
        self._settle_all(stack)
