"""Built-in plugin ``retry``: the retry policy of each task.

``max_attempts`` attempts; the wait before attempt n+1 is ``backoff * backoff_factor ** (n - 1)``, capped
at ``backoff_max`` and randomised by up to ``backoff_jitter`` (a fraction). ``retry_on`` (only these) and
``no_retry_on`` (never these) name exception classes (short or dotted names, base classes match
subclasses) or the words ``timeout`` and ``crash``.
"""

from __future__ import annotations

import math
import random
from typing import Literal, Optional, Union

from .job import Job, TaskRun
from .jobdef import MAX_SECONDS
from .markers import hookimpl
from .states import TaskResult

#: no wait between attempts is longer than this (a large backoff_factor grows past any number)
MAX_DELAY = MAX_SECONDS


def retry_delay(attempt: int, backoff: float, factor: float, cap: Optional[float], jitter: float) -> float:
    try:
        delay = backoff * factor ** (attempt - 1)
    except OverflowError:
        delay = math.inf
    delay = min(delay, MAX_DELAY if cap is None else cap)
    if jitter:
        delay *= 1 + random.uniform(-jitter, jitter)
    return max(0.0, delay)


def failure_names(result: TaskResult) -> set[str]:
    return {*result.exception_types, result.failure_kind or "exception"}


@hookimpl(trylast=True)
def flowmancer_task_retry(job: Job, task: TaskRun, result: TaskResult) -> Union[float, Literal[False]]:
    s = task.settings
    if task.attempt >= s.max_attempts:
        return False
    names = failure_names(result)
    if names & set(s.no_retry_on):
        return False
    if s.retry_on is not None and not names & set(s.retry_on):
        return False
    return retry_delay(task.attempt, s.backoff, s.backoff_factor, s.backoff_max, s.backoff_jitter)
