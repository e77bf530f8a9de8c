"""pytest-style everyday flags: -k, tags and -m, -x, --durations, --lf, [tool.flowmancer] settings."""

from __future__ import annotations

import re

import pytest

from flowmancer.errors import UsageError
from flowmancer.exitcode import ExitCode
from flowmancer.expression import Expression

TASKS = """
import os
import time
from flowmancer.task import Task, task

def mark(what):
    with open("marks.txt", "a") as f:
        f.write(what + "\\n")

@task
class Step(Task):
    sleep: float = 0.0
    fail: bool = False

    def run(self):
        time.sleep(self.sleep)
        mark(f"{self.task_info.name} ran")
        if self.fail and not os.path.exists("fixed"):
            raise RuntimeError("failing")

    def on_abort(self):
        mark(f"{self.task_info.name} on_abort")

@task
class IOStep(Task):
    default_tags = ("io",)

    def run(self):
        mark(f"{self.task_info.name} ran")
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def ran(project):
    p = project.path / "marks.txt"
    out = sorted(ln.split()[0] for ln in p.read_text().splitlines() if ln.endswith(" ran")) if p.exists() else []
    p.unlink(missing_ok=True)
    return out


@pytest.mark.parametrize(
    ("expr", "names", "expected"),
    [
        ("a", {"a"}, True),
        ("not a", {"a"}, False),
        ("a and b or c", {"c"}, True),  # and binds tighter than or
        ("a and (b or c)", {"c"}, False),
        ("not a and b", {"b"}, True),  # not binds tightest
        ("not (a and b)", {"a", "b"}, False),
        ("(a or b) and not (c or d)", {"b", "d"}, False),
    ],
)
def test_expression_precedence(expr, names, expected):
    assert Expression(expr).evaluate(lambda w: w in names) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("a and", "unexpected end"),
        ("(a or b", "missing ')'"),
        ("a b", "unexpected 'b'"),
        ("", "empty expression"),
        ("and a", "expected a name"),
    ],
)
def test_expression_errors(expr, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        Expression(expr)


DAG = """
tasks:
  extract: {task: Step, tags: [nightly]}
  load-slow: {task: Step, dependencies: [extract], tags: [nightly, slow]}
  load-fast: {task: Step, dependencies: [extract], tags: [nightly]}
  upload: {task: IOStep, dependencies: [load-fast]}
  report: {task: Step, dependencies: [load-slow, load-fast]}
"""


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


def test_list_shows_tags(project):
    project.make_jobdef(DAG)
    rows = {ln.split()[0]: ln.split() for ln in project.run("--list").outlines}
    assert rows["load-slow"] == ["load-slow", "Step", "extract", "#nightly", "#slow"]
    assert rows["upload"] == ["upload", "IOStep", "load-fast", "#io"]
    assert rows["report"] == ["report", "Step", "load-slow,", "load-fast"]


EXITFIRST = """
config: {name: xjob}
tasks:
  bad: {task: Step, parameters: {fail: true}}
  slow-sibling: {task: Step, parameters: {sleep: 2.5}}
  after-bad: {task: Step, dependencies: [bad], trigger: all_done}
  later: {task: Step, dependencies: [slow-sibling]}
"""


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


def test_durations(project):
    project.make_jobdef(
        "tasks:\n  a: {task: Step, parameters: {sleep: 0.3}}\n  b: {task: Step, parameters: {sleep: 0.1}}\n"
        "  c: {task: Step, parameters: {sleep: 0.2}}\n"
    )
    out = project.run("--durations", "2").outlines
    i = out.index("slowest 2 tasks:")
    assert out[i + 1].split()[1:3] == ["a", "(1"] and out[i + 2].split()[1] == "c"
    assert len([ln for ln in out if ln.startswith("  ") and "attempt" in ln and "s  " in ln]) >= 2


def test_settings_precedence(project, monkeypatch):
    project.makefile(
        "pyproject.toml",
        """
        [tool.flowmancer]
        addopts = "--max-concurrency 1 -q"
        name = "from-pyproject"
        max_concurrency = 3
        """,
    )
    tasks = "".join(f"  t{i}: {{task: Step, parameters: {{sleep: 0.2}}}}\n" for i in range(3))
    project.make_jobdef("tasks:\n" + tasks)
    result = project.run()
    assert result.job.name == "from-pyproject"  # a config default from pyproject
    assert result.config.getoption("max_concurrency") == 1  # addopts beat the config default
    assert result.config.getoption("quiet") == 1
    monkeypatch.setenv("FLOWMANCER_ADDOPTS", "--max-concurrency 2")
    assert project.run().config.getoption("max_concurrency") == 2  # env beats pyproject
    assert project.run("--max-concurrency", "3").config.getoption("max_concurrency") == 3  # CLI beats env
    project.make_jobdef("config: {name: from-yaml}\ntasks:\n" + tasks)
    assert project.run().job.name == "from-yaml"  # the job's YAML beats pyproject defaults
    trace = project.run_subprocess("--trace-config", env={"FLOWMANCER_ADDOPTS": "--max-concurrency 2"}).stdout
    assert f"settings: {project.path / 'pyproject.toml'}" in trace
    assert "addopts (pyproject): --max-concurrency 1 -q" in trace
    assert "config default (pyproject): name = 'from-pyproject'" in trace
    assert "addopts (FLOWMANCER_ADDOPTS): --max-concurrency 2" in trace


def test_unknown_pyproject_setting(project):
    project.makefile("pyproject.toml", "[tool.flowmancer]\nmax_concurency = 2\n")
    project.make_jobdef("tasks:\n  a: {task: Step}\n")
    result = project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "unknown setting 'max_concurency' in [tool.flowmancer]" in result.stderr
    assert "did you mean 'max_concurrency'?" in result.stderr
