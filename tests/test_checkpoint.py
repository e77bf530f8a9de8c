"""Checkpoint and restart (-r): README example, DAG resume, job changes, crash safety, custom checkpointers."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "readme"

TASKS = """
import datetime, decimal, os, time
from flowmancer.task import Task, task

@task
class Step(Task):
    fail: bool = False      # fail while the file `fail-<name>` exists
    sleep: float = 0.0
    put: bool = False

    def run(self):
        name = self.task_info.name
        with open("runs.txt", "a") as f:
            f.write(f"{name} {self.task_info.is_restart}\\n")
        time.sleep(self.sleep)
        if self.put:
            self.shared_dict[name] = {"tuple": (1, 2), "set": {3}, "when": datetime.date(2024, 1, 2),
                                      "money": decimal.Decimal("1.10"), "raw": b"\\x00\\x01"}
        if os.path.exists(f"fail-{name}"):
            raise RuntimeError(f"{name} was told to fail")

    def on_restart(self):
        with open("restarts.txt", "a") as f:
            f.write(self.task_info.name + "\\n")

@task
class Check(Task):
    def run(self):
        with open("runs.txt", "a") as f:
            f.write(f"{self.task_info.name} False\\n")
        with open("seen.txt", "w") as f:
            f.write(repr(sorted(self.shared_dict.items())))
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def runs(project):
    p = project.path / "runs.txt"
    names = [ln.split()[0] for ln in p.read_text().splitlines()] if p.exists() else []
    p.unlink(missing_ok=True)
    return names


def checkpoint_file(project, name="flowmancer"):
    return project.path / ".flowmancer" / f"{name}.jsonl"


def test_readme_example_restart_reruns_only_the_failed_task(fmtester):
    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    first = fmtester.run_python("main.py", "-j", "./job.yaml")
    assert first.ret == 1
    assert checkpoint_file(fmtester, "my-flowmancer-job").exists()
    second = fmtester.run_python("main.py", "-j", "./job.yaml", "-r", "-s")
    assert second.ret == 1
    out = second.stdout
    assert "resuming from checkpoint: 2 completed tasks will not rerun" in out
    assert "[succeed-task-a]" not in out and "[succeed-task-b]" not in out  # not rerun
    assert out.count("[final-fail-task] Printing `my_var` value: Hello from: My First Task!!") == 3  # restored
    assert second.duration < first.duration - 3  # the 5 s task did not run again


DAG = """
config: {name: dag}
tasks:
  a: {task: Step, parameters: {put: true}}
  b: {task: Step, dependencies: [a]}
  c: {task: Step, dependencies: [b]}
  d: {task: Step, dependencies: [c]}
  side: {task: Step}
  check: {task: Check, dependencies: [d, side]}
"""


def test_resumed_dag_reruns_failed_and_downstream_only(project):
    project.make_jobdef(DAG)
    (project.path / "fail-b").touch()
    first = project.run()
    assert first.ret == 1
    assert sorted(runs(project)) == ["a", "b", "side"]
    assert first.states()["c"] == "DEFAULTED"
    assert oct(stat.S_IMODE(checkpoint_file(project, "dag").stat().st_mode)) == "0o600"

    (project.path / "fail-b").unlink()
    second = project.run("-r")
    assert second.ret == 0, second.stdout
    assert runs(project) == ["b", "c", "d", "check"]
    assert (project.path / "restarts.txt").read_text().split() == ["b"]  # on_restart only for the failed task
    assert second.states()["a"] == "COMPLETED"
    seen = (project.path / "seen.txt").read_text()
    expected = (
        "{'tuple': (1, 2), 'set': {3}, 'when': datetime.date(2024, 1, 2), 'money': Decimal('1.10'), "
        "'raw': b'\\x00\\x01'}"
    )
    assert seen == f"[('a', {expected})]"  # restored from the checkpoint, types intact
    assert not checkpoint_file(project, "dag").exists()  # a successful run clears it

    third = project.run("-r")
    assert "-r: no checkpoint for job 'dag'" in third.stdout and "starting a new run" in third.stdout
    assert sorted(runs(project)) == ["a", "b", "c", "check", "d", "side"]


