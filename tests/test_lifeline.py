"""Task processes live and die with their runner: SIGKILL of the runner alone, SIGHUP, what a task leaves
behind, the descriptors a task process holds, Ctrl-C while flowmancer starts. Real processes and signals."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flowmancer.exitcode import ExitCode

TASKS = r"""
import os
import subprocess
import sys
import time
from flowmancer.task import Task, task


def note(text):
    with open("notes.txt", "a") as f:
        f.write(text + "\n")


@task
class Work(Task):
    seconds: float = 1.5
    spawn_child: bool = True

    def run(self):
        name = self.task_info.name
        if self.spawn_child:  # something the task started: in its process group
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            note(f"child {name} {child.pid}")
        note(f"start {name} {os.getpid()} {time.time()}")
        time.sleep(self.seconds)
        note(f"end {name} {os.getpid()} {time.time()}")

    def on_abort(self):
        note(f"abort {self.task_info.name}")


@task
class LeaveBehind(Task):
    how: str = "double_fork"

    def run(self):
        if self.how == "double_fork":
            r, w = os.pipe()
            if os.fork() == 0:
                if os.fork() == 0:
                    note(f"left {os.getpid()}")
                    os.write(w, b"x")
                    time.sleep(30)
                os._exit(0)
            os.read(r, 1)  # the daemon is up
        else:
            import multiprocessing
            p = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
            p.start()
            note(f"left {p.pid}")


"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def notes(project) -> list[str]:
    p = project.path / "notes.txt"
    return p.read_text().splitlines() if p.exists() else []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (walks /proc by parent pid)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent_of[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier} - out
        out |= frontier
    return out


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return set()
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


@pytest.mark.parametrize("server", ["0", "1"])
def test_sigkill_of_the_runner_alone_leaves_no_task_process(project, launch, server):
    """The OOM killer's case: only the runner's pid gets SIGKILL. Its task processes, what they started and
    the fork server are gone within 2 s, and ``-r`` then runs each unfinished task once, never twice at once."""
    project.make_jobdef(
        "config: {name: killed}\ntasks:\n"
        "  a: {task: Work, parameters: {seconds: 2}}\n  b: {task: Work, parameters: {seconds: 2}}\n"
    )
    env = {"FLOWMANCER_FORK_SERVER": server}
    proc = launch(env=env)
    wait_for(lambda: sum(n.startswith("start") for n in notes(project)) == 2, what="both tasks to start")
    below = descendants(proc.pid)
    task_pids = {int(n.split()[2]) for n in notes(project) if n.startswith(("start", "child"))}
    assert task_pids <= below
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert gone_within(below, 2.0) == set()
    assert not [n for n in notes(project) if n.startswith("end")]  # killed before they finished

    result = project.run_subprocess("-r", env=env)
    assert result.ret == 0, result.stdout + result.stderr
    spans: dict[str, list[tuple[float, float]]] = {}
    starts = {n.split()[2]: float(n.split()[3]) for n in notes(project) if n.startswith("start")}
    for n in notes(project):
        if n.startswith("end"):
            _, name, pid, t1 = n.split()
            spans.setdefault(name, []).append((starts[pid], float(t1)))
    assert sorted(spans) == ["a", "b"] and all(len(v) == 1 for v in spans.values())


@pytest.mark.parametrize("server", ["0", "1"])
def test_sighup_aborts_like_sigterm(project, launch, server):
    project.make_jobdef("tasks:\n  a: {task: Work, parameters: {seconds: 30}}\n  b: {task: Work, dependencies: [a]}\n")
    proc = launch(env={"FLOWMANCER_FORK_SERVER": server})
    wait_for(lambda: any(n.startswith("start a") for n in notes(project)), what="task a to start")
    below = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGHUP)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.HANGUP == 129
    assert "abort a" in notes(project)
    assert "interrupted by SIGHUP: 1 aborted, 1 not run" in out
    assert "Traceback" not in err
    assert gone_within(below, 2.0) == set()


@pytest.mark.parametrize("how", ["double_fork", "multiprocessing"])
def test_what_a_task_leaves_in_its_group_is_killed_and_does_not_hold_the_run(project, spawn_path, how):
    project.make_jobdef(
        f"tasks:\n  t: {{task: LeaveBehind, parameters: {{how: {how}}}}}\n  u: {{task: Work, parameters: {{seconds: 0}}}}\n"
    )
    t0 = time.time()
    result = project.run_subprocess("-q")
    assert result.ret == 0, result.stderr
    assert time.time() - t0 < 10  # not the left-behind process's 30 s
    left = [int(n.split()[1]) for n in notes(project) if n.startswith("left")]
    assert left and gone_within(set(left), 2.0) == set()


