"""Timeouts, retry policy, trigger rules, abort, resource exhaustion: real processes and signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flowmancer import hookimpl
from flowmancer.exitcode import ExitCode
from flowmancer.retry import retry_delay
from flowmancer.scheduler import decide

TASKS = r"""
import os
import signal
import subprocess
import sys
import time
from flowmancer.task import Task, task

def mark(what):
    with open("marks.txt", "a") as f:
        f.write(what + "\n")

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


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def marks(project):
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


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


# -- timeouts ---------------------------------------------------------------------------------------


def test_timeout_stops_the_task_runs_on_abort_and_retries(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  slow: {task: Sleepy, timeout: 0.5, max_attempts: 2}\n  after: {task: Mark, dependencies: [slow]}\n"
    )
    start = time.time()
    result = project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert time.time() - start < 5
    t = result.job.tasks["slow"]
    assert [h.error for h in t.history] == ["timed out after 0.5 s", "timed out after 0.5 s"]
    assert [h.failure_kind for h in t.history] == ["timeout", "timeout"]
    assert marks(project).count("slow on_abort") == 2
    assert "slow end" not in marks(project)
    assert result.states()["after"] == "DEFAULTED"
    result.out.fnmatch_lines(["*timed out after 0.5 s*"])


def test_infinite_loop_is_reported_as_timed_out_via_config_default(project):
    project.make_jobdef("config:\n  task_defaults: {timeout: 0.3}\ntasks:\n  spin: {task: Spin}\n")
    result = project.run()
    assert result.job.tasks["spin"].result.error == "timed out after 0.3 s"


def test_task_ignoring_sigterm_is_killed_after_the_grace_period(project, spawn_path):
    project.make_jobdef(
        "config: {abort_grace_seconds: 0.5}\ntasks:\n  stubborn: {task: Sleepy, timeout: 0.3, parameters: {ignore_term: true}}\n"
    )
    start = time.time()
    result = project.run()
    assert time.time() - start < 4
    assert result.job.tasks["stubborn"].result.error == "timed out after 0.3 s"
    assert "stubborn on_abort" in marks(project)


# -- retry policy -----------------------------------------------------------------------------------


def test_exponential_backoff_with_cap(project):
    project.make_jobdef(
        "tasks:\n  r: {task: Raise, max_attempts: 5, backoff: 0.1, backoff_factor: 2, backoff_max: 0.3}\n"
    )
    result = project.run()
    assert result.ret == 1
    times = [float(m.split()[-1]) for m in marks(project)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.3, 0.3]):
        assert expected <= gap < expected + 0.25, gaps
    assert [round(h.retry_delay, 3) for h in result.job.tasks["r"].history[:-1]] == [0.1, 0.2, 0.3, 0.3]


def test_retry_delay_formula_and_jitter():
    assert [retry_delay(n, 1.0, 3.0, None, 0) for n in (1, 2, 3)] == [1.0, 3.0, 9.0]
    assert retry_delay(4, 1.0, 3.0, 10.0, 0) == 10.0
    samples = [retry_delay(1, 2.0, 1.0, None, 0.5) for _ in range(200)]
    assert all(1.0 <= s <= 3.0 for s in samples) and len(set(samples)) > 100


@pytest.mark.parametrize(
    ("settings", "task", "attempts"),
    [
        ("retry_on: [ValueError]", "Raise", 3),
        ("retry_on: [LookupError]", "Raise, parameters: {exc: KeyError}", 3),  # a base class matches
        ("retry_on: [builtins.KeyError]", "Raise, parameters: {exc: KeyError}", 3),
        ("retry_on: [ValueError]", "Raise, parameters: {exc: KeyError}", 1),
        ("no_retry_on: [KeyError]", "Raise, parameters: {exc: KeyError}", 1),
        ("no_retry_on: [crash]", "Crash", 1),
        ("retry_on: [crash]", "Crash", 3),
        ("retry_on: [timeout]", "Raise", 1),
    ],
)
def test_retry_on_and_no_retry_on(project, settings, task, attempts):
    project.make_jobdef(f"tasks:\n  t: {{task: {task}, max_attempts: 3, {settings}}}\n")
    result = project.run()
    assert result.ret == 1
    assert result.job.tasks["t"].attempt == attempts


def test_task_defaults_apply_and_tasks_override(project):
    project.make_jobdef(
        "config:\n  task_defaults: {max_attempts: 3}\ntasks:\n  a: {task: Raise}\n  b: {task: Raise, max_attempts: 1}\n"
    )
    result = project.run()
    assert result.job.tasks["a"].attempt == 3 and result.job.tasks["b"].attempt == 1


