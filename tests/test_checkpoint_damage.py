"""Damaged and unwritable checkpoints: each corruption class is a clear error for ``-r`` (exit 6, file, line,
how to start over), never a traceback and never a silent fresh start; a torn last record is ignored; a
checkpoint that cannot be written stops the run before any task starts, or mid-run cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowmancer.checkpointer.file import FileCheckpointer
from flowmancer.exitcode import ExitCode

TASKS = r"""
import os
import time
from flowmancer.task import Task, task


def mark(text):
    with open("marks.txt", "a") as f:
        f.write(text + "\n")


@task
class Step(Task):
    payload: int = 10  # bytes written to shared_dict
    linger: float = 0.0  # seconds of work after that

    def run(self):
        name = self.task_info.name
        mark(name)
        self.shared_dict[name] = "x" * self.payload
        if not os.path.exists("no-linger"):
            time.sleep(self.linger)
        if os.path.exists(f"fail-{name}"):
            raise RuntimeError("failing on purpose")
"""
JOB = "config: {name: job}\ntasks:\n  a: {task: Step}\n  b: {task: Step, dependencies: [a]}\n"


@pytest.fixture
def failed(fmtester):
    """A project whose last run failed at b: its checkpoint says a COMPLETED, b FAILED."""
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    (fmtester.path / "fail-b").touch()
    assert fmtester.run().ret == 1
    (fmtester.path / "fail-b").unlink()
    (fmtester.path / "marks.txt").unlink()
    return fmtester


def marks(project) -> list[str]:
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


def checkpoint(project) -> Path:
    return project.path / ".flowmancer" / "job.jsonl"


def lines_of(project) -> list[bytes]:
    return checkpoint(project).read_bytes().splitlines(keepends=True)


def _insert(at: int, text: bytes):
    def change(cp: Path) -> None:
        lines = cp.read_bytes().splitlines(keepends=True)
        cp.write_bytes(b"".join(lines[:at] + [text] + lines[at:]))

    return change


def _replace_line(at: int, text: bytes):
    def change(cp: Path) -> None:
        lines = cp.read_bytes().splitlines(keepends=True)
        lines[at] = text
        cp.write_bytes(b"".join(lines))

    return change


def _write(data: bytes):
    return lambda cp: cp.write_bytes(data)


def _directory(cp: Path) -> None:
    cp.unlink()
    cp.mkdir()


def _fifo(cp: Path) -> None:
    cp.unlink()
    os.mkfifo(cp)


def _symlink(cp: Path) -> None:
    target = cp.with_name("elsewhere.jsonl")
    cp.rename(target)
    cp.symlink_to(target)


DAMAGE = {
    "garbage line": (_insert(2, b"\x00\x01garbage that is not json\n"), "line 3: not a JSON record"),
    "blank line": (_insert(2, b"\n"), "line 3: an empty line"),
    "truncated in the header": (lambda cp: cp.write_bytes(cp.read_bytes()[:10]), "is empty"),
    "header only": (lambda cp: cp.write_bytes(cp.read_bytes().split(b"\n", 1)[0] + b"\n"), "snapshot"),
    "not a header": (_replace_line(0, b'{"flowmancer_checkpoint": "1"}\n'), "line 1: it does not start"),
    "a list record": (_insert(2, b"[1, 2]\n"), "line 3: a record must be a JSON object"),
    "a string record": (_insert(2, b'"hello"\n'), "line 3: a record must be a JSON object"),
    "snapshot of the wrong shape": (_replace_line(1, b'{"snapshot": []}\n'), "line 2: a snapshot must hold"),
    "unknown state": (_insert(2, b'{"t": "a", "s": "DONE"}\n'), "line 3: not a task state"),
    "task name not a string": (_insert(2, b'{"t": 5, "s": "COMPLETED"}\n'), "line 3: not a task state"),
    "value missing": (_insert(2, b'{"k": "x"}\n'), "line 3: a shared_dict record without a value"),
    "unknown record": (_insert(2, b'{"zzz": 1}\n'), "line 3: an unknown record"),
    "unknown codec tag": (_insert(2, b'{"k": "x", "v": {"__fm__": "pickle", "v": "gASV"}}\n'), "unknown tag 'pickle'"),
    "bad datetime": (_insert(2, b'{"k": "x", "v": {"__fm__": "datetime", "v": "soon"}}\n'), "tagged 'datetime'"),
    "bad decimal": (_insert(2, b'{"k": "x", "v": {"__fm__": "decimal", "v": "abc"}}\n'), "tagged 'decimal'"),
    "unhashable key": (_insert(2, b'{"k": {"__fm__": "set", "v": [[1]]}, "v": 1}\n'), "tagged 'set'"),
    "newer format": (_replace_line(0, b'{"flowmancer_checkpoint": 99, "name": "job"}\n'), "newer flowmancer"),
    "another job's": (_replace_line(0, b'{"flowmancer_checkpoint": 1, "name": "other"}\n'), "belongs to job 'other'"),
    "empty file": (_write(b""), "is empty"),
    "binary noise": (_write(os.urandom(64).replace(b"\n", b"") + b"\n"), "line 1"),
    "a folder": (_directory, "is a folder"),
    "a FIFO": (_fifo, "is a FIFO"),
    "a symbolic link": (_symlink, "symbolic link"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_checkpoint_is_a_clear_error_for_restart(failed, case):
    damage, expected = DAMAGE[case]
    damage(checkpoint(failed))
    result = failed.run_subprocess("-r", timeout=30)
    assert result.ret == ExitCode.CHECKPOINT_ERROR == 6, (case, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert (
        f"ERROR: the checkpoint {checkpoint(failed)}" in result.stderr or "cannot read the checkpoint" in result.stderr
    )
    assert expected in result.stderr, (case, result.stderr)
    assert "--fresh" in result.stderr
    assert marks(failed) == []  # nothing ran
    if case == "a folder":  # nothing can replace it: that too is said before any task starts
        fresh = failed.run("-r", "--fresh")
        assert fresh.ret == 6 and "Is a directory" in fresh.stderr and marks(failed) == []
        checkpoint(failed).rmdir()  # as the hint says
    fresh = failed.run("-r", "--fresh")  # the way out the error names
    assert fresh.ret == 0 and marks(failed) == ["a", "b"]


def test_a_torn_last_record_is_ignored(failed):
    cp = checkpoint(failed)
    cp.write_bytes(cp.read_bytes() + b'{"t": "b", "s": "COMPLE')  # the runner was killed mid-write
    result = failed.run("-r")
    assert result.ret == 0, result.stdout + result.stderr
    assert marks(failed) == ["b"]  # a stayed done, b ran


def test_a_checkpoint_folder_that_is_a_file_stops_the_run_before_any_task(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    (fmtester.path / ".flowmancer").write_text("not a folder")
    for args in ((), ("-r",)):
        result = fmtester.run_subprocess(*args)
        assert result.ret == ExitCode.CHECKPOINT_ERROR, result.stdout + result.stderr
        assert f"the checkpoint folder {fmtester.path / '.flowmancer'} is a file" in result.stderr
        assert "Traceback" not in result.stderr and marks(fmtester) == []


def test_a_read_only_checkpoint_folder_stops_the_run_before_any_task(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    folder = fmtester.path / ".flowmancer"
    folder.mkdir()
    subprocess.run(["chattr", "+i", str(folder)], check=True)  # read-only even for root
    try:
        result = fmtester.run_subprocess()
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert result.ret == ExitCode.CHECKPOINT_ERROR, result.stdout + result.stderr
    assert "cannot write" in result.stderr and "Operation not permitted" in result.stderr
    assert "Traceback" not in result.stderr and marks(fmtester) == []


def _in_tmpfs(project, size: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) with a tmpfs of ``size`` on the project's .flowmancer, in a mount namespace of its own."""
    (project.path / ".flowmancer").mkdir(exist_ok=True)
    py = sys.executable
    body = f"mount -t tmpfs -o size={size},mode=0700 tmpfs .flowmancer || exit 99\n" + textwrap.dedent(script).replace(
        "flowmancer ", f"{py} -m flowmancer "
    )
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", body],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_full_disk_stops_the_run_before_any_task(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(JOB)
    proc = _in_tmpfs(
        fmtester,
        "8k",
        """
        dd if=/dev/zero of=.flowmancer/filler bs=1k count=64 2>/dev/null
        flowmancer -j job.yaml -p no:filelogger; echo "exit $?"
        """,
    )
    assert "exit 6" in proc.stdout, proc.stdout + proc.stderr
    assert "No space left on device" in proc.stderr and "free space on the disk" in proc.stderr
    assert "Traceback" not in proc.stderr and marks(fmtester) == []


