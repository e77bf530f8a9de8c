"""--watch: reruns on edits of the YAML and task modules, in fresh processes; stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

TASKS = """
import time
from flowmancer.task import Task, task

@task
class Say(Task):
    pause: float = 0.0

    def run(self):
        print("says: version one")
        time.sleep(self.pause)

    def on_abort(self):
        open(f"aborted-{self.task_info.name}.txt", "a").write("x")
"""


class Watcher:
    def __init__(self, cwd, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowmancer", "--watch", "-s", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self):
        return "\n".join(self.lines)

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.time() + timeout
        while not predicate(self.text):
            if time.time() > deadline:
                raise AssertionError(f"timed out; output so far:\n{self.text}")
            time.sleep(0.05)

    def stop(self, sig=signal.SIGINT):
        os.killpg(self.proc.pid, sig)
        self.proc.wait(20)
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Say}\n")
    return fmtester


def test_watch_reruns_on_yaml_and_code_changes(project):
    """Every task reruns with --no-incremental (incremental reruns: test_incremental.py)."""
    w = Watcher(project.path, "-j", "job.yaml", "--no-incremental")
    try:
        w.wait_for(lambda t: t.count("=== 1 completed") == 1)
        time.sleep(0.3)
        project.make_jobdef("tasks:\n  a: {task: Say}\n  b: {task: Say}\n")
        w.wait_for(lambda t: "=== 2 completed" in t)
        assert "changed: job.yaml: rerunning" in w.text
        time.sleep(0.3)
        src = project.path / "tasks" / "mytasks.py"
        src.write_text(src.read_text().replace("version one", "version two"))
        w.wait_for(lambda t: t.count("[b] says: version two") == 1 and t.count("=== 2 completed") == 2)
        assert "changed: tasks/mytasks.py: rerunning" in w.text
        # An invalid YAML is reported and watching goes on.
        time.sleep(0.3)
        project.make_jobdef("tasks:\n  a: {task: Say\n")
        w.wait_for(lambda t: "YAML syntax error" in t)
        time.sleep(0.3)
        project.make_jobdef("tasks:\n  c: {task: Say}\n")
        w.wait_for(lambda t: "[c] says: version two" in t and t.rstrip().endswith("==="))
        # Log and checkpoint files written by the runs did not trigger reruns.
        assert w.text.count("rerunning") == 4
    finally:
        code = w.stop()
    assert code == 130
    assert "watch stopped" in w.text and "Traceback" not in w.text


def test_change_during_a_run_cancels_it_cleanly(project):
    project.make_jobdef("tasks:\n  slow: {task: Say, parameters: {pause: 30}}\n")
    w = Watcher(project.path, "-j", "job.yaml")
    try:
        w.wait_for(lambda t: "[slow] says: version one" in t)
        start = time.time()
        project.make_jobdef("tasks:\n  quick: {task: Say}\n")
        w.wait_for(lambda t: "[quick] says:" in t)
        assert time.time() - start < 5
        assert (project.path / "aborted-slow.txt").exists()  # on_abort ran in the cancelled run
        assert "interrupted by SIGINT: 1 aborted" in w.text
    finally:
        assert w.stop(signal.SIGTERM) == 143


def test_sighup_stops_watching_with_129(project):
    w = Watcher(project.path, "-j", "job.yaml")
    try:
        w.wait_for(lambda t: "=== 1 completed" in t)
    finally:
        code = w.stop(signal.SIGHUP)
    assert code == 129 and "watch stopped" in w.text and "Traceback" not in w.text


GATE = """
import os
from flowmancer.task import Task, task

@task
class Gate(Task):
    def run(self):
        open("gate-runs.txt", "a").write(self.task_info.name + "\\n")
        if self.task_info.name == "second" and not os.path.exists("fixed"):
            raise RuntimeError("not fixed yet")
