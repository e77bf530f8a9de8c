"""--skip, --only, --run-from and --run-to (the original parsed them and did nothing)."""

from __future__ import annotations

import pytest
from tasklib import DAG, STEP_TASKS, ran

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


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(STEP_TASKS)
    return fmtester


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-k", "load and not slow"], ["load-fast", "upload"]),  # substrings: "upload" contains "load"
        (["-k", "fast or report"], ["load-fast", "report"]),
        (["-k", "iostep"], ["upload"]),  # class names match too, case-insensitively
        (["-m", "nightly and not slow"], ["extract", "load-fast"]),
        (["-m", "io"], ["upload"]),  # the class's default_tags
        (["-m", "nightly", "-k", "not extract"], ["load-fast", "load-slow"]),
    ],
)
def test_keyword_and_tag_selection(project, args, expected):
    project.make_jobdef(DAG)
    result = project.run(*args)
    assert result.ret == 0, result.stdout + result.stderr
    assert ran(project) == expected
    n = 5 - len(expected)
    assert f"{n} deselected: " in result.stdout
    result.assert_outcomes(completed=len(expected), skipped=n)


def test_bad_expression_is_a_usage_error(project):
    project.make_jobdef(DAG)
    result = project.run_subprocess("-k", "load and (slow")
    assert result.ret == ExitCode.USAGE_ERROR and "missing ')'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-k", "nomatch"], "-k nomatch"),
        (["-m", "nosuchtag"], "-m nosuchtag"),
        (["--run-from", "report", "--run-to", "extract"], "--run-from report --run-to extract"),
    ],
)
def test_a_selection_of_nothing_is_exit_7(chain, timeline, args, said):
    result = chain.run(*args)
    assert result.ret == ExitCode.NO_TASKS_SELECTED == 7
    assert f"no tasks selected: {said} leaves none of the job's 5 tasks" in result.stderr
    assert "--list" in result.stderr and timeline.rows() == []