def test_a_disk_that_fills_mid_run_stops_cleanly_and_keeps_what_was_recorded(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "config: {name: job}\ntasks:\n  a: {task: Step}\n"
        "  b: {task: Step, dependencies: [a], parameters: {payload: 6000, linger: 30}}\n"
        "  c: {task: Step, dependencies: [b]}\n"
    )
    proc = _in_tmpfs(
        fmtester,
        "8k",
        """
        flowmancer -j job.yaml -p no:filelogger; echo "first $?"
        mount -o remount,size=1m .flowmancer
        touch no-linger
        flowmancer -j job.yaml -p no:filelogger -r; echo "second $?"
        """,
    )
    out = proc.stdout
    assert "first 6" in out and "second 0" in out, out + proc.stderr
    first, second = out.split("first 6")
    assert "1 completed, 1 aborted, 1 not run" in first
    assert "aborted (the checkpoint could not be written)" in first
    assert "ERROR: cannot write the checkpoint" in proc.stderr and "free space on the disk" in proc.stderr
    assert "run again with -r" in proc.stderr and "Traceback" not in proc.stderr
    assert "resuming from checkpoint: 1 completed task will not rerun" in second
    assert marks(fmtester) == ["a", "b", "b", "c"]  # a ran once: its completion was recorded


