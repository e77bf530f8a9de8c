"""Built-in plugin ``timeout``: the task's ``timeout`` setting (or ``config.task_defaults.timeout``)."""

from __future__ import annotations

from typing import Optional

from .job import Job, TaskRun
from .markers import hookimpl


@hookimpl(trylast=True)
def flowmancer_task_timeout(job: Job, task: TaskRun) -> Optional[float]:
    return task.settings.timeout
