"""Built-in plugin ``failfast``: ``-x`` / ``--exitfirst``.

After the first task that fails for good (its retries used up), nothing new starts; running tasks finish
(``--exitfirst=abort``: they are stopped, with ``on_abort``). The command exits with the tasks-failed
code, and the checkpoint lets ``-r`` continue.
"""

from __future__ import annotations

import argparse

from .job import Job, TaskRun
from .markers import hookimpl
from .states import ExecutionState, TaskResult


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-x",
        "--exitfirst",
        nargs="?",
        const="finish",
        choices=("finish", "abort"),
        default=None,
        help="after the first failure start nothing new; running tasks finish (=abort: stop them too)",
    )


@hookimpl
def flowmancer_task_finish(job: Job, task: TaskRun, result: TaskResult) -> None:
    mode = job.config.getoption("exitfirst")
    if mode and result.state is ExecutionState.FAILED and not result.will_retry and not job.stopping:
        job.stop(abort=mode == "abort", reason=f"-x: task '{task.name}' failed")
