"""Every lifecycle path of a task, and every way a task process can die."""

from __future__ import annotations

import pytest

LIFECYCLE_TASKS = """
import os
import signal
import sys

from flowmancer.task import Task, task


@task
class Life(Task):
    fail_in: str = ""  # lifecycle method that raises
    how: str = "raise"  # raise | exit3 | exit0 | os_exit | sigkill | segfault

    def _mark(self, stage):
        with open(f"{self.task_info.name}.marks", "a") as f:
            f.write(stage + "\\n")
        if stage == self.fail_in:
            if self.how == "raise":
                raise ValueError(f"boom in {stage}")
            if self.how == "exit3":
                sys.exit(3)
            if self.how == "exit0":
                sys.exit(0)
            if self.how == "os_exit":
                os._exit(7)
            if self.how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "segfault":
                import ctypes
                ctypes.string_at(0)

    def on_create(self):
        self._mark("on_create")

    def on_restart(self):
        self._mark("on_restart")

    def run(self):
        self._mark("run")

    def on_success(self):
        self._mark("on_success")

    def on_failure(self):
        self._mark("on_failure")

    def on_destroy(self):
        self._mark("on_destroy")
"""


@pytest.fixture
def life(fmtester):
    fmtester.make_tasks(LIFECYCLE_TASKS, name="life")

    def run(**params):
        body = ", ".join(f"{k}: {v}" for k, v in params.items())
        fmtester.make_jobdef(f"tasks:\n  t: {{task: Life, parameters: {{{body}}}}}\n")
        result = fmtester.run()
        marks_file = fmtester.path / "t.marks"
        marks = marks_file.read_text().split() if marks_file.exists() else []
        return result, marks

    return run


def test_success_path(life):
    result, marks = life()
    assert result.ret == 0
    assert marks == ["on_create", "run", "on_success", "on_destroy"]


def test_run_raises(life):
    result, marks = life(fail_in="run")
    assert result.state("t").value == "FAILED"
    assert marks == ["on_create", "run", "on_failure", "on_destroy"]
    result.out.fnmatch_lines(["*ValueError: boom in run*"])
    assert 'in _mark\n    raise ValueError(f"boom in {stage}")' in result.job.tasks["t"].result.traceback


def test_on_create_raises_so_run_does_not_run(life):
    result, marks = life(fail_in="on_create")
    assert result.state("t").value == "FAILED"
    assert "run" not in marks
    assert marks == ["on_create", "on_failure", "on_destroy"]
    result.out.fnmatch_lines(["*on_create() raised ValueError: boom in on_create*"])


def test_on_success_raises_fails_the_task(life):
    result, marks = life(fail_in="on_success")
    assert result.state("t").value == "FAILED"
    assert marks == ["on_create", "run", "on_success", "on_destroy"]


def test_on_destroy_raises_fails_the_task(life):
    result, marks = life(fail_in="on_destroy")
    assert result.state("t").value == "FAILED"
    assert marks[-1] == "on_destroy"


def test_sys_exit_nonzero_in_run_is_a_failure(life):
    result, marks = life(fail_in="run", how="exit3")
    assert result.state("t").value == "FAILED"
    result.out.fnmatch_lines(["*run() called sys.exit(3)*"])
    assert marks == ["on_create", "run", "on_failure", "on_destroy"]


def test_sys_exit_zero_in_run_ends_run_normally(life):
    result, marks = life(fail_in="run", how="exit0")
    assert result.ret == 0
    assert marks == ["on_create", "run", "on_success", "on_destroy"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("os_exit", "process exited with code 7 without reporting a result"),
        ("sigkill", "process killed by SIGKILL (signal 9)"),
        ("segfault", "process killed by SIGSEGV (signal 11)"),
    ],
)
def test_process_death_without_report(life, how, expected, spawn_path):
    result, marks = life(fail_in="run", how=how)
    assert result.ret == 1
    t = result.job.tasks["t"]
    assert t.state.value == "FAILED"
    assert t.result.error == expected
    assert expected in result.stdout
    assert marks == ["on_create", "run"]  # nothing ran after the process died


def test_segfault_stack_reaches_the_task_log(life, spawn_path):
    result, _ = life(fail_in="run", how="segfault")
    err = [c.record for c in result.recorder.getcalls("flowmancer_task_log") if c.record.stream == "stderr"]
    assert {r.severity.value for r in err} == {"ERROR"}  # stderr, whoever writes it
    assert any("Fatal Python error: Segmentation fault" in r.message for r in err)
    assert any("in _mark" in r.message for r in err)


def test_restart_flag_is_false_on_a_fresh_run(life):
    _, marks = life()
    assert "on_restart" not in marks
