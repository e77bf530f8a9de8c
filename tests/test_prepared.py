"""A chain's next task process, prepared by the fork server while the task before it runs (``prepared``).

Real runs: the prepared process is used (it is older than its task's start), runs its task once and only
when told, obeys a change made to its task after it was prepared, and leaves no process behind when its
task does not run (the task before it failed, the runner was killed or stopped).
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from tasklib import processes_with

from flowmancer.exitcode import ExitCode

TASKS = """
import os
import time
from flowmancer.task import Task, task


def age():
    '''Seconds since this process was forked.'''
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start / os.sysconf("SC_CLK_TCK")


@task
class Step(Task):
    sleep: float = 0.0
    fail: bool = False
    fail_first: bool = False
    value: int = 0

    def run(self):
        info = self.task_info
        with open("marks.txt", "a") as f:
            f.write(f"{info.name} {info.attempt} {os.getpid()} {age():.2f} {self.value}\\n")
        time.sleep(self.sleep)
        if self.fail or (self.fail_first and info.attempt == 1):
            raise RuntimeError("failing on purpose")
"""


@pytest.fixture
def project(fmtester, monkeypatch):
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1")
    fmtester.make_tasks(TASKS)
    return fmtester


def marks(project) -> list[tuple[str, int, int, float, int]]:
    p = project.path / "marks.txt"
    rows = [line.split() for line in p.read_text().splitlines()] if p.exists() else []
    return [(name, int(attempt), int(pid), float(age), int(value)) for name, attempt, pid, age, value in rows]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


# The fork server is ready for b (a fork server starts while a is forked): b's successors are prepared.
CHAIN = (
    "tasks:\n  a: {task: Step, parameters: {sleep: 0.5}}\n"
    "  b: {task: Step, dependencies: [a], parameters: {sleep: 1.0}}\n"
    "  c: {task: Step, dependencies: [b]}\n  d: {task: Step, dependencies: [c]}\n"
)


def test_the_next_task_of_a_chain_is_forked_while_the_one_before_runs(project, monkeypatch):
    project.make_jobdef(CHAIN)
    assert project.run().ret == 0
    rows = marks(project)
    assert [r[:2] for r in rows] == [("a", 1), ("b", 1), ("c", 1), ("d", 1)]
    assert rows[2][3] >= 0.5 and rows[3][3] >= 0.5, rows  # c's and d's processes were made during b's sleep
    assert len({r[2] for r in rows}) == 4

    (project.path / "marks.txt").unlink()
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "0")  # forked at its start: the same run, young processes
    assert project.run().ret == 0
    assert [r[:2] for r in marks(project)] == [("a", 1), ("b", 1), ("c", 1), ("d", 1)]
    assert max(r[3] for r in marks(project)) < 0.3, marks(project)


def test_a_prepared_task_whose_turn_never_comes_leaves_no_process(project):
    marker = f"FM_PREPARED_MARK={os.getpid()}-failed"
    project.make_jobdef(CHAIN.replace("sleep: 1.0", "sleep: 1.0, fail: true"))
    key, value = marker.split("=")
    result = project.run_subprocess(env={key: value})
    assert result.ret == ExitCode.TASKS_FAILED, result.stdout + result.stderr
    assert [r[0] for r in marks(project)] == ["a", "b"]
    assert processes_with(marker) == []


def test_a_retried_task_then_its_successor_once(project):
    project.make_jobdef(
        "config: {task_defaults: {max_attempts: 2}}\n"
        "tasks:\n  a: {task: Step, parameters: {sleep: 0.5, fail_first: true}}\n  b: {task: Step, dependencies: [a]}\n"
    )
    assert project.run().ret == 0
    assert [r[:2] for r in marks(project)] == [("a", 1), ("a", 2), ("b", 1)]


def test_a_change_to_the_next_task_after_it_was_prepared_is_obeyed(project):
    """A plugin changes c when b finishes (c's process was prepared with the old value): c runs with the new."""
    project.makefile(
        "flowmancerconf.py",
        """
        from flowmancer import hookimpl

        @hookimpl
        def flowmancer_task_finish(job, task, result):
            if task.name == "b":
                job.tasks["c"].instance.value = 42
        """,
    )
    project.make_jobdef(CHAIN)
    result = project.run_subprocess()
    assert result.ret == 0, result.stdout + result.stderr
    rows = {r[0]: r for r in marks(project)}
    assert rows["c"][4] == 42 and rows["d"][4] == 0
    assert rows["c"][3] < 0.3 and rows["d"][3] >= 0.5, rows  # c started anew; d's prepared process served


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_prepared_task_never_runs_after_the_runner_is_killed_or_stopped(project, launch, sig):
    marker = f"FM_PREPARED_MARK={os.getpid()}-{sig}"
    project.make_jobdef(CHAIN.replace("sleep: 1.0", "sleep: 30"))
    key, value = marker.split("=")
    runner = launch(env={key: value})
    wait_for(lambda: [r[0] for r in marks(project)] == ["a", "b"])
    wait_for(lambda: len(processes_with(marker)) >= 5)  # runner, server, b, and c's and d's processes, waiting
    runner.send_signal(sig)
    runner.wait(30)
    wait_for(lambda: processes_with(marker) == [], timeout=10)
    assert [r[0] for r in marks(project)] == ["a", "b"]
