"""Built-in plugin ``retry``: ``max_attempts`` attempts per task, ``backoff`` seconds apart."""

from __future__ import annotations

from typing import Optional

from .events import TaskResult
from .hookimpl import hookimpl
from .job import Job, TaskRun


@hookimpl(trylast=True)
def flowmancer_task_retry(job: Job, task: TaskRun, result: TaskResult) -> Optional[float]:
    if task.attempt < task.max_attempts:
        return task.backoff
    return None
