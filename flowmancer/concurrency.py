"""Built-in plugin ``concurrency``: at most ``max_concurrency`` tasks run at once (0 = no limit)."""

from __future__ import annotations

import argparse
from typing import Optional

from .job import Job
from .markers import hookimpl


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="run at most N tasks at once (0 = no limit); overrides config.max_concurrency",
    )


def limit(job: Job) -> int:
    cli: Optional[int] = getattr(job.config.option, "max_concurrency", None)
    return cli if cli is not None else job.jobdef.model.config.max_concurrency


@hookimpl
def flowmancer_job_has_room(job: Job) -> Optional[bool]:
    n = limit(job)
    if n <= 0:
        return None
    return len(job.running) < n