def test_waiting_for_a_retry_holds_no_concurrency_slot(project):
    project.make_jobdef(
        "config: {max_concurrency: 1}\n"
        "tasks:\n  flaky: {task: Raise, max_attempts: 2, backoff: 1.0}\n  other: {task: Mark}\n"
    )
    result = project.run()
    lines = marks(project)
    assert lines.index("other ran") == 1  # ran while flaky waited for its second attempt
    assert result.job.tasks["flaky"].attempt == 2


# -- trigger rules ----------------------------------------------------------------------------------


def test_decide_table():
    assert decide("all_success", 2, 1, 0, 0) is None
    assert decide("all_success", 2, 2, 0, 0) == "run"
    assert decide("all_success", 2, 1, 1, 1) == "default"
    assert decide("all_done", 2, 2, 2, 2) == "run"
    assert decide("one_failed", 2, 1, 1, 1) == "run"
    assert decide("one_failed", 2, 2, 0, 0) == "skip"
    assert decide("none_failed", 2, 2, 1, 0) == "run"  # a DEFAULTED dependency does not block it
    assert decide("none_failed", 2, 1, 1, 1) == "default"


def test_trigger_rules(project):
    project.make_jobdef(
        """
        tasks:
          bad: {task: Raise, max_attempts: 1}
          good: {task: Mark}
          after-bad: {task: Mark, dependencies: [bad]}
          cleanup: {task: Mark, trigger: all_done, dependencies: [bad, good]}
          alert: {task: Mark, trigger: one_failed, dependencies: [bad, good]}
          no-alert: {task: Mark, trigger: one_failed, dependencies: [good]}
          report: {task: Mark, trigger: none_failed, dependencies: [bad]}
          report-2: {task: Mark, trigger: none_failed, dependencies: [after-bad, good]}
          after-alert: {task: Mark, dependencies: [alert, no-alert]}
        """
    )
    result = project.run()
    assert result.states() == {
        "bad": "FAILED",
        "good": "COMPLETED",
        "after-bad": "DEFAULTED",
        "cleanup": "COMPLETED",
        "alert": "COMPLETED",
        "no-alert": "SKIPPED",
        "report": "DEFAULTED",
        "report-2": "COMPLETED",
        "after-alert": "COMPLETED",
    }
    assert "trigger one_failed and no dependency failed" in result.job.tasks["no-alert"].result.error


def test_unknown_trigger_is_a_jobdef_error(project):
    project.make_jobdef("tasks:\n  a: {task: Mark, trigger: sometimes}\n")
    result = project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR and "tasks.a.trigger" in result.stderr
    assert "'all_success', 'all_done', 'one_failed' or 'none_failed'" in result.stderr


# -- abort ------------------------------------------------------------------------------------------


