"""The fork server: who forks the task processes, and what happens when it cannot or dies.

The behaviour tests of task processes (deaths, timeouts, Ctrl-C, memory limits, output floods) run on
both paths through the ``spawn_path`` fixture; these check the server itself.
"""

from __future__ import annotations

import os

import pytest
from tasklib import processes_with

from flowmancer.exitcode import ExitCode
from flowmancer.localexec import FORK_SERVER_MIN_TASKS

TASKS = """
import os
import signal
import time
from flowmancer.task import Task, task


def parent_kind():
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return "server" if b"flowmancer.forkserver" in f.read() else "direct"


@task
class Who(Task):
    kill_server: bool = False
    sleep: float = 0.0

    def run(self):
        kind = parent_kind()
        with open("who.txt", "a") as f:
            f.write(f"{self.task_info.name} {kind} {os.getppid()}\\n")
        if self.kill_server and kind == "server" and not os.path.exists("killed"):
            open("killed", "w").write(self.task_info.name)
            os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(self.sleep)
        print(f"{self.task_info.name} says hi")
"""


@pytest.fixture
def project(fmtester, monkeypatch):
    monkeypatch.delenv("FLOWMANCER_FORK_SERVER", raising=False)
    fmtester.make_tasks(TASKS)
    return fmtester


def who(project) -> dict[str, tuple[str, int]]:
    rows = [line.split() for line in (project.path / "who.txt").read_text().splitlines()]
    return {name: (kind, int(ppid)) for name, kind, ppid in rows}


def jobdef(n: int, params: str = "", config: str = "", gate: float = 0.0) -> str:
    """``n`` tasks; with ``gate`` the first sleeps that long and the others depend on it (so they start
    once the server is up)."""
    lines = [f"config: {{max_concurrency: 2{config}}}", "tasks:"]
    for i in range(n):
        deps = ", dependencies: [t0]" if gate and i else ""
        p = f"sleep: {gate}" if gate and not i else params
        lines.append(f"  t{i}: {{task: Who{deps}, parameters: {{{p}}}}}")
    return "\n".join(lines) + "\n"


def test_small_jobs_fork_directly_big_ones_use_the_server(project):
    project.make_jobdef(jobdef(3))
    assert project.run().ret == 0
    assert {kind for kind, _ in who(project).values()} == {"direct"}
    assert {ppid for _, ppid in who(project).values()} == {os.getpid()}

    (project.path / "who.txt").unlink()
    n = FORK_SERVER_MIN_TASKS
    project.make_jobdef(jobdef(n, gate=1.0))
    result = project.run()
    assert result.ret == 0
    assert {who(project)[f"t{i}"][0] for i in range(1, n)} == {"server"}
    # output still reaches the loggers with the right task
    assert f"t{n - 1} says hi" in (next((project.path / "logs").glob(f"*/t{n - 1}.log"))).read_text()


@pytest.mark.parametrize(("setting", "expected"), [("1", "server"), ("0", "direct")])
def test_environment_variable_forces_the_choice(project, monkeypatch, setting, expected):
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", setting)
    project.make_jobdef(jobdef(3 if setting == "1" else FORK_SERVER_MIN_TASKS, gate=1.0))
    assert project.run().ret == 0
    assert {who(project)[f"t{i}"][0] for i in range(1, 3)} == {expected}


def test_server_killed_mid_run_the_job_still_completes(project, monkeypatch):
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1")
    project.make_jobdef(jobdef(60, "kill_server: true", config=", task_defaults: {max_attempts: 3}", gate=1.0))
    result = project.run()
    assert result.ret == ExitCode.OK, result.stdout
    assert all(t.state.value == "COMPLETED" for t in result.job)
    killer = (project.path / "killed").read_text()
    assert who(project)[killer][0] == "server"
    # it reported success after killing the server (maybe before the server could tell us its pid): not rerun
    assert (project.path / "who.txt").read_text().count(f"{killer} ") == 1
    assert who(project)["t59"][0] == "direct"  # after its death the scheduler forks the tasks itself


def test_class_the_server_cannot_import_is_forked_directly(project, monkeypatch):
    """A task class defined in the user's own driver script (``__main__``) is not importable elsewhere."""
    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1")
    project.makefile(
        "main.py",
        """
        import os
        from flowmancer import Flowmancer
        from flowmancer.task import Task, task

        @task
        class Local(Task):
            def run(self):
                with open("local.txt", "a") as f:
                    f.write(f"{self.task_info.name} {os.getppid()}\\n")

        if __name__ == "__main__":
            print("driver", os.getpid())
            raise SystemExit(Flowmancer().start())
        """,
    )
    project.make_jobdef(
        "tasks:\n  a: {task: Who, parameters: {sleep: 1.0}}\n  b: {task: Local, dependencies: [a]}\n"
        "  c: {task: Who, dependencies: [a]}\n"
    )
    result = project.run_python("main.py", "-j", "job.yaml")
    assert result.ret == 0, result.stdout + result.stderr
    driver = int(result.stdout.split("driver ")[1].split()[0])
    assert (project.path / "local.txt").read_text().split()[1] == str(driver)
    assert who(project)["c"][0] == "server"


