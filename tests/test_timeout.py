"""Timeouts: the task is stopped (on_abort, then SIGKILL after the grace period) and the attempt fails."""

from __future__ import annotations

import time

import pytest
from tasklib import ROBUST_TASKS, marks

from flowmancer.exitcode import ExitCode


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(ROBUST_TASKS)
    return fmtester


def test_timeout_stops_the_task_runs_on_abort_and_retries(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  slow: {task: Sleepy, timeout: 0.5, max_attempts: 2}\n  after: {task: Mark, dependencies: [slow]}\n"
    )
    start = time.time()
    result = project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert time.time() - start < 5
    t = result.job.tasks["slow"]
    assert [h.error for h in t.history] == ["timed out after 0.5 s", "timed out after 0.5 s"]
    assert [h.failure_kind for h in t.history] == ["timeout", "timeout"]
    assert marks(project).count("slow on_abort") == 2
    assert "slow end" not in marks(project)
    assert result.states()["after"] == "DEFAULTED"
    result.out.fnmatch_lines(["*timed out after 0.5 s*"])


def test_infinite_loop_is_reported_as_timed_out_via_config_default(project):
    project.make_jobdef("config:\n  task_defaults: {timeout: 0.3}\ntasks:\n  spin: {task: Spin}\n")
    result = project.run()
    assert result.job.tasks["spin"].result.error == "timed out after 0.3 s"


def test_task_ignoring_sigterm_is_killed_after_the_grace_period(project, spawn_path):
    project.make_jobdef(
        "config: {abort_grace_seconds: 0.5}\ntasks:\n  stubborn: {task: Sleepy, timeout: 0.3, parameters: {ignore_term: true}}\n"
    )
    start = time.time()
    result = project.run()
    assert time.time() - start < 4
    assert result.job.tasks["stubborn"].result.error == "timed out after 0.3 s"
    assert "stubborn on_abort" in marks(project)