def test_job_changed_since_checkpoint(project):
    project.make_jobdef(DAG)
    (project.path / "fail-c").touch()
    assert project.run().ret == 1
    runs(project)
    (project.path / "fail-c").unlink()
    project.make_jobdef(
        DAG.replace("  side: {task: Step}\n", "  new-task: {task: Step}\n").replace("side]", "new-task]")
    )
    result = project.run("-r")
    assert result.ret == 0
    result.out.fnmatch_lines(["*tasks not in the checkpoint (new in the job), will run: new-task*"])
    result.out.fnmatch_lines(["*tasks in the checkpoint but no longer in the job, dropped: side*"])
    assert sorted(runs(project)) == ["c", "check", "d", "new-task"]


def test_no_checkpoint_plugin(project):
    project.make_jobdef(DAG)
    (project.path / "fail-b").touch()
    assert project.run("-p", "no:checkpoint").ret == 1
    assert not (project.path / ".flowmancer").exists()
    result = project.run("-r", "-p", "no:checkpoint")
    assert "checkpointing is disabled" in result.stderr


def test_journal_is_appended_not_rewritten(project):
    body = "".join(f"  t{i}: {{task: Step}}\n" for i in range(300))
    project.make_jobdef(
        "config: {name: big, max_concurrency: 8}\ntasks:\n" + body + "  last: {task: Step, dependencies: [t0]}\n"
    )
    (project.path / "fail-last").touch()
    assert project.run("-qq").ret == 1
    lines = checkpoint_file(project, "big").read_text().splitlines()
    assert sum('"snapshot"' in ln for ln in lines) == 1
    assert len(lines) == 2 + 301 * 2  # header, snapshot, then RUNNING and the final state per task
    assert {"t": "last", "s": "FAILED"} in [json.loads(ln) for ln in lines[2:]]


def test_torn_last_line_is_ignored(project):
    project.make_jobdef(DAG)
    (project.path / "fail-b").touch()
    assert project.run().ret == 1
    runs(project)
    with open(checkpoint_file(project, "dag"), "a") as f:
        f.write('{"t": "c", "s": "COMPL')  # killed mid-write
    (project.path / "fail-b").unlink()
    assert project.run("-r").ret == 0
    assert runs(project) == ["b", "c", "d", "check"]


