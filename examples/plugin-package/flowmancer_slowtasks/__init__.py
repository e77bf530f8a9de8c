"""An example Flowmancer plugin package: warn about tasks slower than a threshold.

Adds the `--slow-after SECONDS` option and the `config.slow_after` job setting (the option wins), and
prints the slow tasks after the run.
"""

from __future__ import annotations

from flowmancer import hookimpl
from flowmancer.stash import StashKey

SLOW = StashKey[list[tuple[str, float]]]("slowtasks.slow")  # typed: job.stash[SLOW] is that list


@hookimpl
def flowmancer_addoption(parser):
    group = parser.add_argument_group("slowtasks")
    group.add_argument(
        "--slow-after", type=float, default=None, metavar="SECONDS", help="report tasks that took longer than SECONDS"
    )


@hookimpl
def flowmancer_addconfig(schema):
    schema.add("slow_after", float, 60.0, help="report tasks that took longer than this many seconds")


def _threshold(job):
    cli = job.config.getoption("slow_after")
    return cli if cli is not None else job.jobdef.model.config.slow_after


@hookimpl
def flowmancer_task_finish(job, task, result):
    if result.duration > _threshold(job):
        job.stash.setdefault(SLOW, []).append((task.name, result.duration))


@hookimpl
def flowmancer_job_finish(job, exitcode):
    slow = job.stash.get(SLOW, [])
    if slow:
        listed = ", ".join(f"{name} ({seconds:.2f}s)" for name, seconds in slow)
        print(f"slowtasks: {len(slow)} slow task(s) over {_threshold(job):g}s: {listed}")
