"""The Dask executor on workers that cannot see the project: its code is shipped, its values travel pickled;
cluster classes from config.dask (dask_jobqueue's local one for real), resources, and the executor choice."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'flowmancer[dask]')")

from flowmancer.exitcode import ExitCode  # noqa: E402

HELPERS = """
def label(name):
    return f"<{name}>"
"""

TASKS = """
import datetime as dt
import os
import sys

from flowmancer.task import Task, task
from helpers import label

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@task
class Produce(Task):
    project: str = ""

    def run(self):
        self.shared_dict["seen_project"] = os.path.isdir(self.project)
        self.shared_dict["tags"] = {"a", "b"}
        self.shared_dict["when"] = dt.datetime(2026, 12, 2, 12, 0)
        self.shared_dict["by_id"] = {1: "one", 2: "two"}
        self.shared_dict["label"] = label("produce")


@task
class Consume(Task):
    def run(self):
        sd = self.shared_dict
        assert sd["tags"] == {"a", "b"} and isinstance(sd["when"], dt.datetime) and sd["by_id"][1] == "one"
        self.shared_dict["summary"] = f"{label('consume')} {sorted(sd['tags'])} {sd['when'].isoformat()}"
        print(f"worker code from: {sys.modules['helpers'].__file__}")
"""

JOB = """
tasks:
  produce: {{task: Produce, parameters: {{project: "{root}"}}}}
  consume: {{task: Consume, dependencies: [produce]}}
