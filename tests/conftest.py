from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

RECORDER_TASKS = '''
import os
import time

from flowmancer.task import Task, task


@task
class Record(Task):
    """Sleeps, then appends "<name> <start> <end> <attempt>" to events.txt (one line per attempt)."""

    sleep: float = 0.0
    fail_times: int = 0  # fail this many attempts, then succeed

    def run(self) -> None:
        t0 = time.time()
        time.sleep(self.sleep)
        info = self.task_info
        with open("events.txt", "a") as f:
            f.write(f"{info.name} {t0} {time.time()} {info.attempt}\\n")
        if info.attempt <= self.fail_times:
            raise RuntimeError(f"{info.name} failing attempt {info.attempt}")
'''


# Task classes the job-definition error tests and the bad-input corpus validate against.
GOOD_TASKS = """
from typing import List
from pydantic import SecretStr
from flowmancer.task import Task, task

@task
class DoSomething(Task):
    count: int
    names: List[str] = []

    def run(self):
        open("ran.txt", "a").write("ran\\n")

@task
class NeedsSecret(Task):
    password: SecretStr

    def run(self):
        print(self.password)
"""


class Timeline:
    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[tuple[str, float, float, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            name, t0, t1, attempt = line.split()
            out.append((name, float(t0), float(t1), int(attempt)))
        return out

    def names(self) -> list[str]:
        return [r[0] for r in sorted(self.rows(), key=lambda r: r[1])]

    def span(self, name: str) -> tuple[float, float]:
        rows = [r for r in self.rows() if r[0] == name]
        return rows[-1][1], rows[-1][2]

    def max_overlap(self) -> int:
        points = []
        for _, t0, t1, _ in self.rows():
            points += [(t0, 1), (t1, -1)]
        cur = best = 0
        for _, d in sorted(points, key=lambda p: (p[0], p[1])):
            cur += d
            best = max(best, cur)
        return best


@pytest.fixture(params=["direct", "server"])
def spawn_path(request, monkeypatch) -> str:
    """Run the test with tasks forked by the scheduler itself, then by the fork server."""
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1" if request.param == "server" else "0")
    if request.param == "direct":  # in-process runs fork only while this process has no other thread
        deadline = time.monotonic() + 10
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        assert not others, f"threads left by an earlier test would make this run spawn its tasks: {others}"
    return str(request.param)


@pytest.fixture
def recorder_project(fmtester):
    fmtester.make_tasks(RECORDER_TASKS, name="recorder")
    return fmtester


@pytest.fixture
def timeline(fmtester) -> Timeline:
    return Timeline(fmtester.path / "events.txt")


@pytest.fixture
def launch(fmtester):
    """``launch(*args)`` starts ``python -m flowmancer -j job.yaml *args`` in the project without waiting for
    it; whatever is still running when the test ends is killed (SIGKILL: the runner's guardian kills its tasks)."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, jobdef: str = "job.yaml", env: Optional[dict[str, str]] = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowmancer", "-j", jobdef, *args],
            cwd=fmtester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)


#: The smoke subset `.ci/run` runs on every other supported interpreter: the quickstart, a failing job, -r,
#: --watch start and stop, a plugin, output capture, an incremental rerun, the fork-warning check.
SMOKE = {
    "tests/test_readme_example.py::test_quickstart_example",
    "tests/test_readme_example.py::test_readme_start_returns_failed_plus_defaulted",
    "tests/test_checkpoint.py::test_readme_example_restart_reruns_only_the_failed_task",
    "tests/test_watch.py::test_sighup_stops_watching_with_129",
    "tests/test_plugins.py::test_dash_p_module_from_the_app_root_and_dotted",
    "tests/test_plugins.py::test_flowmancerconf_outermost_first_and_override_a_builtin",
    "tests/test_capture.py::test_stderr_is_error_whoever_writes_it[direct]",
    "tests/test_incremental.py::test_second_run_runs_nothing_and_restores_shared_dict",
    "tests/test_platform.py::test_without_pidfd_open_tasks_still_run",
    # -W error::DeprecationWarning cannot catch fork()'s warning (CPython clears it when it is an error): this
    # one shows it (PYTHONWARNINGS=always) and counts the runner's threads at every fork
    "tests/test_threads.py::test_no_fork_while_a_component_thread_runs[logger-extension-3-tasks]",
}


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "smoke: the subset run on every supported interpreter (.ci/run)")


#: Their in-process runs start a Dask client, and Dask keeps threads for the life of the process: a process
#: with threads never forks its tasks itself (localexec), so they run after every other test.
LAST = ("tests/test_dask.py::", "tests/test_dask_cluster.py::")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.nodeid in SMOKE:
            item.add_marker(pytest.mark.smoke)
    items.sort(key=lambda item: item.nodeid.startswith(LAST))  # stable: the order is otherwise kept
