"""Built-in plugin ``durations``: ``--durations N`` lists the N slowest tasks (0: all), as pytest does."""

from __future__ import annotations

import argparse

from .job import Job
from .markers import hookimpl
from .stdio import printable


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--durations", type=int, metavar="N", default=None, help="list the N slowest tasks (0: all)")


@hookimpl
def flowmancer_terminal_summary(job: Job, write: object) -> None:
    n = job.config.getoption("durations")
    if n is None:
        return
    rows = []
    for t in job:
        total = sum(h.duration for h in t.history)
        if t.history:
            rows.append((total, t.name, len(t.history), t.state.value))
    rows.sort(reverse=True)
    shown = rows if n == 0 else rows[:n]
    assert callable(write)
    write(f"slowest {len(shown)} task{'s' if len(shown) != 1 else ''}:")
    for total, name, attempts, state in shown:
        write(f"  {total:8.2f}s  {printable(name)}  ({attempts} attempt{'s' if attempts != 1 else ''}, {state})")
