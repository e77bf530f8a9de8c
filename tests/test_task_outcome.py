"""A task's outcome is what really happened: odd exceptions, forked children, values that do not travel,
how a task process ends (flush, atexit, its exit code), real text streams, every shared_dict operation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowmancer.exitcode import ExitCode

TASKS = r'''
import atexit
import json
import os
import sys
import time
from flowmancer.task import Task, task

MODULE_FILE = open("module-level.txt", "a")  # written by tasks, never closed: flushed when a task ends


def mark(text):
    with open("marks.txt", "a") as f:
        f.write(text + "\n")


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class Unpicklable:
    """Pickles, but unpickling raises."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise ValueError("cannot be rebuilt here")


@task
class BadStr(Task):
    def run(self):
        raise Unprintable()


@task
class ForkExits(Task):
    how: str = "exit0"

    def run(self):
        pid = os.fork()
        if pid == 0:
            if self.how == "exit0":
                sys.exit(0)  # into flowmancer's code, in the child: it must not report for the task
            return  # likewise, by returning from run()
        os.waitpid(pid, 0)
        time.sleep(0.3)
        raise RuntimeError("the task itself fails, later")

    def on_success(self):
        mark(f"on_success {os.getpid()}")


@task
class PutValue(Task):
    kind: str = "unpicklable"

    def run(self):
        if self.kind == "unpicklable":
            self.shared_dict["v"] = Unpicklable()
        else:  # a class only this process has: pickles and unpickles here, not in the runner
            cls = type("OnlyHere", (), {"__module__": __name__})
            globals()["OnlyHere"] = cls
            self.shared_dict["v"] = cls()
        mark("after the write")


@task
class EndsLikeAProgram(Task):
    code: int = 0

    def run(self):
        atexit.register(mark, "atexit ran")
        MODULE_FILE.write("written by the task\n")
        from tasks import helper  # another module of the app, with its own module-level file

        helper.HELPER_FILE.write("written through a helper\n")
        print("a partial line without a newline", end="")
        if self.code:
            sys.exit(self.code)


@task
class Streams(Task):
    def run(self):
        out = sys.stdout
        mark(json.dumps({"fileno": out.fileno(), "encoding": out.encoding, "isatty": out.isatty(),
                         "err_fileno": sys.stderr.fileno(), "has_buffer": hasattr(out, "buffer")}))
        out.buffer.write(b"bytes line\n")
        out.buffer.write("split \u00e9".encode()[:-1])  # a character cut in two writes
        out.buffer.write("split \u00e9\n".encode()[-2:])
        os.write(out.fileno(), b"through the descriptor\n")


@task
class Mutate(Task):
    def run(self):
        self.shared_dict |= {"ior": 1}
        sd = self.shared_dict
        sd |= {"alias": 2}
        sd.update(upd=3)
        sd.setdefault("setdef", 4)
        sd["gone"] = 5
        del sd["gone"]
        sd["popped"] = 6
        sd.pop("popped")
        sd["item"] = 7
        json.dumps(dict(sd))
        try:
            self.shared_dict = {"replaced": True}
        except AttributeError as exc:
            mark(f"refused: {exc}")


@task
class Read(Task):
    def run(self):
        mark(json.dumps(dict(sorted(self.shared_dict.items()))))
