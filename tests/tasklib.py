"""Task modules and helpers several test files share (imported by them: the tests folder is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

#: the start both task modules share: their imports and ``mark``, which appends a line to marks.txt
_PRELUDE = r"""
import os
import signal
import subprocess
import sys
import time
from flowmancer.task import Task, task

def mark(what):
    with open("marks.txt", "a") as f:
        f.write(what + "\n")
"""

ROBUST_TASKS = (
    _PRELUDE
    + r"""

@task
class Sleepy(Task):
    seconds: float = 30
    ignore_term: bool = False
    spawn_child: bool = False

    def run(self):
        name = self.task_info.name
        with open(f"pid-{name}.txt", "w") as f:
            f.write(str(os.getpid()))
        if self.spawn_child:
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            with open(f"grandchild-{name}.txt", "w") as f:
                f.write(str(child.pid))
        mark(f"{name} start {self.task_info.attempt}")
        time.sleep(self.seconds)
        mark(f"{name} end")

    def on_abort(self):
        mark(f"{self.task_info.name} on_abort")
        if self.ignore_term:
            time.sleep(60)

@task
class Spin(Task):
    def run(self):
        while True:
            pass

@task
class Raise(Task):
    exc: str = "ValueError"
    times: int = 99

    def run(self):
        mark(f"{self.task_info.name} attempt {self.task_info.attempt} {time.time()}")
        if self.task_info.attempt <= self.times:
            import builtins
            raise getattr(builtins, self.exc)("raised on purpose")

@task
class Crash(Task):
    def run(self):
        mark(f"{self.task_info.name} attempt {self.task_info.attempt}")
        os._exit(9)

@task
class Mark(Task):
    def run(self):
        mark(f"{self.task_info.name} ran")

@task
class Hog(Task):
    megabytes: int = 500

    def run(self):
        blob = bytearray(self.megabytes * 1024 * 1024)
        mark(f"allocated {len(blob)}")

@task
class Flood(Task):
    lines: int = 0
    one_line_mb: int = 0

    def run(self):
        for i in range(self.lines):
            print(f"line {i}")
        if self.one_line_mb:
            sys.stdout.write("x" * (self.one_line_mb * 1024 * 1024) + "\n")
"""
)

STEP_TASKS = (
    _PRELUDE
    + """

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
)


#: a job of STEP_TASKS with tags
DAG = """
tasks:
  extract: {task: Step, tags: [nightly]}
  load-slow: {task: Step, dependencies: [extract], tags: [nightly, slow]}
  load-fast: {task: Step, dependencies: [extract], tags: [nightly]}
  upload: {task: IOStep, dependencies: [load-fast]}
  report: {task: Step, dependencies: [load-slow, load-fast]}
"""


def marks(project) -> list[str]:
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


def ran(project) -> list[str]:
    """The tasks that marked "<name> ran" since the last call (the marks file is emptied)."""
    p = project.path / "marks.txt"
    out = sorted(ln.split()[0] for ln in p.read_text().splitlines() if ln.endswith(" ran")) if p.exists() else []
    p.unlink(missing_ok=True)
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def start_job(project, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_files(project, *names, timeout=20):
    deadline = time.time() + timeout
    while not all((project.path / n).exists() and (project.path / n).read_text() for n in names):
        assert time.time() < deadline, f"never saw {names}"
        time.sleep(0.02)


def processes_with(marker: str) -> list[int]:
    """The pids of the processes whose environment holds ``marker`` (``NAME=value``): a run's leftovers."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found