"""


def test_restart_with_watch_resumes_each_rerun(project):
    project.make_tasks(GATE, name="gate")
    job = (
        "tasks:\n  first: {task: Gate}\n  second: {task: Gate, dependencies: [first]}\n"
        "  third: {task: Gate, dependencies: [second]}\n"
    )
    project.make_jobdef(job)
    w = Watcher(project.path, "-j", "job.yaml", "-r")
    try:
        w.wait_for(lambda t: "1 completed, 1 failed, 1 defaulted" in t)
        (project.path / "fixed").touch()
        time.sleep(0.2)
        project.make_jobdef(job + "# edited\n")
        w.wait_for(
            lambda t: "resuming from checkpoint: 1 completed task will not rerun" in t and "=== 3 completed" in t
        )
    finally:
        w.stop()
    # `first` did not run again: the rerun resumed from the failure.
    assert (project.path / "gate-runs.txt").read_text().split() == ["first", "second", "second", "third"]


def test_watch_with_the_incremental_plugin_blocked_reruns_everything(project):
    w = Watcher(project.path, "-j", "job.yaml", "-p", "no:incremental")
    try:
        w.wait_for(lambda t: "=== 1 completed" in t)
        time.sleep(0.3)
        project.make_jobdef("tasks:\n  a: {task: Say}\n  b: {task: Say}\n")
        w.wait_for(lambda t: "=== 2 completed" in t)
        assert "changed: job.yaml: rerunning" in w.text
    finally:
        w.stop()
    assert "unrecognized" not in w.text and "Traceback" not in w.text


PPID = """
import os
from flowmancer.task import Task, task

@task
class Parent(Task):
    def run(self):
        print(f"parent {os.getppid()}")
"""


def _session(sid: int) -> dict[int, str]:
    """pid -> command line of the processes of session ``sid``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(entry)] = cmd
    return found


def _standbys(sid: int) -> set[int]:
    return {pid for pid, cmd in _session(sid).items() if "flowmancer.standby" in cmd}


def test_a_rerun_runs_in_the_interpreter_started_before_the_change(project):
    """The next run's interpreter is started (and imports flowmancer) while the last one runs; a change hands
    the rerun to it: the task's parent is that process, which existed before the file was saved."""
    project.make_tasks(PPID, name="parent")
    project.make_jobdef("tasks:\n  p: {task: Parent}\n")
    w = Watcher(project.path, "-j", "job.yaml")
    try:
        w.wait_for(lambda t: "=== 1 completed" in t)
        first = int(w.text.split("parent ")[1].split()[0])
        waiting = _standbys(w.proc.pid) - {first}
        assert len(waiting) == 1, _session(w.proc.pid)
        src = project.path / "tasks" / "parent.py"
        src.write_text(src.read_text().replace('f"parent ', 'f"rerun parent '))
        w.wait_for(lambda t: t.count("=== 1 completed") == 2)
        assert f"rerun parent {waiting.pop()}" in w.text
    finally:
        w.stop()


def test_a_killed_watcher_leaves_no_process_behind(project):
    """SIGKILL (the OOM killer) gives the watcher no chance to clean up: the interpreter waiting for the next
    run sees its pipe close and exits."""
    w = Watcher(project.path, "-j", "job.yaml")
    w.wait_for(lambda t: "=== 1 completed" in t)
    deadline = time.time() + 20
    while not _standbys(w.proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    sid = w.proc.pid
    assert _standbys(sid)
    w.proc.kill()
    w.proc.wait(10)
    deadline = time.time() + 20
    while _session(sid) and time.time() < deadline:
        time.sleep(0.05)
    assert _session(sid) == {}


def test_a_killed_waiting_interpreter_is_replaced_on_the_next_save(project):
    """Someone kills the interpreter waiting for the next rerun (a stray-process sweep): the save still reruns."""
    w = Watcher(project.path, "-j", "job.yaml", "--no-incremental")
    try:
        w.wait_for(lambda t: "=== 1 completed" in t)
        deadline = time.time() + 20
        while len(_standbys(w.proc.pid)) != 1 and time.time() < deadline:  # once the first run's processes exit
            time.sleep(0.05)
        waiting = _standbys(w.proc.pid)
        assert len(waiting) == 1, _session(w.proc.pid)
        victim = waiting.pop()
        os.kill(victim, signal.SIGKILL)
        project.make_jobdef("tasks:\n  a: {task: Say}\n  b: {task: Say}\n")
        w.wait_for(lambda t: "=== 2 completed" in t)
    finally:
        code = w.stop()
    assert code == 130 and "Traceback" not in w.text