def test_kill_9_at_random_instants_then_restart(project):
    """kill -9 of the runner (and its tasks) at 20 random instants; each -r continues; nothing recorded
    as completed ever runs again; the job completes."""
    n = 200
    deps = {i: f", dependencies: [t{i - 50}]" if i >= 50 else "" for i in range(n)}
    body = "".join(f"  t{i}: {{task: Step, parameters: {{sleep: 0.01}}{deps[i]}}}\n" for i in range(n))
    project.make_jobdef("config: {name: crashy, max_concurrency: 4}\ntasks:\n" + body)
    cp = checkpoint_file(project, "crashy")
    rng = random.Random(1234)
    from flowmancer.checkpointer import NoCheckpointAvailableError
    from flowmancer.checkpointer.file import FileCheckpointer

    reader = FileCheckpointer()
    reader._fm_root = project.path
    completed: set[str] = set()
    finished = False
    for round_ in range(21):
        args = [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-qq"] + (["-r"] if round_ else [])
        proc = subprocess.Popen(
            args, cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        if round_ < 20:
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
        ran = runs(project)
        assert not completed & set(ran), f"round {round_}: reran completed tasks {sorted(completed & set(ran))}"
        if proc.returncode == 0:
            finished = True
            break
        assert proc.returncode == -signal.SIGKILL
        try:
            contents = reader.read_checkpoint("crashy")  # readable whenever it exists
        except NoCheckpointAvailableError:
            if not ran:  # killed while still loading, before any task started: nothing to lose
                assert not completed
                continue
            # Killed after a successful run had cleared its checkpoint, just before exiting.
            assert completed | set(ran) == {f"t{i}" for i in range(n)}, "tasks ran but no checkpoint was left"
            finished = True
            break
        completed = set(contents.states.get("COMPLETED", set()))
    assert finished, "the job never completed"
    assert not cp.exists()


SQLITE_CHECKPOINTER = """
import json, sqlite3
from flowmancer.checkpointer import CheckpointContents, Checkpointer, NoCheckpointAvailableError, checkpointer

@checkpointer
class DatabaseCheckpointer(Checkpointer):
    host: str
    port: int
    username: str
    password: str

    def _db(self):
        conn = sqlite3.connect(self.host)
        conn.execute("CREATE TABLE IF NOT EXISTS cp (name TEXT PRIMARY KEY, body TEXT)")
        return conn

    def write_checkpoint(self, name: str, content: CheckpointContents) -> None:
        body = json.dumps({"states": {k: sorted(v) for k, v in content.states.items()},
                           "shared": content.shared_dict}, default=repr)
        with self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO cp VALUES (?, ?)", (name, body))

    def read_checkpoint(self, name: str) -> CheckpointContents:
        with self._db() as conn:
            row = conn.execute("SELECT body FROM cp WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NoCheckpointAvailableError(name)
        data = json.loads(row[0])
        return CheckpointContents(name=name, states={k: set(v) for k, v in data["states"].items()},
                                  shared_dict=data["shared"])

    def clear_checkpoint(self, name: str) -> None:
        with self._db() as conn:
            conn.execute("DELETE FROM cp WHERE name = ?", (name,))

@checkpointer
class AsyncMemoryFileCheckpointer(Checkpointer):
    path: str

    async def write_checkpoint(self, name, content):
        with open(self.path, "w") as f:
            json.dump({"states": {k: sorted(v) for k, v in content.states.items()}, "shared": {}}, f)

    async def read_checkpoint(self, name):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise NoCheckpointAvailableError(name)
        return CheckpointContents(name=name, states={k: set(v) for k, v in data["states"].items()}, shared_dict={})

    async def clear_checkpoint(self, name):
        import os
        os.remove(self.path)
"""

CUSTOM = {
    "readme-sync": """
checkpointer:
  checkpointer: DatabaseCheckpointer
  parameters:
    host: cp.sqlite3
    port: 9999
    username: user
    password: 1234
""",
    "async": "checkpointer:\n  checkpointer: AsyncMemoryFileCheckpointer\n  parameters: {path: cp.json}\n",
    "contrib-sqlite": "checkpointer:\n  checkpointer: SQLiteCheckpointer\n  parameters: {database: hist.sqlite3}\n",
}


@pytest.mark.parametrize("kind", list(CUSTOM))
def test_custom_checkpointers(project, kind):
    project.makefile("extensions/cps.py", SQLITE_CHECKPOINTER)
    dag = DAG.replace("config: {name: dag}", "config: {name: dag, extension_packages: [flowmancer_contrib]}")
    project.make_jobdef(dag + CUSTOM[kind])
    (project.path / "fail-c").touch()
    first = project.run()
    assert first.ret == 1, first.stderr
    assert sorted(runs(project)) == ["a", "b", "c", "side"]
    # the custom one replaced the file checkpointer: no journal, only the run's lock is in the default folder
    assert [p.name for p in (project.path / ".flowmancer").iterdir()] == ["dag.lock"]
    (project.path / "fail-c").unlink()
    result = project.run("-r")
    assert result.ret == 0, result.stdout + result.stderr
    assert runs(project) == ["c", "d", "check"]
    result.out.fnmatch_lines(["*resuming from checkpoint: 3 completed tasks will not rerun*"])
    assert project.run("-r").ret == 0  # cleared: a new run
    assert sorted(runs(project)) == ["a", "b", "c", "check", "d", "side"]
    if kind == "contrib-sqlite":
        from flowmancer_contrib.sqlite import SQLiteCheckpointer

        cp = SQLiteCheckpointer(database=str(project.path / "hist.sqlite3"))
        history = cp.history("dag")
        assert [cleared for *_, cleared in history] == [True, True, True]  # one row per run, history kept
