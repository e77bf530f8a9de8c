"""A run owns its state: one run of a job at a time, one checkpoint per job file, live log folders kept.

Real processes: concurrent runs, a runner killed with SIGKILL, two ``-r`` at once."""

from __future__ import annotations

import json
import os
import signal
import time

from flowmancer.exitcode import ExitCode

TASKS = r"""
import os
import time
from flowmancer.task import Task, task


def mark(text):
    with open("marks.txt", "a") as f:
        f.write(text + "\n")


@task
class Gate(Task):
    '''Runs until the file ``open-<name>`` exists (or fails while ``fail-<name>`` exists).'''

    wait: bool = True

    def run(self):
        name = self.task_info.name
        mark(f"start {name} {os.getpid()}")
        while self.wait and not os.path.exists(f"open-{name}"):
            time.sleep(0.02)
        if os.path.exists(f"fail-{name}"):
            raise RuntimeError("failing on purpose")
        self.shared_dict[name] = os.getpid()
        mark(f"end {name}")
"""


def marks(project) -> list[str]:
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


def wait_for(predicate, timeout=20.0):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_a_second_run_of_the_same_job_exits_at_once_naming_the_first(fmtester, launch):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("config: {name: nightly}\ntasks:\n  a: {task: Gate}\n")
    first = launch()
    wait_for(lambda: "start a" in " ".join(marks(fmtester)))
    t0 = time.time()
    second = fmtester.run_subprocess()
    assert time.time() - t0 < 5
    assert second.ret == ExitCode.ALREADY_RUNNING == 5
    assert f"job 'nightly' is already running: pid {first.pid}" in second.stderr
    assert "started 20" in second.stderr and "kill" in second.stderr and "Traceback" not in second.stderr
    assert sum(m.startswith("start") for m in marks(fmtester)) == 1  # the second started no task
    assert (fmtester.path / ".flowmancer" / "nightly.jsonl").exists()  # nor touched the first's checkpoint
    (fmtester.path / "open-a").touch()
    out, err = first.communicate(timeout=20)
    assert first.returncode == 0, out + err
    assert fmtester.run_subprocess().ret == 0  # the lock went with the first run


def test_two_restarts_at_once_rerun_the_failed_task_once(fmtester, launch):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Gate, parameters: {wait: false}}\n  b: {task: Gate}\n")
    (fmtester.path / "fail-b").touch()
    (fmtester.path / "open-b").touch()
    assert fmtester.run_subprocess().ret == 1
    (fmtester.path / "fail-b").unlink()
    (fmtester.path / "open-b").unlink()
    (fmtester.path / "marks.txt").unlink()
    runs = [launch("-r") for _ in range(2)]
    wait_for(lambda: "start b" in " ".join(marks(fmtester)))
    time.sleep(1.0)  # the loser has long since given up
    (fmtester.path / "open-b").touch()
    codes = sorted(p.wait(30) for p in runs)
    assert codes == [0, ExitCode.ALREADY_RUNNING]
    assert [m.split()[:2] for m in marks(fmtester) if m.startswith("start")] == [["start", "b"]]


def test_the_lock_of_a_killed_run_never_blocks_the_next(fmtester, launch):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Gate}\n")
    proc = launch()
    wait_for(lambda: "start a" in " ".join(marks(fmtester)))
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    lock = fmtester.path / ".flowmancer" / "job.lock"
    assert json.loads(lock.read_text())["pid"] == proc.pid  # left behind, naming a dead run
    (fmtester.path / "open-a").touch()
    result = fmtester.run_subprocess("-r")  # at once: waits for the dead run's guardian if it must
    assert result.ret == 0, result.stdout + result.stderr


def test_each_job_file_has_its_own_checkpoint(fmtester):
    """Without config.name two job files of one app root used to share one checkpoint: -r of one resumed
    the other's state, and a successful run of one deleted the other's."""
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  n: {task: Gate, parameters: {wait: false}}\n", name="nightly.yaml")
    fmtester.make_jobdef("tasks:\n  n: {task: Gate, parameters: {wait: false}}\n", name="jobs/adhoc.yaml")
    (fmtester.path / "fail-n").touch()
    nightly = fmtester.run("-j", "nightly.yaml", jobdef="")
    assert nightly.ret == 1 and nightly.job.name == "nightly"
    (fmtester.path / "fail-n").unlink()
    adhoc = fmtester.run("-j", "jobs/adhoc.yaml", "-r", jobdef="")
    assert adhoc.ret == 0 and adhoc.job.name == "jobs/adhoc"
    assert "-r: no checkpoint for job 'jobs/adhoc'" in adhoc.stdout  # not nightly's
    cps = fmtester.path / ".flowmancer"
    assert (cps / "nightly.jsonl").exists()  # adhoc's success left nightly's checkpoint alone
    assert not list(cps.glob("jobs*.jsonl"))  # adhoc's own was cleared
    again = fmtester.run("-j", "nightly.yaml", "-r", jobdef="")
    assert again.ret == 0 and "resuming from checkpoint: 0 completed tasks" in again.stdout


