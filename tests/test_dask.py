"""The Dask executor with a real LocalCluster and with separately started `dask scheduler` / `dask worker`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'flowmancer[dask]')")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "readme"

TASKS = """
import os
import time
from flowmancer.task import Task, task

@task
class Step(Task):
    fail_times: int = 0
    sleep: float = 0.0
    put: str = ""

    def run(self):
        info = self.task_info
        print(f"{info.name} attempt {info.attempt} on pid {os.getpid()}")
        self.logger.warning(f"{info.name} says hi")
        time.sleep(self.sleep)
        if self.put:
            self.shared_dict[self.put] = info.name
        if info.attempt <= self.fail_times:
            raise RuntimeError(f"{info.name} fails attempt {info.attempt}")

@task
class Parent(Task):
    def run(self):
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            print("parent:", f.read().replace(b"\\0", b" ").decode())

@task
class Join(Task):
    def run(self):
        print("seen: " + ",".join(sorted(f"{k}={v}" for k, v in self.shared_dict.items())))

@task
class Suicide(Task):
    def run(self):
        if self.task_info.attempt > 1:
            print("second attempt, elsewhere")
            return
        pid = os.getppid()  # the worker's fork server, whose parent is the Dask worker
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"forkserver" in f.read():
                with open(f"/proc/{pid}/stat") as g:
                    pid = int(g.read().rsplit(")", 1)[1].split()[1])
        with open("worker-pid.txt", "w") as f:
            f.write(str(pid))
        time.sleep(30)
"""

DIAMOND = """
tasks:
  top: {task: Step, parameters: {put: top}}
  left: {task: Step, dependencies: [top], parameters: {put: left, fail_times: 1}, max_attempts: 2}
  right: {task: Step, dependencies: [top], parameters: {put: right}}
  bottom: {task: Join, dependencies: [left, right]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]
    time.sleep(1.0)
    procs += [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    from distributed import Client

    with Client(address, timeout="20s") as c:
        c.wait_for_workers(2, timeout=30)
    yield address
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(20)


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def test_readme_example_on_a_local_cluster(fmtester):
    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    fmtester.makefile(
        "fast.yaml",
        (EXAMPLE / "job.yaml")
        .read_text()
        .replace(
            'my_required_string_var: "My First Task!"',
            'my_required_string_var: "My First Task!"\n      my_optional_int_var: 1',
        ),
    )
    result = fmtester.run_python("main.py", "-j", "fast.yaml", "--executor", "dask", "-s")
    assert result.ret == 1 and "Flowmancer job has failed!" in result.stderr
    result.out.fnmatch_lines(["*executor: dask (a LocalCluster started for this run*"])
    assert result.stdout.count("[final-fail-task] Printing `my_var` value: Hello from: My First Task!!") == 3
    result.assert_outcomes(completed=2, failed=1)


@pytest.mark.parametrize("where", ["local", "scheduler"])
def test_diamond_retries_shared_dict_and_logs(project, request, where):
    project.make_jobdef(DIAMOND)
    args = ["--executor", "dask", "-s"]
    if where == "scheduler":
        args += ["--dask-scheduler", request.getfixturevalue("scheduler")]
    result = project.run(*args)
    assert result.ret == 0, result.stdout + result.stderr
    assert result.states() == {"top": "COMPLETED", "left": "COMPLETED", "right": "COMPLETED", "bottom": "COMPLETED"}
    assert result.job.tasks["left"].attempt == 2  # the retry policy applied
    assert "[bottom] seen: left=left,right=right,top=top" in result.stdout  # writes merged, then seen downstream
    assert result.job.shared_dict == {"top": "top", "left": "left", "right": "right"}
    logs = [c.record for c in result.recorder.getcalls("flowmancer_task_log")]
    assert any(r.task == "top" and r.message == "top says hi" and r.severity.value == "WARNING" for r in logs)
    assert any("RuntimeError: left fails attempt 1" in r.message for r in logs)
    pids = {r.message.split()[-1] for r in logs if " on pid " in r.message}
    assert str(os.getpid()) not in pids  # they ran on the workers


def test_config_keys_select_the_executor(project, scheduler):
    project.make_jobdef(f"config:\n  executor: dask\n  scheduler_address: {scheduler}\n" + DIAMOND)
    result = project.run()
    assert result.ret == 0
    assert f"executor: dask ({scheduler}" in result.stdout


def test_task_processes_are_forked_by_the_workers_fork_server(project):
    """A Dask worker has threads: the task processes come from a single-threaded fork server of its own, never
    from a fork() beside them (Python 3.12+ would warn; shown here whatever the version's default filter)."""
    project.make_jobdef("tasks:\n  a: {task: Parent}\n  b: {task: Parent}\n  c: {task: Parent, dependencies: [a]}\n")
    result = project.run_subprocess("--executor", "dask", "-s", env={"PYTHONWARNINGS": "always::DeprecationWarning"})
    assert result.ret == 0, result.stdout + result.stderr
    parents = [line for line in result.stdout.splitlines() if "parent:" in line]
    assert len(parents) == 3 and all("flowmancer.forkserver.server" in p for p in parents), parents
    assert "multi-threaded" not in result.stderr


def test_worker_killed_mid_task_fails_the_attempt(project):
    project.make_jobdef("tasks:\n  doomed: {task: Suicide, max_attempts: 2}\n  fine: {task: Step}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "--executor", "dask"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not (project.path / "worker-pid.txt").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.2)
    os.kill(int((project.path / "worker-pid.txt").read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err  # the retry ran on a worker that was alive
    assert "the Dask worker running it was lost" in out and "retrying" in out
    assert "COMPLETED  doomed" in out and "attempt 2/2" in out
    assert "2 completed" in out


def test_unreachable_scheduler_is_a_clear_error(project):
    project.make_jobdef("tasks:\n  a: {task: Step}\n")
    result = project.run_subprocess(
        "--executor", "dask", "--dask-scheduler", f"tcp://127.0.0.1:{_free_port()}", timeout=120
    )
    assert result.ret == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


ABORTABLE = """
import time
from flowmancer.task import Task, task

@task
class Long(Task):
    def run(self):
        open(f"started-{self.task_info.name}", "w").close()
        time.sleep(30)

    def on_abort(self):
        open(f"aborted-{self.task_info.name}", "w").close()
"""


def test_timeout_and_ctrl_c_run_on_abort_on_the_worker(fmtester):
    fmtester.make_tasks(ABORTABLE, name="long")
    fmtester.make_jobdef("tasks:\n  timed: {task: Long, timeout: 2}\n")
    result = fmtester.run("--executor", "dask")
    assert result.job.tasks["timed"].result.error == "timed out after 2 s"
    assert (fmtester.path / "aborted-timed").exists()

    fmtester.make_jobdef("tasks:\n  a: {task: Long}\n  b: {task: Long}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "--executor", "dask"],
        cwd=fmtester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not all((fmtester.path / f"started-{n}").exists() for n in "ab"):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C to the runner: it cancels the attempts on the workers
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert all((fmtester.path / f"aborted-{n}").exists() for n in "ab")
    assert "interrupted by SIGINT: 2 aborted" in out
