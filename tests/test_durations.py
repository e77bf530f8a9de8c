"""--durations N: the slowest tasks after the run."""

from __future__ import annotations

import pytest
from tasklib import STEP_TASKS


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(STEP_TASKS)
    return fmtester


def test_durations(project):
    project.make_jobdef(
        "tasks:\n  a: {task: Step, parameters: {sleep: 0.3}}\n  b: {task: Step, parameters: {sleep: 0.1}}\n"
        "  c: {task: Step, parameters: {sleep: 0.2}}\n"
    )
    out = project.run("--durations", "2").outlines
    i = out.index("slowest 2 tasks:")
    assert out[i + 1].split()[1:3] == ["a", "(1"] and out[i + 2].split()[1] == "c"
    assert len([ln for ln in out if ln.startswith("  ") and "attempt" in ln and "s  " in ln]) >= 2
