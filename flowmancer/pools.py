"""Built-in plugin ``pools``: a task's ``resources:`` counted against ``config.pools`` on this machine.

``config.pools: {db: 2, gpu: 1}`` declares what there is; ``resources: {db: 1}`` on a task says what one of
its attempts holds while it runs. A task starts only when every resource it asks for has room, alongside
``max_concurrency``; an attempt gives its share back when it ends (a task waiting to retry holds nothing).
On Dask (``--executor dask``) the same ``resources:`` go to the Dask workers' resources instead, and the
pools are not required.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import PositiveInt

from .config import Config
from .errors import Problem, closest
from .job import Job, TaskRun
from .jobdef.models import ConfigSchema
from .markers import hookimpl
from .stash import StashKey
from .states import TaskResult

#: resource -> amount held by the running attempts
HELD = StashKey[Dict[str, float]]("pools.held")
#: task -> what its running attempt holds
HOLDING = StashKey[Dict[str, Dict[str, float]]]("pools.holding")


@hookimpl
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    schema.add("pools", Dict[str, PositiveInt], {}, help="resources of this machine and how many of each (db: 2)")


def on_dask(config: Config, cfg: Any) -> bool:
    """The Dask executor counts resources itself (its workers offer them)."""
    chosen = config.getoption("executor") or (
        getattr(cfg, "executor", None) if "executor" in cfg.model_fields_set else None
    )
    if chosen:
        return bool(chosen == "dask")
    return bool(
        config.getoption("dask_scheduler")
        or config.getoption("dask_cluster")
        or getattr(cfg, "dask", None)
        or getattr(cfg, "scheduler_address", None)
    )


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: Any) -> list[Problem]:
    cfg = jobdef.model.config
    if on_dask(config, cfg):
        return []
    pools: dict[str, int] = getattr(cfg, "pools", None) or {}
    problems = []
    for name, t in jobdef.model.tasks.items():
        for res, amount in (t.resources or {}).items():
            where = ("tasks", name, "resources", res)
            if res not in pools:
                near = closest(res, list(pools))
                problems.append(
                    Problem(
                        f"task '{name}' asks for resource '{res}', which config.pools does not have",
                        jobdef.location(where),
                        hint=f"did you mean '{near}'?" if near else f"add it: config: {{pools: {{{res}: N}}}}",
                    )
                )
            elif amount > pools[res]:
                problems.append(
                    Problem(
                        f"task '{name}' asks for {amount:g} of '{res}', whose pool holds {pools[res]}: it could never "
                        "start",
                        jobdef.location(where),
                        hint=f"ask for at most {pools[res]}, or make config.pools.{res} larger",
                    )
                )
    return problems


def _pools(job: Job) -> dict[str, int]:
    return getattr(job.jobdef.model.config, "pools", None) or {}


@hookimpl
def flowmancer_task_can_start(job: Job, task: TaskRun) -> Optional[bool]:
    wants = task.definition.resources
    if not wants or on_dask(job.config, job.jobdef.model.config):
        return None
    pools, held = _pools(job), job.stash.setdefault(HELD, {})
    return all(held.get(r, 0) + n <= pools.get(r, 0) for r, n in wants.items())


@hookimpl
def flowmancer_task_start(job: Job, task: TaskRun) -> None:
    wants = task.definition.resources
    if not wants or on_dask(job.config, job.jobdef.model.config):
        return
    held = job.stash.setdefault(HELD, {})
    for r, n in wants.items():
        held[r] = held.get(r, 0) + n
    job.stash.setdefault(HOLDING, {})[task.name] = dict(wants)


@hookimpl
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    holding = job.stash.get(HOLDING)
    mine = holding.pop(task.name, None) if holding else None
    if mine:
        held = job.stash[HELD]
        for r, n in mine.items():
            held[r] -= n


def usage(job: Job) -> str:
    """The pools in use now, for the live status: ``pools: db 2/2 · gpu 0/1`` ('' without pools)."""
    pools = _pools(job)
    if not pools or HELD not in job.stash:  # none declared, or the plugin is blocked, or on Dask
        return ""
    held = job.stash[HELD]
    return "pools: " + " · ".join(f"{name} {held.get(name, 0):g}/{size}" for name, size in pools.items())