def _start(project, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_files(project, *names, timeout=20):
    deadline = time.time() + timeout
    while not all((project.path / n).exists() and (project.path / n).read_text() for n in names):
        assert time.time() < deadline, f"never saw {names}"
        time.sleep(0.02)


def test_sigint_aborts_cleanly_and_restart_completes(project, spawn_path):
    project.make_jobdef(
        "config: {name: abortme}\ntasks:\n  first: {task: Mark}\n"
        "  s1: {task: Sleepy, dependencies: [first], parameters: {spawn_child: true}}\n"
        "  s2: {task: Sleepy, dependencies: [first]}\n  last: {task: Mark, dependencies: [s1, s2]}\n"
    )
    proc = _start(project)
    _wait_files(project, "pid-s1.txt", "pid-s2.txt", "grandchild-s1.txt")
    pids = [int((project.path / f).read_text()) for f in ("pid-s1.txt", "pid-s2.txt", "grandchild-s1.txt")]
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.INTERRUPTED
    assert "Traceback" not in err
    assert "interrupted by SIGINT: 1 completed, 2 aborted, 1 not run" in out
    assert {"s1 on_abort", "s2 on_abort"} <= set(marks(project))
    deadline = time.time() + 2
    while any(pid_alive(p) for p in pids):  # tasks and what they started: gone within 2 s
        assert time.time() < deadline, [p for p in pids if pid_alive(p)]
        time.sleep(0.05)
    from flowmancer.checkpointer.file import FileCheckpointer

    reader = FileCheckpointer()
    reader._fm_root = project.path
    states = reader.read_checkpoint("abortme").states
    assert states == {"COMPLETED": {"first"}, "ABORTED": {"s1", "s2"}, "INIT": {"last"}}

    project.make_jobdef(
        "config: {name: abortme}\ntasks:\n  first: {task: Mark}\n"
        "  s1: {task: Sleepy, dependencies: [first], parameters: {seconds: 0}}\n"
        "  s2: {task: Sleepy, dependencies: [first], parameters: {seconds: 0}}\n  last: {task: Mark, dependencies: [s1, s2]}\n"
    )
    (project.path / "marks.txt").unlink()
    result = project.run("-r")
    assert result.ret == 0
    assert "first ran" not in marks(project) and "last ran" in marks(project)


def test_second_ctrl_c_kills_at_once(project, spawn_path):
    project.make_jobdef("tasks:\n  stubborn: {task: Sleepy, parameters: {ignore_term: true}}\n")
    proc = _start(project)
    _wait_files(project, "pid-stubborn.txt")
    pid = int((project.path / "pid-stubborn.txt").read_text())
    os.killpg(proc.pid, signal.SIGINT)
    _wait_files(project, "marks.txt")
    deadline = time.time() + 5
    while "stubborn on_abort" not in marks(project):
        assert time.time() < deadline
        time.sleep(0.02)
    start = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.time() - start < 2
    assert proc.returncode == ExitCode.INTERRUPTED and "Traceback" not in err
    time.sleep(0.2)
    assert not pid_alive(pid)


# -- resource exhaustion ----------------------------------------------------------------------------


def test_memory_limit(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  hog: {task: Hog, memory_limit_mb: 100}\n  fine: {task: Hog, parameters: {megabytes: 10}, memory_limit_mb: 100}\n"
    )
    result = project.run()
    hog = result.job.tasks["hog"].result
    assert hog.state.value == "FAILED"
    assert "MemoryError" in hog.error and "memory limit of 100 MB reached" in hog.error
    assert result.states()["fine"] == "COMPLETED"


def test_a_million_lines_and_a_50_mb_line_do_not_deadlock(project, spawn_path):
    project.make_jobdef(
        "tasks:\n  lines: {task: Flood, parameters: {lines: 1000000}}\n  big: {task: Flood, parameters: {one_line_mb: 50}}\n"
    )
    result = project.run_subprocess("-q", "-p", "no:filelogger", timeout=300)
    assert result.ret == 0, result.stderr


# -- security ---------------------------------------------------------------------------------------


def test_secrets_never_show_and_files_are_private(fmtester):
    fmtester.make_tasks(
        "from pydantic import SecretStr\nfrom flowmancer.task import Task, task\n\n@task\nclass Login(Task):\n"
        "    password: SecretStr\n    def run(self):\n        print('using', self.password)\n"
        "        raise RuntimeError(f'login failed with {self.password}')\n"
    )
    fmtester.make_jobdef("tasks:\n  login: {task: Login, parameters: {password: hunter2}}\n")
    for args in (("-s",), ("-n",), ("--list",), ("-v",)):
        result = fmtester.run_subprocess(*args)
        assert "hunter2" not in result.stdout + result.stderr, args
    run = sorted((fmtester.path / "logs").iterdir())[-1]  # -s and -v ran the job; -n and --list did not
    log = run / "login.log"
    assert "using **********" in log.read_text() and "hunter2" not in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o640"
    assert oct(run.stat().st_mode & 0o777) == "0o750"
    cp = fmtester.path / ".flowmancer" / "job.jsonl"  # a job without config.name is named by its file
    assert oct(cp.stat().st_mode & 0o777) == "0o600" and "hunter2" not in cp.read_text()
    assert oct(cp.parent.stat().st_mode & 0o777) == "0o700"


class _AbortAtStart:
    """Asks for an abort the moment the first task has started: its process is still starting up."""

    @hookimpl
    def flowmancer_task_start(self, job, task):
        job.stop(abort=True, reason="abort at once")


def test_abort_right_after_spawn_still_runs_on_abort(project, spawn_path):
    """SIGTERM is blocked while a task process is made and unblocked once its handler is in place, so an
    abort that arrives during start-up is not lost (nor does it kill the process before ``on_abort``)."""
    project.make_jobdef("tasks:\n  s: {task: Sleepy, parameters: {seconds: 5}}\n")
    start = time.time()
    result = project.run(plugins=(_AbortAtStart(),))
    assert time.time() - start < 4  # not waiting for the grace period's SIGKILL
    assert result.states()["s"] == "ABORTED"
    assert "s on_abort" in marks(project)