def test_names_that_differ_only_in_unsafe_characters_never_share_a_file(fmtester):
    fmtester.make_tasks(TASKS)
    names = ["etl/daily", "etl_daily", "etl daily", "x" * 300]
    for i, name in enumerate(names):
        fmtester.make_jobdef(
            f"config: {{name: '{name}'}}\ntasks:\n  'a/b': {{task: Gate, parameters: {{wait: false}}}}\n"
            f"  'a_b': {{task: Gate, parameters: {{wait: false}}}}\n  '{'t' * 300}': {{task: Gate, parameters: {{wait: false}}}}\n",
            name=f"job{i}.yaml",
        )
        (fmtester.path / "fail-a_b").touch()  # keep each checkpoint (a failed run)
        result = fmtester.run("-j", f"job{i}.yaml", jobdef="")
        assert result.ret == 1, result.stdout + result.stderr
    files = sorted(p.name for p in (fmtester.path / ".flowmancer").glob("*.jsonl"))
    assert len(files) == 4 and all(len(f.encode()) <= 255 for f in files)
    assert "etl_daily.jsonl" in files
    for i in range(len(names)):  # each resumes its own
        result = fmtester.run("-j", f"job{i}.yaml", "-r", "-n", jobdef="")
        assert "resuming from checkpoint: 2 completed tasks" in result.stdout, result.stdout + result.stderr
    run_dir = sorted((fmtester.path / "logs").iterdir())[-1]
    logs = sorted(p.name for p in run_dir.iterdir())
    assert len(logs) == 3 and "a_b.log" in logs and all(len(f.encode()) <= 255 for f in logs)  # a/b apart


def test_fresh_starts_over_even_with_restart(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n  a: {task: Gate, parameters: {wait: false}}\n  b: {task: Gate, parameters: {wait: false}}\n"
    )
    (fmtester.path / "fail-b").touch()
    assert fmtester.run().ret == 1
    (fmtester.path / "fail-b").unlink()
    (fmtester.path / "marks.txt").unlink()
    result = fmtester.run("-r", "--fresh")
    assert result.ret == 0 and "--fresh: starting over" in result.stdout
    assert [m.split()[1] for m in marks(fmtester) if m.startswith("start")] == ["a", "b"]


def test_an_unnamed_jobs_old_shared_checkpoint_is_pointed_at(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Gate, parameters: {wait: false}}\n")
    old = fmtester.path / ".flowmancer" / "flowmancer.jsonl"
    old.parent.mkdir()
    old.write_text(
        '{"flowmancer_checkpoint":1,"name":"flowmancer"}\n{"snapshot":{"states":{"a":"COMPLETED"},"shared":[]}}\n'
    )
    result = fmtester.run("-r")
    assert result.ret == 0
    result.out.fnmatch_lines(["*set `config: {name: flowmancer}` once to resume it*"])


def test_retention_never_removes_the_folder_of_a_live_run(fmtester, launch):
    """Two jobs share a log folder; the second, with retention_days 0, starts while the first runs."""
    fmtester.make_tasks(TASKS)
    logger = "loggers:\n  files: {logger: FileLogger, parameters: {base_log_dir: ./logs, retention_days: 0}}\n"
    fmtester.make_jobdef(f"config: {{name: one}}\n{logger}tasks:\n  a: {{task: Gate}}\n", name="one.yaml")
    fmtester.make_jobdef(
        f"config: {{name: two}}\n{logger}tasks:\n  b: {{task: Gate, parameters: {{wait: false}}}}\n", name="two.yaml"
    )
    first = launch(jobdef="one.yaml")
    wait_for(lambda: "start a" in " ".join(marks(fmtester)))
    (first_dir,) = list((fmtester.path / "logs").iterdir())
    time.sleep(1.1)
    assert fmtester.run_subprocess("-j", "two.yaml", jobdef=None).ret == 0
    assert first_dir.is_dir()  # still there: its run is going
    (fmtester.path / "open-a").touch()
    assert first.wait(20) == 0
    assert (first_dir / "a.log").exists()
    time.sleep(1.1)
    assert fmtester.run_subprocess("-j", "two.yaml", jobdef=None).ret == 0
    assert not first_dir.exists()  # over now: removed like any old run
