"""What one attempt came to: the facts the scheduler gathers while it runs, and the ``TaskResult`` built
from them when it is over (after pytest's ``TestReport.from_item_and_call``)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Optional

from .executor import describe_exit
from .messages import FinishedEvent
from .states import ExecutionState, TaskResult

S = ExecutionState


@dataclass
class AttemptFacts:
    """What the scheduler learnt about the running attempt of a task."""

    started_at: float
    #: the limit it ran past: its timeout timer fired, and it was asked to stop
    timed_out: Optional[float] = None
    #: its own report (or the one made for it when its process could not report)
    finished: Optional[FinishedEvent] = None
    #: something it sent that the runner could not read: the attempt fails with this, whatever it reports
    unreadable: Optional[str] = None

    def may_settle_early(self, aborting: bool) -> bool:
        """It reported success and nothing else speaks against it: settle it before its process exits."""
        fin = self.finished
        return fin is not None and fin["ok"] and not aborting and self.timed_out is None and self.unreadable is None


@dataclass
class Stop:
    """Why the run is stopping, if it is: the words of an aborted attempt's error."""

    aborting: bool = False
    interrupted: Optional[int] = None  # the signal, if one stopped the run
    reason: Optional[str] = None  # job.stop(reason=...)


def result_of(name: str, attempt: int, facts: AttemptFacts, exitcode: Optional[int], stop: Stop) -> TaskResult:
    """The report of an attempt that is over. In order: a timeout, no report (a crash), an unreadable
    message, an abort, a failure the task reported, success."""
    fin = facts.finished
    result = TaskResult(
        name=name, state=S.COMPLETED, attempt=attempt, start=facts.started_at, end=time.time(), exitcode=exitcode
    )
    if facts.timed_out is not None:
        result.state, result.failure_kind = S.FAILED, "timeout"
        result.error = f"timed out after {facts.timed_out:g} s"
    elif fin is None:
        result.state = S.ABORTED if stop.aborting else S.FAILED
        result.failure_kind = "crash"
        result.error = f"aborted ({describe_exit(exitcode)})" if stop.aborting else describe_exit(exitcode)
    elif facts.unreadable is not None and not fin["aborted"]:
        result.state, result.failure_kind, result.error = S.FAILED, "exception", facts.unreadable
    elif fin["aborted"] or (stop.aborting and not fin["ok"]):
        result.state = S.ABORTED
        result.error = aborted_error(stop) if stop.aborting or stop.interrupted else None
        result.error = result.error or "aborted: the task process received SIGTERM"
    elif not fin["ok"]:
        result.state = S.FAILED
        result.error, result.traceback = fin["error"], fin["traceback"]
        result.failure_kind = fin.get("kind") or "exception"
        result.exception_types = tuple(fin.get("exc_types") or ())
    return result


def aborted_error(stop: Stop) -> str:
    """The error of a task the run's stop ended (an attempt it stopped, or a retry it called off)."""
    if stop.interrupted:
        return f"aborted by {signal.Signals(stop.interrupted).name}"
    return f"aborted ({stop.reason or 'stop requested'})"
