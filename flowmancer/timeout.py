"""Built-in plugin ``timeout``: the task's ``timeout`` setting (or ``config.task_defaults.timeout``)."""

from __future__ import annotations

from typing import Literal, Union

from .job import Job, TaskRun
from .markers import hookimpl


@hookimpl(trylast=True)
def flowmancer_task_timeout(job: Job, task: TaskRun) -> Union[float, Literal[False]]:
    timeout = task.settings.timeout
    return False if timeout is None else timeout
