"""Inside a task process: its memory limit, and output too large for the pipes."""

from __future__ import annotations

import pytest
from tasklib import ROBUST_TASKS


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(ROBUST_TASKS)
    return fmtester


def test_memory_limit(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  hog: {task: Hog, memory_limit_mb: 100}\n  fine: {task: Hog, parameters: {megabytes: 10}, memory_limit_mb: 100}\n"
    )
    result = project.run()
    hog = result.job.tasks["hog"].result
    assert hog.state.value == "FAILED"
    assert "MemoryError" in hog.error and "memory limit of 100 MB reached" in hog.error
    assert result.states()["fine"] == "COMPLETED"


def test_a_million_lines_and_a_50_mb_line_do_not_deadlock(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  lines: {task: Flood, parameters: {lines: 1000000}}\n  big: {task: Flood, parameters: {one_line_mb: 50}}\n"
    )
    result = project.run_subprocess("-q", "-p", "no:filelogger", timeout=300)
    assert result.ret == 0, result.stderr