FDS = r"""
import os
from flowmancer.task import Task, task

LOG = open("module-level.txt", "a")  # the module's own file: its task processes keep it


@task
class Fds(Task):
    def run(self):
        kinds = {}
        for fd in sorted(int(fd) for fd in os.listdir("/proc/self/fd")):
            try:
                kinds[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # the listing's own descriptor, closed by now
                pass
        with open("notes.txt", "a") as f:
            f.write("fds " + " ".join(f"{fd}={what}" for fd, what in kinds.items()) + "\n")
"""


def test_a_task_process_holds_only_its_pipes_stdio_and_its_modules_files(project, spawn_path):
    project.make_tasks(FDS, name="fdtasks")
    project.make_jobdef(
        "config: {name: fds}\ntasks:\n  a: {task: Fds}\n  b: {task: Fds}\n  c: {task: Work, parameters: {seconds: 0}}\n"
    )
    result = project.run_subprocess("-q")
    assert result.ret == 0, result.stderr
    lines = [n for n in notes(project) if n.startswith("fds")]
    assert len(lines) == 2
    for line in lines:
        fds = dict(item.split("=", 1) for item in line.split()[1:])
        others = {fd: what for fd, what in fds.items() if int(fd) > 2}
        pipes = [w for w in others.values() if w.startswith("pipe:")]
        files = [w for w in others.values() if not w.startswith("pipe:")]
        assert len(pipes) == 1, others  # its event pipe (stdout and stderr are its two output pipes)
        assert [Path(f).name for f in files] == ["module-level.txt"], others  # no checkpoint, no lock, no socket


def test_ctrl_c_that_python_swallows_while_starting_still_stops_the_run(project):
    """A KeyboardInterrupt raised inside a callback (an import lock's, a finalizer) is only reported by Python,
    never raised: the runner remembers the Ctrl-C and aborts as soon as its scheduler starts."""
    project.make_conf(
        """
        import os, signal, weakref
        from flowmancer import hookimpl

        class Thing:
            pass

        @hookimpl
        def flowmancer_job_start(job):
            thing = Thing()
            ref = weakref.ref(thing, lambda r: os.kill(os.getpid(), signal.SIGINT))  # raises in the callback
            del thing
        """
    )
    project.make_jobdef("tasks:\n  a: {task: Work, parameters: {seconds: 5, spawn_child: false}}\n")
    result = project.run_subprocess(timeout=30)
    assert result.ret == ExitCode.INTERRUPTED, result.stdout + result.stderr
    assert "KeyboardInterrupt" not in result.stderr and "Traceback" not in result.stderr
    assert result.duration < 4, "task a ran its 5 seconds: the swallowed Ctrl-C was lost"


def test_ctrl_c_while_the_runner_exits_ends_it_at_once_without_a_traceback(project, launch):
    """The run is over but the interpreter is still exiting (a plugin's atexit handler, here a slow one): a
    Ctrl-C then raised KeyboardInterrupt inside the interpreter's exit and printed a traceback."""
    project.makefile(
        "flowmancerconf.py",
        """
        import atexit, time

        def slow_goodbye():
            open("exiting", "w").close()
            time.sleep(30)

        atexit.register(slow_goodbye)
        """,
    )
    project.make_jobdef("tasks:\n  a: {task: Work, parameters: {seconds: 0, spawn_child: false}}\n")
    proc = launch()
    wait_for(lambda: (project.path / "exiting").exists(), what="the runner's exit")
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert time.time() - t0 < 5
    assert proc.returncode == ExitCode.INTERRUPTED and "=== 1 completed" in out, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_ctrl_c_while_starting_exits_130_without_a_traceback(project, launch):
    """From the moment flowmancer's own code runs (it starts its fork server first thing) to the first task."""
    project.make_jobdef("tasks:\n  a: {task: Work, parameters: {seconds: 5, spawn_child: false}}\n  b: {task: Work}\n")
    for delay in (0.0, 0.03, 0.06, 0.1, 0.15, 0.25, 0.4):
        proc = launch()
        wait_for(lambda: descendants(proc.pid), what="flowmancer's code to start (its fork server)")  # noqa: B023
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == ExitCode.INTERRUPTED, (delay, out, err)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, (delay, err)