SHARED_TASKS = """
import json, time
from flowmancer.task import Task, task

@task
class Put(Task):
    sleep: float = 0.0
    drop: str = ""

    def run(self):
        time.sleep(self.sleep)
        self.shared_dict[self.task_info.name] = {"from": self.task_info.name}
        if self.drop:
            del self.shared_dict[self.drop]

@task
class Seen(Task):
    def run(self):
        with open(f"seen-{self.task_info.name}.json", "w") as f:
            json.dump(dict(self.shared_dict), f, sort_keys=True)
"""


def test_shared_dict_reaches_tasks_the_server_forks(fmtester, monkeypatch):
    """The server keeps a replica of shared_dict, updated with what changed before each request."""
    import json

    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1")
    fmtester.make_tasks(SHARED_TASKS, name="shared")
    fmtester.make_jobdef(
        "tasks:\n  a: {task: Put, parameters: {sleep: 1.0}}\n  b: {task: Put, dependencies: [a]}\n"
        "  c: {task: Seen, dependencies: [b]}\n  d: {task: Put, dependencies: [c], parameters: {drop: a}}\n"
        "  e: {task: Seen, dependencies: [d]}\n"
    )
    result = fmtester.run()
    assert result.ret == 0
    assert json.loads((fmtester.path / "seen-c.json").read_text()) == {"a": {"from": "a"}, "b": {"from": "b"}}
    assert json.loads((fmtester.path / "seen-e.json").read_text()) == {"b": {"from": "b"}, "d": {"from": "d"}}


FDS_TASKS = """
import os, time
from flowmancer.task import Task, task

@task
class Gate(Task):
    def run(self):
        time.sleep(1.0)

@task
class Fds(Task):
    def run(self):
        time.sleep(0.2)  # its siblings are forked meanwhile
        self.shared_dict[self.task_info.name] = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))

@task
class Collect(Task):
    def run(self):
        import json
        with open("fds.json", "w") as f:
            json.dump(dict(self.shared_dict), f)
"""


def test_requests_forked_in_one_batch_keep_to_their_own_pipes(fmtester, monkeypatch):
    """Requests that wait while the server forks are forked together: each task process must hold only its
    own pipes (a sibling's would delay the end of that task's output) and report through them."""
    import json

    monkeypatch.setenv("FLOWMANCER_FORK_SERVER", "1")
    fmtester.make_tasks(FDS_TASKS, name="fds")
    n = 40
    body = "".join(f"  f{i}: {{task: Fds, dependencies: [gate]}}\n" for i in range(n))
    deps = ", ".join(f"f{i}" for i in range(n))
    fmtester.make_jobdef(f"tasks:\n  gate: {{task: Gate}}\n{body}  all: {{task: Collect, dependencies: [{deps}]}}\n")
    result = fmtester.run()
    assert result.ret == 0, result.stdout
    seen = json.loads((fmtester.path / "fds.json").read_text())
    assert sorted(seen) == sorted(f"f{i}" for i in range(n))  # every write came through its own task's pipe
    assert {len(fds) for fds in seen.values()} == {len(seen["f0"])}, seen  # as many descriptors in each


def test_the_command_starts_the_server_with_the_process_so_small_jobs_use_it(project):
    """``flowmancer`` starts the server before its own imports; it is ready for the first tasks of any job of
    two tasks or more. It sees the environment as it is when the tasks start (a flowmancerconf.py may set it)."""
    project.makefile("flowmancerconf.py", "import os\nos.environ['SET_BY_CONF'] = 'yes'\n")
    project.make_jobdef(jobdef(3, gate=1.0))
    result = project.run_python("-m", "flowmancer", "-j", "job.yaml", "-qq")
    assert result.ret == 0, result.stdout + result.stderr
    assert {who(project)[f"t{i}"][0] for i in (1, 2)} == {"server"}
    project.makefile(
        "tasks/env.py",
        """
        import os
        from flowmancer.task import Task, task

        @task
        class Env(Task):
            def run(self):
                print("SET_BY_CONF =", os.environ.get("SET_BY_CONF"))
        """,
    )
    project.make_jobdef("tasks:\n  a: {task: Who, parameters: {sleep: 1.0}}\n  b: {task: Env, dependencies: [a]}\n")
    result = project.run_python("-m", "flowmancer", "-j", "job.yaml", "-s")
    assert result.ret == 0, result.stdout + result.stderr
    result.out.fnmatch_lines(["*SET_BY_CONF = yes*"])


@pytest.mark.parametrize("args", [["--list"], ["-n"], []])
def test_a_server_started_with_the_process_and_not_used_does_not_outlive_it(project, args):
    """Listing, a dry run, a one-task job: the server started with the process goes away with it."""
    marker = f"FM_TEST_MARK={os.getpid()}-{'-'.join(args) or 'one'}"
    project.make_jobdef(jobdef(1))
    key, value = marker.split("=")
    result = project.run_python("-m", "flowmancer", "-j", "job.yaml", *args, env={key: value})
    assert result.ret == 0, result.stdout + result.stderr
    assert processes_with(marker) == []
