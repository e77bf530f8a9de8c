"""Trigger rules: when a task runs given how its dependencies ended."""

from __future__ import annotations

import pytest
from tasklib import ROBUST_TASKS

from flowmancer.exitcode import ExitCode
from flowmancer.scheduler import decide


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(ROBUST_TASKS)
    return fmtester


def test_decide_table():
    assert decide("all_success", 2, 1, 0, 0) is None
    assert decide("all_success", 2, 2, 0, 0) == "run"
    assert decide("all_success", 2, 1, 1, 1) == "default"
    assert decide("all_done", 2, 2, 2, 2) == "run"
    assert decide("one_failed", 2, 1, 1, 1) == "run"
    assert decide("one_failed", 2, 2, 0, 0) == "skip"
    assert decide("none_failed", 2, 2, 1, 0) == "run"  # a DEFAULTED dependency does not block it
    assert decide("none_failed", 2, 1, 1, 1) == "default"


def test_trigger_rules(project):
    project.make_jobdef(
        """
        tasks:
          bad: {task: Raise, max_attempts: 1}
          good: {task: Mark}
          after-bad: {task: Mark, dependencies: [bad]}
          cleanup: {task: Mark, trigger: all_done, dependencies: [bad, good]}
          alert: {task: Mark, trigger: one_failed, dependencies: [bad, good]}
          no-alert: {task: Mark, trigger: one_failed, dependencies: [good]}
          report: {task: Mark, trigger: none_failed, dependencies: [bad]}
          report-2: {task: Mark, trigger: none_failed, dependencies: [after-bad, good]}
          after-alert: {task: Mark, dependencies: [alert, no-alert]}
        """
    )
    result = project.run()
    assert result.states() == {
        "bad": "FAILED",
        "good": "COMPLETED",
        "after-bad": "DEFAULTED",
        "cleanup": "COMPLETED",
        "alert": "COMPLETED",
        "no-alert": "SKIPPED",
        "report": "DEFAULTED",
        "report-2": "COMPLETED",
        "after-alert": "COMPLETED",
    }
    assert "trigger one_failed and no dependency failed" in result.job.tasks["no-alert"].result.error


def test_unknown_trigger_is_a_jobdef_error(project):
    project.make_jobdef("tasks:\n  a: {task: Mark, trigger: sometimes}\n")
    result = project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR and "tasks.a.trigger" in result.stderr
    assert "'all_success', 'all_done', 'one_failed' or 'none_failed'" in result.stderr