'''


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_tasks("HELPER_FILE = open('helper-level.txt', 'a')\n", name="helper")
    return fmtester


def marks(project) -> list[str]:
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


def test_an_exception_whose_str_raises_still_fails_the_task(project, spawn_path):
    project.make_jobdef("tasks:\n  bad: {task: BadStr}\n  after: {task: Read, dependencies: [bad]}\n")
    result = project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states() == {"bad": "FAILED", "after": "DEFAULTED"}
    assert "run() raised Unprintable" in result.job.tasks["bad"].result.error


@pytest.mark.parametrize("how", ["exit0", "return"])
def test_only_the_tasks_own_process_reports(project, spawn_path, how):
    project.make_jobdef(
        f"tasks:\n  f: {{task: ForkExits, parameters: {{how: {how}}}}}\n  after: {{task: Read, dependencies: [f]}}\n"
    )
    result = project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states() == {"f": "FAILED", "after": "DEFAULTED"}
    assert "the task itself fails, later" in result.job.tasks["f"].result.error
    assert not [m for m in marks(project) if m.startswith("on_success")]  # not in the child either


def test_a_shared_value_that_does_not_unpickle_fails_the_task_where_it_is_written(project, spawn_path):
    project.make_jobdef("tasks:\n  p: {task: PutValue}\n  after: {task: Read, dependencies: [p]}\n")
    result = project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states() == {"p": "FAILED", "after": "DEFAULTED"}
    error = result.job.tasks["p"].result
    assert "shared_dict['v']: this value cannot be shared with other tasks: it pickles but cannot be unpickled" in (
        error.error
    )
    assert 'self.shared_dict["v"] = Unpicklable()' in error.traceback  # at the user's line
    assert "after the write" not in marks(project)


def test_a_shared_value_the_runner_cannot_read_fails_the_task_not_the_runner(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  p: {task: PutValue, parameters: {kind: only_here}}\n  after: {task: Read, dependencies: [p]}\n"
    )
    result = project.run_subprocess()
    assert result.ret == ExitCode.TASKS_FAILED, result.stdout + result.stderr
    assert "INTERNAL ERROR" not in result.stderr and "Traceback" not in result.stderr
    assert "shared_dict['v'] as the task wrote it cannot be read back" in result.stdout
    result.out.fnmatch_lines(["*DEFAULTED  after*"])


@pytest.mark.parametrize("code", [0, 3])
def test_a_task_process_ends_the_way_a_python_program_ends(project, spawn_path, code):
    project.make_jobdef(f"tasks:\n  e: {{task: EndsLikeAProgram, parameters: {{code: {code}}}}}\n  x: {{task: Read}}\n")
    result = project.run()
    assert (project.path / "module-level.txt").read_text() == "written by the task\n"
    assert (project.path / "helper-level.txt").read_text() == "written through a helper\n"
    assert "atexit ran" in marks(project)
    lines = [c.record.message for c in result.recorder.getcalls("flowmancer_task_log") if c.task.name == "e"]
    assert "a partial line without a newline" in lines
    e = result.job.tasks["e"].result
    assert e.exitcode == code
    assert e.state.value == ("COMPLETED" if code == 0 else "FAILED")


def test_task_stdout_and_stderr_are_real_text_streams(project, spawn_path):
    project.make_jobdef("tasks:\n  s: {task: Streams}\n")
    result = project.run()
    assert result.ret == 0, result.stdout + result.stderr
    info = json.loads(marks(project)[0])
    assert info == {"fileno": 1, "encoding": "utf-8", "isatty": False, "err_fileno": 2, "has_buffer": True}
    lines = [c.record.message for c in result.recorder.getcalls("flowmancer_task_log")]
    assert "bytes line" in lines and "split \u00e9" in lines and "through the descriptor" in lines


def test_every_mutating_mapping_operation_reaches_the_parent(project, spawn_path):
    project.make_jobdef("tasks:\n  m: {task: Mutate}\n  r: {task: Read, dependencies: [m]}\n")
    result = project.run()
    assert result.ret == 0, result.stdout + result.stderr
    expected = {"alias": 2, "ior": 1, "item": 7, "setdef": 4, "upd": 3}
    assert result.job.shared_dict == expected
    assert json.loads([m for m in marks(project) if m.startswith("{")][0]) == expected
    assert any(m.startswith("refused: shared_dict cannot be replaced") for m in marks(project))


def test_a_memory_limit_the_kernel_cannot_set_is_refused_before_anything_runs(project):
    project.make_jobdef("tasks:\n  big: {task: Read, memory_limit_mb: 1099511627777}\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR and "tasks.big.memory_limit_mb" in result.stderr
    project.make_jobdef("config:\n  task_defaults: {memory_limit_mb: 4096}\ntasks:\n  big: {task: Read}\n")
    limited = subprocess.run(  # a shell whose hard limit for a process's data is 1 GiB
        ["prlimit", f"--data={1 << 30}:{1 << 30}", sys.executable, "-m", "flowmancer", "-j", "job.yaml"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert limited.returncode == ExitCode.JOBDEF_ERROR, limited.stdout + limited.stderr
    assert "memory_limit_mb: 4096 MB is above the hard limit for a process's data here (1024 MB" in limited.stderr
    assert "config.task_defaults.memory_limit_mb" in limited.stderr
