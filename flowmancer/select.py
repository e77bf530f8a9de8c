"""Built-in plugin ``select``: ``--skip``, ``--only``, ``--run-from`` and ``--run-to``.

Deselected tasks become SKIPPED: they do not run and count as satisfied for their dependents.
"""

from __future__ import annotations

import argparse
import difflib

from .config import Config
from .errors import UsageError
from .events import ExecutionState, TaskResult
from .job import Job
from .markers import hookimpl


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("task selection")
    g.add_argument("--skip", action="append", default=[], metavar="NAME", help="do not run task NAME (repeatable)")
    g.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run just these tasks (repeatable); their other dependencies count as satisfied",
    )
    g.add_argument("--run-from", metavar="NAME", help="run NAME and everything downstream of it")
    g.add_argument("--run-to", metavar="NAME", help="run NAME and everything upstream of it")


def _check(job: Job, name: str, flag: str) -> None:
    if name not in job.tasks:
        close = difflib.get_close_matches(name, list(job.tasks), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (tasks: {', '.join(job.tasks)})"
        raise UsageError(f"{flag} {name}: no task of that name in the job{hint}")


def _closure(job: Job, start: str, downstream: bool) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        t = job.tasks[stack.pop()]
        for n in t.dependents if downstream else t.dependencies:
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


@hookimpl
def flowmancer_collection_modifytasks(config: Config, job: Job) -> None:
    opt = config.option
    skip = list(getattr(opt, "skip", None) or [])
    only = list(getattr(opt, "only", None) or [])
    run_from = getattr(opt, "run_from", None)
    run_to = getattr(opt, "run_to", None)
    if not (skip or only or run_from or run_to):
        return
    keep = set(job.tasks)
    for name in skip:
        _check(job, name, "--skip")
    for name in only:
        _check(job, name, "--only")
    if only:
        keep &= set(only)
    if run_from:
        _check(job, run_from, "--run-from")
        keep &= _closure(job, run_from, downstream=True)
    if run_to:
        _check(job, run_to, "--run-to")
        keep &= _closure(job, run_to, downstream=False)
    keep -= set(skip)
    for t in job:
        if t.name not in keep and not t.state.is_final:
            job.set_state(t, ExecutionState.SKIPPED)
            t.result = TaskResult(name=t.name, state=ExecutionState.SKIPPED, error="deselected")
