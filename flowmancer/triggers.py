"""Trigger rules: when a task may run, given how its dependencies ended (see the README's Trigger rules).

Each task keeps counters of its settled dependencies, so the scheduler decides in O(1) per event whatever
the size of the job.
"""

from __future__ import annotations

from typing import Literal, Optional

from .states import ExecutionState

S = ExecutionState
#: dependency states that let a dependent run
SATISFIED = (S.COMPLETED, S.SKIPPED)
#: dependency states that count as bad for ``all_success`` and ``one_failed``
BAD = (S.FAILED, S.DEFAULTED, S.ABORTED)

Action = Literal["run", "default", "skip"]


def decide(rule: str, total: int, done: int, bad: int, failed: int) -> Optional[Action]:
    """What a task's trigger rule says given its dependencies: "run", "default", "skip" or wait (None).

    ``done``: dependencies in a final state; ``bad``: of those FAILED, DEFAULTED or ABORTED; ``failed``:
    of those FAILED.
    """
    if rule == "all_success":
        return "default" if bad else ("run" if done == total else None)
    if rule == "all_done":
        return "run" if done == total else None
    if rule == "one_failed":
        return "run" if bad else ("skip" if done == total else None)
    if rule == "none_failed":
        return "default" if failed else ("run" if done == total else None)
    raise ValueError(f"unknown trigger rule {rule!r}")
