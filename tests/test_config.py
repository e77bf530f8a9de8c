"""Project settings: [tool.flowmancer] and FLOWMANCER_ADDOPTS, and their precedence."""

from __future__ import annotations

import pytest
from tasklib import STEP_TASKS

from flowmancer.exitcode import ExitCode


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(STEP_TASKS)
    return fmtester


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


def test_an_invalid_pyproject_with_our_table_is_an_error_at_its_line(project):
    project.makefile("pyproject.toml", '[project]\nname = "x"\n\n[tool.flowmancer]\naddopts = "-v\n')
    project.make_jobdef("tasks:\n  a: {task: Step}\n")
    result = project.run()
    assert result.ret == ExitCode.USAGE_ERROR
    assert "pyproject.toml: cannot read it as TOML" in result.stderr and "line 5" in result.stderr
    assert not (project.path / "logs").exists()  # nothing ran without the settings


def test_an_invalid_pyproject_of_someone_else_is_not_ours(project):
    project.makefile("pyproject.toml", '[project]\nname = "x\n')
    project.make_jobdef("tasks:\n  a: {task: Step}\n")
    assert project.run().ret == ExitCode.OK
