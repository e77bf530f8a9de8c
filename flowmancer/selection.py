"""Built-in plugin ``selection`` (formerly ``select``): ``--skip``, ``--only``, ``--run-from``, ``--run-to``,
``-k`` and ``-m``.

Deselected tasks become SKIPPED: they do not run and count as satisfied for their dependents.
"""

from __future__ import annotations

import argparse
from typing import Callable

from .config import Config
from .errors import NoTasksSelected, UsageError, closest
from .job import Job, TaskRun
from .markers import hookimpl
from .stash import StashKey
from .stdio import printable

DESELECTED = StashKey[list[str]]("select.deselected")


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
    g.add_argument(
        "-k",
        dest="keyword",
        metavar="EXPR",
        help="run tasks whose name or class matches EXPR: substrings with and/or/not, e.g. -k 'load and not slow'",
    )
    g.add_argument(
        "-m", dest="markexpr", metavar="EXPR", help="run tasks whose tags match EXPR, e.g. -m 'nightly and not io'"
    )


def _check(job: Job, name: str, flag: str) -> None:
    if name not in job.tasks:
        close = closest(name, job.tasks)
        hint = f" (did you mean '{close}'?)" if close else f" (tasks: {', '.join(job.tasks)})"
        raise UsageError(f"{flag} {name}: no task of that name in the job{hint}")


def _kw_match(word: str, task: TaskRun) -> bool:
    w = word.lower()
    return w in task.name.lower() or w in task.class_name.lower()


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
    keyword = getattr(opt, "keyword", None)
    markexpr = getattr(opt, "markexpr", None)
    if not (skip or only or run_from or run_to or keyword or markexpr):
        return
    keep = set(job.tasks)
    if keyword or markexpr:
        from .expression import Expression  # only now: most runs select nothing (start-up)
    if keyword:
        kexpr = Expression(keyword, "-k")
        keep = {t.name for t in job if kexpr.evaluate(lambda w, t=t: _kw_match(w, t))}  # type: ignore[misc]
    if markexpr:
        mexpr = Expression(markexpr, "-m")
        keep &= {t.name for t in job if mexpr.evaluate(lambda w, t=t: w in t.tags)}  # type: ignore[misc]
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
    if not keep and len(job):
        said = " ".join(
            f"{flag} {value}"
            for flag, value in (("-k", keyword), ("-m", markexpr), ("--run-from", run_from), ("--run-to", run_to))
            if value
        )
        said = " ".join([said, *(f"--only {n}" for n in only), *(f"--skip {n}" for n in skip)]).strip()
        raise NoTasksSelected(
            f"no tasks selected: {said} leaves none of the job's {len(job)} tasks",
            "run with --list to see the tasks, their names and tags",
        )
    for t in job:
        if t.name not in keep and not t.state.is_final:
            job.deselect(t)
            job.stash.setdefault(DESELECTED, []).append(t.name)


@hookimpl
def flowmancer_terminal_summary(job: Job, write: Callable[[str], None]) -> None:
    names = job.stash.get(DESELECTED)
    if names:
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        shown = ", ".join(printable(n) for n in names[:10]) + more
        write(f"{len(names)} deselected: {shown}")
