"""Priorities: which ready task starts first when slots are scarce (real runs under max_concurrency: 1)."""

from __future__ import annotations

import pytest

from flowmancer.exitcode import ExitCode

TASKS = """
from flowmancer.task import Task, task


@task
class Mark(Task):
    def run(self):
        with open("order.txt", "a") as f:
            f.write(self.task_info.name + "\\n")
"""


def order(project) -> list[str]:
    return (project.path / "order.txt").read_text().split()


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def test_a_higher_priority_starts_first(project):
    project.make_jobdef(
        "config: {max_concurrency: 1, task_defaults: {priority: 1}}\ntasks:\n"
        "  a: {task: Mark, priority: 0}\n  b: {task: Mark, priority: 5}\n  c: {task: Mark}\n  d: {task: Mark, priority: -3}\n"
    )
    assert project.run().ret == ExitCode.OK
    assert order(project) == ["b", "c", "a", "d"]


CHAIN_AND_ONE = (
    "config: {max_concurrency: 1%s}\ntasks:\n  y: {task: Mark}\n  x1: {task: Mark}\n"
    "  x2: {task: Mark, dependencies: [x1]}\n  x3: {task: Mark, dependencies: [x2]}\n"
)


def test_by_default_the_longest_chain_starts_first_then_the_files_order(project):
    project.make_jobdef(CHAIN_AND_ONE % "")
    assert project.run().ret == ExitCode.OK
    assert order(project) == ["x1", "x2", "y", "x3"]  # y and x3 end a chain of one: the file's order


@pytest.mark.parametrize("how", ["rule", "blocked"])
def test_the_files_order_with_the_yaml_rule_or_the_plugin_blocked(project, how):
    project.make_jobdef(CHAIN_AND_ONE % (", priority_rule: yaml" if how == "rule" else ""))
    assert project.run(*(["-p", "no:priority"] if how == "blocked" else [])).ret == ExitCode.OK
    assert order(project) == ["y", "x1", "x2", "x3"]


def test_a_priority_that_is_not_a_number_is_an_error_at_its_line(project):
    project.make_jobdef("tasks:\n  a: {task: Mark}\n  b:\n    task: Mark\n    priority: high\n")
    result = project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:5" in result.stderr and "priority" in result.stderr
