"""-x / --exitfirst: the first failure stops the run."""

from __future__ import annotations

import pytest
from tasklib import STEP_TASKS, ran

from flowmancer.exitcode import ExitCode

EXITFIRST = """
config: {name: xjob}
tasks:
  bad: {task: Step, parameters: {fail: true}}
  slow-sibling: {task: Step, parameters: {sleep: 2.5}}
  after-bad: {task: Step, dependencies: [bad], trigger: all_done}
  later: {task: Step, dependencies: [slow-sibling]}
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(STEP_TASKS)
    return fmtester


def test_exitfirst_lets_running_tasks_finish(project):
    project.make_jobdef(EXITFIRST)
    result = project.run("-x")
    assert result.ret == ExitCode.TASKS_FAILED
    states = result.states()
    assert states["bad"] == "FAILED" and states["slow-sibling"] == "COMPLETED"
    assert states["after-bad"] in ("INIT", "PENDING") and states["later"] in ("INIT", "PENDING")  # not started
    assert ran(project) == ["bad", "slow-sibling"]
    result.out.fnmatch_lines(["*2 not run*"])
    (project.path / "fixed").touch()
    resumed = project.run("--lf")  # pytest's spelling of -r
    assert resumed.ret == 0
    assert ran(project) == ["after-bad", "bad", "later"]


def test_exitfirst_abort_stops_running_tasks(project):
    project.make_jobdef(EXITFIRST)
    result = project.run("--exitfirst=abort")
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states()["slow-sibling"] == "ABORTED"
    assert "slow-sibling on_abort" in (project.path / "marks.txt").read_text()
    result.out.fnmatch_lines(["*aborted (-x: task 'bad' failed)*"])