def test_the_temp_file_is_never_created_through_a_planted_link(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (shared / f"job.jsonl.tmp{os.getpid()}").symlink_to(victim)
    cp = FileCheckpointer(checkpoint_dir=str(shared))
    cp.open_journal("job", {"a": "INIT"}, {})
    cp.close_journal()
    assert victim.read_text() == "precious"
    assert cp.read_checkpoint("job").states == {"INIT": {"a"}}
    assert oct(shared.stat().st_mode & 0o777) == "0o700"  # an existing folder of ours is tightened


CUSTOM = """
from flowmancer.checkpointer import CheckpointContents, Checkpointer, checkpointer


@checkpointer
class DatabaseCheckpointer(Checkpointer):
    host: str = "db"
    mode: str = "none"

    def write_checkpoint(self, name, content):
        pass

    def read_checkpoint(self, name):
        if self.mode == "raise":
            raise ConnectionError("db is down")
        if self.mode == "dict":
            return {"states": {}}
        return None  # the README's stub: "..."

    def clear_checkpoint(self, name):
        pass
"""


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("none", "DatabaseCheckpointer.read_checkpoint('job') returned NoneType, not CheckpointContents"),
        ("dict", "returned dict, not CheckpointContents"),
        ("raise", "DatabaseCheckpointer.read_checkpoint('job') failed: ConnectionError: db is down"),
    ],
)
def test_a_custom_checkpointer_that_returns_nothing_usable_is_named(fmtester, mode, expected):
    fmtester.make_tasks(TASKS)
    fmtester.makefile("extensions/db.py", CUSTOM)
    fmtester.make_jobdef(JOB + f"checkpointer:\n  checkpointer: DatabaseCheckpointer\n  parameters: {{mode: {mode}}}\n")
    result = fmtester.run_subprocess("-r")
    assert result.ret == ExitCode.CHECKPOINT_ERROR, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr and "AttributeError" not in result.stderr
    assert marks(fmtester) == []


SQLITE_JOB = (
    "config: {name: job, extension_packages: [flowmancer_contrib]}\n"
    "checkpointer: {checkpointer: SQLiteCheckpointer, parameters: {database: hist.sqlite3}}\n"
    "tasks:\n"
    + "".join(f"  t{i}: {{task: Step}}\n" for i in range(6))
    + "  last: {task: Step, dependencies: [t0, t1, t2, t3, t4, t5]}\n"
)


def test_sqlite_history_rows_hold_each_runs_final_states(fmtester):
    import json
    import sqlite3

    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(SQLITE_JOB)
    for i in range(4):
        fail = fmtester.path / "fail-last"
        if i % 2 == 0:
            fail.touch()
        elif fail.exists():
            fail.unlink()
        fmtester.run(*(("-r",) if i else ()))
    with sqlite3.connect(fmtester.path / "hist.sqlite3") as conn:
        rows = conn.execute("SELECT states FROM flowmancer_checkpoint ORDER BY id").fetchall()
    assert len(rows) == 4
    for (states,) in rows:
        assert set(json.loads(states)) <= {"COMPLETED", "FAILED"}, states  # never RUNNING or PENDING


def test_a_damaged_sqlite_checkpoint_is_a_clear_error(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(SQLITE_JOB)
    (fmtester.path / "hist.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(2000))
    result = fmtester.run_subprocess("-r")
    assert result.ret == ExitCode.CHECKPOINT_ERROR, result.stdout + result.stderr
    assert "SQLiteCheckpointer.read_checkpoint('job') failed: DatabaseError" in result.stderr
    assert "Traceback" not in result.stderr and marks(fmtester) == []
