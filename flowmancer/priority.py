"""Built-in plugin ``priority``: which ready task starts first when ``max_concurrency`` or a pool leaves
fewer slots than there are ready tasks.

A task's ``priority: N`` (default 0; ``config.task_defaults.priority`` for every task) comes first: higher
starts first. Among equal priorities, ``config.priority_rule`` decides: ``critical_path`` (the default) starts
first the task with the longest chain of tasks after it, itself included (Airflow's ``weight_rule`` in spirit:
the work that bounds the job's end starts soonest); ``yaml`` leaves them in the order of the job file. Then
the order of the job file. Ranks are worked out once per run from the job's graph, so the order is the same
at every run of the same job. With ``-p no:priority`` ready tasks start in the job file's order.
"""

from __future__ import annotations

from typing import Literal

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
    waiting = {t.name: len(t.dependents) for t in job}
    stack = [name for name, n in waiting.items() if n == 0]
    length: dict[str, int] = {}
    tasks = job.tasks
    while stack:
        name = stack.pop()
        t = tasks[name]
        length[name] = 1 + max((length[d] for d in t.dependents), default=0)
        for dep in t.dependencies:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                stack.append(dep)
    return length


@hookimpl(tryfirst=True)
def flowmancer_job_start(job: Job) -> None:
    tasks = list(job)
    prioritised = any(t.settings.priority for t in tasks)
    rule = getattr(job.jobdef.model.config, "priority_rule", "critical_path")
    edges = rule == "critical_path" and any(t.dependents for t in tasks)
    if not prioritised and not edges:  # every rank would be the file's order (independent tasks)
        return
    length = chain_lengths(job) if edges else {}
    order = sorted(tasks, key=lambda t: (-t.settings.priority, -length.get(t.name, 1), t.index))
    for rank, t in enumerate(order):
        t.rank = rank
