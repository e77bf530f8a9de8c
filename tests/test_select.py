"""--skip, --only, --run-from and --run-to (the original parsed them and did nothing)."""

from __future__ import annotations

import pytest

from flowmancer.exitcode import ExitCode

JOB = """
tasks:
  extract: {task: Record}
  transform: {task: Record, dependencies: [extract]}
  load: {task: Record, dependencies: [transform]}
  report: {task: Record, dependencies: [load]}
  side: {task: Record}
"""


@pytest.fixture
def chain(recorder_project):
    recorder_project.make_jobdef(JOB)
    return recorder_project


@pytest.mark.parametrize(
    ("args", "ran"),
    [
        (["--skip", "transform"], ["extract", "load", "report", "side"]),
        (["--skip", "transform", "--skip", "side"], ["extract", "load", "report"]),
        (["--only", "load"], ["load"]),
        (["--only", "load", "--only", "side"], ["load", "side"]),
        (["--run-from", "transform"], ["load", "report", "transform"]),
        (["--run-to", "load"], ["extract", "load", "transform"]),
        (["--run-from", "transform", "--run-to", "load"], ["load", "transform"]),
    ],
)
def test_selection(chain, timeline, args, ran):
    result = chain.run(*args)
    assert result.ret == 0, result.stdout + result.stderr
    assert sorted(timeline.names()) == ran
    skipped = sorted(n for n, s in result.states().items() if s == "SKIPPED")
    assert skipped == sorted(set(result.job.tasks) - set(ran))
    result.assert_outcomes(completed=len(ran), skipped=len(skipped))


def test_unknown_task_name_in_selection(chain):
    result = chain.run("--skip", "transfrom")
    assert result.ret == ExitCode.USAGE_ERROR
    assert "--skip transfrom: no task of that name in the job (did you mean 'transform'?)" in result.stderr


DIAMOND = """
tasks:
  top: {task: Record}
  left: {task: Record, dependencies: [top]}
  right: {task: Record, dependencies: [top]}
  bottom: {task: Record, dependencies: [left, right]}
"""


@pytest.mark.parametrize(
    ("args", "ran"),
    [
        (["--skip", "left"], ["bottom", "right", "top"]),
        (["--only", "left", "--only", "bottom"], ["bottom", "left"]),
        (["--run-from", "left"], ["bottom", "left"]),
        (["--run-to", "left"], ["left", "top"]),
        (["--run-from", "top", "--run-to", "right"], ["right", "top"]),
    ],
)
def test_selection_on_a_diamond(recorder_project, timeline, args, ran):
    recorder_project.make_jobdef(DIAMOND)
    result = recorder_project.run(*args)
    assert result.ret == 0, result.stdout + result.stderr
    assert sorted(timeline.names()) == ran
    if "bottom" in ran:  # bottom still waited for whichever of its dependencies ran
        bottom_start = timeline.span("bottom")[0]
        assert all(timeline.span(n)[1] <= bottom_start for n in ("left", "right") if n in ran)
