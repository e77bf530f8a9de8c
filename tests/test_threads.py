"""The runner never forks while it has another thread (a component's event loop): a fork then could hand the
child a lock some thread held, forever, and Python 3.12+ warns "This process is multi-threaded, use of fork()
may lead to deadlocks". Each run below records, in the runner process itself, how many threads it had at every
``os.fork()``; the task processes then come from the fork server or a fresh interpreter instead."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from test_lifeline import descendants, gone_within, wait_for

from flowmancer.exitcode import ExitCode

TASKS = """
import os, time
from flowmancer.task import Task, task


@task
class Note(Task):
    seconds: float = 0.0

    def run(self):
        with open("notes.txt", "a") as f:
            f.write(f"start {self.task_info.name} {os.getpid()}\\n")
        time.sleep(self.seconds)
        print("hello from", self.task_info.name)
"""

LOGGER = """
from flowmancer.loggers.logger import Logger, logger


@logger
class Collect(Logger):
    async def update(self, evt):
        pass
"""

EXTENSION = """
from flowmancer.extensions.extension import Extension, extension


@extension
class Watchful(Extension):
    async def update(self, evt):
        pass
"""

#: runs ``flowmancer`` (or, as ``main.py``, a driver with its own task class) with ``os.fork`` wrapped to
#: write the runner's thread count at each fork to forks.txt
WRAPPER = """
import os
import sys
import threading

RUNNER = os.getpid()
_fork = os.fork


def fork():
    if os.getpid() == RUNNER:
        with open("forks.txt", "a") as f:
            f.write(f"{threading.active_count()}\\n")
    return _fork()


os.fork = fork
"""

CLI = (
    WRAPPER
    + """
if __name__ == "__main__":  # a fresh interpreter's multiprocessing re-imports this file
    sys.argv[0] = "flowmancer"
    from flowmancer.__main__ import main

    main()
"""
)

DRIVER = (
    WRAPPER
    + """
from flowmancer import Flowmancer
from flowmancer.task import Task, task


@task
class Local(Task):
    def run(self):
        with open("notes.txt", "a") as f:
            f.write(f"start {self.task_info.name} {os.getpid()}\\n")


if __name__ == "__main__":
    raise SystemExit(Flowmancer().start())
"""
)

WITH_LOGGER = "loggers:\n  mine: {logger: Collect}\n"
WITH_EXTENSION = "extensions:\n  mine: {extension: Watchful}\n"


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.makefile("loggers/collect.py", LOGGER)
    fmtester.makefile("extensions/watchful.py", EXTENSION)
    fmtester.makefile("cli.py", CLI)
    fmtester.makefile("main.py", DRIVER)
    return fmtester


def forks(project) -> list[int]:
    p = project.path / "forks.txt"
    return [int(n) for n in p.read_text().split()] if p.exists() else []


def started(project) -> list[str]:
    p = project.path / "notes.txt"
    return sorted(line.split()[1] for line in p.read_text().splitlines()) if p.exists() else []


WARNINGS = {"PYTHONWARNINGS": "always::DeprecationWarning"}  # shows the 3.12+ warning wherever it comes from


def test_without_components_the_runner_forks_its_tasks_itself(project):
    """The check below can fail: with no component there is no thread, and the runner forks (1 thread each)."""
    project.make_jobdef("tasks:\n  a: {task: Note}\n")
    result = project.run_python("cli.py", "-j", "job.yaml", "-q", env=WARNINGS)
    assert result.ret == ExitCode.OK, result.stderr
    assert forks(project) and set(forks(project)) == {1}
    assert started(project) == ["a"]


@pytest.mark.parametrize(
    ("head", "tasks", "server"),
    [
        (WITH_LOGGER, 1, ""),  # the one-task job the fork server is usually not kept for
        (WITH_LOGGER + WITH_EXTENSION, 3, ""),
        (WITH_EXTENSION, 3, "0"),  # no fork server allowed: each task in a fresh interpreter
    ],
    ids=["logger-1-task", "logger-extension-3-tasks", "no-fork-server"],
)
def test_no_fork_while_a_component_thread_runs(project, head, tasks, server):
    names = [f"t{i}" for i in range(tasks)]
    project.make_jobdef(head + "tasks:\n" + "".join(f"  {n}: {{task: Note}}\n" for n in names))
    result = project.run_python("cli.py", "-j", "job.yaml", "-s", env={**WARNINGS, "FLOWMANCER_FORK_SERVER": server})
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert set(forks(project)) <= {1}, f"forked with other threads running: {forks(project)}"
    assert "multi-threaded" not in result.stderr
    assert started(project) == names
    assert result.stdout.count("hello from") == tasks  # their output is captured as usual


def test_a_driver_task_class_runs_beside_a_component_thread(project):
    """A class defined in the driver (``__main__``) cannot go to the fork server: it runs in a fresh
    interpreter (``multiprocessing`` spawn re-imports the driver as ``__mp_main__``)."""
    project.make_jobdef(WITH_LOGGER + "tasks:\n  a: {task: Local}\n  b: {task: Note, dependencies: [a]}\n")
    result = project.run_python("main.py", "-j", "job.yaml", "-q", env=WARNINGS)
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert set(forks(project)) <= {1}, f"forked with other threads running: {forks(project)}"
    assert "multi-threaded" not in result.stderr
    assert started(project) == ["a", "b"]


@pytest.mark.skipif(sys.platform != "linux", reason="pidfds and /proc: Linux")
def test_sigkill_of_a_threaded_runner_leaves_no_task_process(project, launch):
    """Without a fork server, beside a component thread: the guardian is a fresh interpreter (not a fork), and
    still kills the task processes when the runner is SIGKILLed."""
    project.make_jobdef(WITH_LOGGER + "tasks:\n  a: {task: Note, parameters: {seconds: 30}}\n")
    proc = launch(env={"FLOWMANCER_FORK_SERVER": "0"})
    wait_for(lambda: started(project) == ["a"], what="task a to start")
    below = descendants(proc.pid)
    task_pid = int((project.path / "notes.txt").read_text().split()[2])
    assert task_pid in below and len(below) >= 2  # the task and its guardian
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert gone_within(below, 3.0) == set()