"""


_cluster_info: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_hide() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def start_worker(address: str, hide, cwd: str, resources: str) -> subprocess.Popen:
    """A `dask worker` process in ``cwd``; with ``hide``, in a mount namespace where that folder is empty."""
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"]
    if hide is not None:
        worker = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(hide), *worker]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen(
        [*worker, "--resources", resources],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def hidden_cluster(tmp_path_factory):
    """A `dask scheduler` and two `dask worker` processes started in another folder; as root, each worker in
    its own mount namespace where the tests' whole temporary folder (every project) is an empty tmpfs."""
    hide = tmp_path_factory.getbasetemp()
    elsewhere = tempfile.mkdtemp(prefix="fm-elsewhere-")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port)]
    procs = [
        subprocess.Popen(
            [*scheduler_cmd, "--dashboard-address", ":0"],
            cwd=elsewhere,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    hidden = _can_hide()
    time.sleep(1.0)
    procs += [start_worker(address, hide if hidden else None, elsewhere, f"GPU={i + 1}") for i in range(2)]
    from distributed import Client

    with Client(address, timeout="20s") as c:
        c.wait_for_workers(2, timeout=30)
    _cluster_info.update(hide=hide if hidden else None, cwd=elsewhere)
    yield address, hidden
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(20)
    shutil.rmtree(elsewhere, ignore_errors=True)


@pytest.fixture
def project(fmtester):
    fmtester.makefile("helpers.py", HELPERS)
    fmtester.make_tasks(TASKS, name="flow", package=False)
    fmtester.make_jobdef(JOB.format(root=fmtester.path))
    return fmtester


def code_plugins(address: str) -> list[str]:
    from distributed import Client

    with Client(address, timeout="10s") as c:
        names = c.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    return [n for n in names if n.startswith("flowmancer-code-")]


def test_workers_that_cannot_see_the_project_run_it(project, hidden_cluster):
    address, hidden = hidden_cluster
    before = code_plugins(address)
    result = project.run("--dask-scheduler", address, "-s")  # an address implies --executor dask
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    sd = result.job.shared_dict
    if hidden:
        assert sd["seen_project"] is False  # the project folder does not exist where the task ran
    assert sd["tags"] == {"a", "b"} and sd["by_id"] == {1: "one", 2: "two"}  # values as locally
    assert sd["summary"] == "<consume> ['a', 'b'] 2026-12-02T12:00:00"
    assert "flowmancer-code-" in result.stdout and ".zip" in result.stdout  # the helper came from the archive
    shipped = code_plugins(address)
    assert len(shipped) == len(before) + 1
    again = project.run("--dask-scheduler", address)
    assert again.ret == ExitCode.OK and code_plugins(address) == shipped  # unchanged code is not sent again
    helpers = project.path / "helpers.py"
    helpers.write_text(helpers.read_text().replace("<{name}>", "[{name}]"))
    changed = project.run("--dask-scheduler", address)
    assert changed.ret == ExitCode.OK and changed.job.shared_dict["label"] == "[produce]"  # the new code ran
    assert len(code_plugins(address)) == len(shipped) + 1


def test_a_library_the_workers_lack_is_named(project, hidden_cluster, tmp_path_factory):
    address, _ = hidden_cluster
    vendor = tmp_path_factory.mktemp("vendor")
    (vendor / "vendorlib").mkdir()
    (vendor / "vendorlib" / "__init__.py").write_text("VALUE = 1\n")
    project.make_tasks(
        """
        import vendorlib
        from flowmancer.task import Task, task

        @task
        class NeedsVendor(Task):
            def run(self):
                print(vendorlib.VALUE)
        """,
        name="vendored",
        package=False,
    )
    project.make_jobdef("tasks:\n  v: {task: NeedsVendor}\n")
    result = project.run_subprocess("--dask-scheduler", address, env={"PYTHONPATH": str(vendor)}, timeout=120)
    assert result.ret == ExitCode.TASKS_FAILED, result.stdout + result.stderr
    assert "cannot import the task module 'tasks.vendored': no module named 'vendorlib'" in result.stdout
    assert "install 'vendorlib' in the workers' environment" in result.stdout
    assert "worker tcp://127.0.0.1:" in result.stdout


def test_resources_go_to_the_workers(project, hidden_cluster):
    address, _ = hidden_cluster
    project.make_jobdef(
        "tasks:\n  big: {task: Produce, resources: {GPU: 2}}\n  small: {task: Produce, resources: {GPU: 1}}\n"
    )
    result = project.run("--dask-scheduler", address)
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    project.make_jobdef("tasks:\n  tpu: {task: Produce, resources: {TPU: 1}}\n")
    refused = project.run_subprocess("--dask-scheduler", address, timeout=120)
    assert refused.ret == ExitCode.USAGE_ERROR
    assert "no Dask worker offers what these tasks need: tpu (TPU=1)" in refused.stderr
    assert "GPU=1, GPU=2" in refused.stderr and '--resources "TPU=1"' in refused.stderr


def test_the_executor_choice_is_explicit(project, hidden_cluster):
    address, _ = hidden_cluster
    refused = project.run("--executor", "process", "--dask-scheduler", address)
    assert refused.ret == ExitCode.USAGE_ERROR
    assert "the executor is 'process'" in refused.stderr


def test_a_jobqueue_cluster_from_config(project):
    pytest.importorskip("dask_jobqueue")
    project.make_jobdef(
        "config:\n"
        "  dask:\n"
        "    cluster: dask_jobqueue.local.LocalCluster\n"
        "    kwargs: {cores: 1, memory: 1GB, processes: 1, silence_logs: error}\n"
        "    scale: 2\n" + JOB.format(root=project.path)
    )
    result = project.run_subprocess("-s", timeout=180)
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert "executor: dask (a LocalCluster started for this run" in result.stdout
    assert "flowmancer-code-" in result.stdout  # its workers (job scripts run here) got the shipped code


def test_a_cluster_class_that_cannot_be_imported_is_a_clear_error(project):
    project.make_jobdef("config:\n  dask: {cluster: no_such_pkg.SLURMCluster}\n" + JOB.format(root=project.path))
    result = project.run_subprocess(timeout=120)
    assert result.ret == ExitCode.USAGE_ERROR
    assert "dask cluster 'no_such_pkg.SLURMCluster': cannot import no_such_pkg" in result.stderr
    assert "pip install no-such-pkg" in result.stderr and "Traceback" not in result.stderr
    project.make_jobdef("config:\n  dask: {address: tcp://x:1, scale: 2}\n" + JOB.format(root=project.path))
    bad = project.run_subprocess(timeout=60)
    assert bad.ret == ExitCode.JOBDEF_ERROR and "either address" in bad.stderr


ONCE = """
import os
from flowmancer.task import Task, task

@task
class Once(Task):
    trail: str

    def run(self):
        fd = os.open(self.trail, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (self.task_info.name + "\\n").encode())
        os.close(fd)
"""


def test_a_task_that_reported_is_never_cancelled_into_a_second_run(fmtester, hidden_cluster):
    """With no grace period the scheduler stops waiting for a reported attempt's Dask task at once: that must
    not cancel a future whose result is on its way (Dask would then compute it again: a second run)."""
    address, _ = hidden_cluster
    fmtester.make_tasks(ONCE, name="once", package=False)
    outside = tempfile.mkdtemp(prefix="fm-trail-")  # not under the tests' folder, which the workers cannot see
    trail = os.path.join(outside, "trail.txt")
    tasks = "".join(f"  t{i}: {{task: Once, parameters: {{trail: {trail}}}}}\n" for i in range(40))
    fmtester.make_jobdef("config: {abort_grace_seconds: 0}\ntasks:\n" + tasks)
    result = fmtester.run_subprocess("--dask-scheduler", address, timeout=180)
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    with open(trail) as f:
        names = f.read().split()
    shutil.rmtree(outside, ignore_errors=True)
    assert sorted(names) == sorted(f"t{i}" for i in range(40)), "a task ran twice (or not at all)"
    assert "rescheduling" not in result.stderr


class _Future:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Event:
    def __init__(self) -> None:
        self.is_set = False

    def set(self) -> None:
        self.is_set = True


@pytest.mark.parametrize("reported", [False, True])
def test_kill_cancels_the_dask_task_only_before_it_reported(reported):
    """The rule behind the test above, which a loaded cluster hits (the result being gathered when the
    scheduler gives up waiting for a reported attempt): cancel only what has not reported."""
    from flowmancer_contrib.dask import DaskHandle

    handle = object.__new__(DaskHandle)
    handle.future, handle.abort_event, handle.reported = _Future(), _Event(), False
    handle._events, handle._received, handle.w = collections.deque(), 0, -1
    handle._lock = threading.Lock()
    if reported:
        handle.deliver([{"event": "finished", "ok": True}])  # type: ignore[list-item]
    handle.kill()
    assert handle.abort_event.is_set
    assert handle.future.cancelled is (not reported)


def test_a_worker_that_joins_later_gets_the_code(project, hidden_cluster):
    address, _ = hidden_cluster
    assert project.run("--dask-scheduler", address).ret == ExitCode.OK  # the code is registered
    from distributed import Client

    late = start_worker(address, _cluster_info["hide"], _cluster_info["cwd"], "LATE=1")
    try:
        with Client(address, timeout="20s") as c:
            c.wait_for_workers(3, timeout=30)
        project.make_jobdef(
            f"tasks:\n  late: {{task: Produce, resources: {{LATE: 1}}, parameters: {{project: {project.path}}}}}\n"
            "  after: {task: Consume, dependencies: [late], resources: {LATE: 1}}\n"
        )
        result = project.run("--dask-scheduler", address, "-s")
        assert result.ret == ExitCode.OK, result.stdout + result.stderr  # ran on the new worker only
        assert result.job.shared_dict["summary"].startswith("<consume>")
    finally:
        os.killpg(late.pid, signal.SIGTERM)
        late.wait(20)


RESTART = """
from flowmancer.task import Task, task

@task
class MaybeFail(Task):
    fail: bool = False

    def run(self):
        self.shared_dict[self.task_info.name] = self.task_info.attempt
        if self.fail:
            raise RuntimeError("asked to fail")
"""


def test_restart_from_a_failure_on_the_cluster(fmtester, hidden_cluster):
    address, _ = hidden_cluster
    fmtester.make_tasks(RESTART, name="restart", package=False)
    job = "tasks:\n  a: {task: MaybeFail}\n  b: {task: MaybeFail, dependencies: [a], parameters: {fail: %s}}\n"
    fmtester.make_jobdef(job % "true")
    first = fmtester.run("--dask-scheduler", address)
    assert first.ret == ExitCode.TASKS_FAILED
    fmtester.make_jobdef(job % "false")
    again = fmtester.run("--dask-scheduler", address, "-r")
    assert again.ret == ExitCode.OK, again.stdout + again.stderr
    assert again.job.tasks["a"].result.error == "restored from checkpoint"  # a did not run again
    assert again.job.shared_dict == {"a": 1, "b": 1}
