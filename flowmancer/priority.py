"""Built-in plugin ``priority``: which ready task starts first when ``max_concurrency`` or a pool leaves
fewer slots than there are ready tasks.

A task's ``priority: N`` (default 0; ``config.task_defaults.priority`` for every task) comes first: higher
starts first. Among equal priorities, ``config.priority_rule`` decides: ``critical_path`` (the default) starts
first the task with the longest chain of tasks after it, itself included (Airflow's ``weight_rule`` in spirit:
the work that bounds the job's end starts soonest); ``yaml`` leaves them in the order of the job file. Then
the order of the job file. Ranks are worked out once per run from the job's graph, so the order is the same
at every run of the same job; the chains only when slots can be scarce (a ``max_concurrency``, pools): without
a limit every ready task starts at once, and 100,000 tasks' chains cost ~0.3 s. With ``-p no:priority``
ready tasks start in the job file's order.
"""

from __future__ import annotations

from typing import Literal

from .concurrency import limit
from .job import Job
from .jobdef.models import ConfigSchema
from .markers import hookimpl


@hookimpl
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    schema.add(
        "priority_rule",
        Literal["critical_path", "yaml"],
        "critical_path",
        help="among ready tasks of equal priority, which start first: the longest chain after it, or the file's order",
    )


def chain_lengths(job: Job) -> dict[str, int]:
    """Each task's longest chain of tasks after it, itself included (1 for a task nothing waits for)."""
    tasks = job.tasks
    waiting = {name: len(t.dependents) for name, t in tasks.items()}
    stack = [name for name, n in waiting.items() if n == 0]
    length: dict[str, int] = {}
    while stack:
        name = stack.pop()
        t = tasks[name]
        longest = 0
        for d in t.dependents:
            n = length[d]
            if n > longest:
                longest = n
        length[name] = longest + 1
        for dep in t.dependencies:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                stack.append(dep)
    return length


#: ranks pack (priority, chain length, file order) in one int: lower starts first
_FIELD = 1 << 24  # more tasks, or a longer chain, than any job has


@hookimpl(tryfirst=True)
def flowmancer_job_start(job: Job) -> None:
    tasks = list(job)
    prioritised = any(t.settings.priority for t in tasks)
    cfg = job.jobdef.model.config
    scarce = limit(job) > 0 or bool(getattr(cfg, "pools", None))
    by_chain = getattr(cfg, "priority_rule", "critical_path") == "critical_path"
    edges = scarce and by_chain and any(t.dependents for t in tasks)
    if not prioritised and not edges:  # the file's order: independent tasks, or every ready task starts at once
        return
    length = chain_lengths(job) if edges else {}
    for t in tasks:  # no sort: one int orders by priority, then chain length, then the file's order
        rest = (_FIELD - 1 - length.get(t.name, 1)) * _FIELD + t.index
        t.rank = -t.settings.priority * _FIELD * _FIELD + rest
