"""The runner never dies of its environment: a closed stdout, an ASCII terminal, a hung-up terminal, huge
timeouts, -x with tasks left, FIFOs and devices as job files, alias bombs, unusable log folders, files that
are not job definitions. Real processes, pipes and terminals."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from flowmancer.exitcode import ExitCode
from flowmancer.retry import MAX_DELAY, retry_delay

TASKS = r"""
import os
import time
from flowmancer.task import Task, task


def mark(text):
    with open("marks.txt", "a") as f:
        f.write(text + "\n")


@task
class Talk(Task):
    lines: int = 200
    sleep: float = 0.0
    fail: bool = False

    def run(self):
        name = self.task_info.name
        mark(f"start {name} {self.task_info.attempt}")
        for i in range(self.lines):
            print(f"{name} says line {i} \u00b7 caf\u00e9")
        time.sleep(self.sleep)
        if self.fail:
            raise RuntimeError("failing on purpose")
        mark(f"end {name}")

    def on_abort(self):
        mark(f"abort {self.task_info.name}")
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def marks(project) -> list[str]:
    p = project.path / "marks.txt"
    return p.read_text().splitlines() if p.exists() else []


def shell(project, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command.replace("flowmancer ", f"{sys.executable} -m flowmancer ")],
        cwd=project.path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the runner's own output --------------------------------------------------------------------------


@pytest.mark.parametrize(("fail", "code"), [(False, 0), (True, 1)])
def test_stdout_closed_by_the_reader_finishes_the_job_with_its_own_code(project, fail, code):
    tasks = "".join(f"  t{i}: {{task: Talk, parameters: {{sleep: 0.2}}}}\n" for i in range(6))
    tasks += (
        f"  last: {{task: Talk, dependencies: [t0, t1, t2, t3, t4, t5], parameters: {{fail: {str(fail).lower()}}}}}\n"
    )
    project.make_jobdef("tasks:\n" + tasks)
    proc = shell(project, 'flowmancer -j job.yaml -s | head -1; echo "status ${PIPESTATUS[0]}"')
    assert proc.stdout.splitlines()[0].startswith("flowmancer ")
    assert f"status {code}" in proc.stdout, proc.stdout + proc.stderr
    assert (
        "Traceback" not in proc.stderr
        and "INTERNAL ERROR" not in proc.stderr
        and "Exception ignored" not in proc.stderr
    )
    assert sum(m.startswith("end") for m in marks(project)) == 6 + (not fail)  # every task ran
    cp = project.path / ".flowmancer" / "job.jsonl"
    assert (not cp.exists()) if not fail else ('"RUNNING"' not in cp.read_text().splitlines()[-1])


def test_list_into_head_0(project):
    project.make_jobdef("tasks:\n" + "".join(f"  t{i}: {{task: Talk}}\n" for i in range(300)))
    proc = shell(project, 'flowmancer -j job.yaml --list | head -0; echo "status ${PIPESTATUS[0]}"')
    assert "status 0" in proc.stdout and proc.stderr == "", proc.stderr


def test_an_ascii_only_stdout(project):
    project.make_jobdef("tasks:\n  a: {task: Talk, parameters: {lines: 3}}\n")
    proc = shell(project, "PYTHONIOENCODING=ascii flowmancer -j job.yaml -s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "flowmancer " in proc.stdout and " - job 'job' - 1 task" in proc.stdout
    assert "[a] a says line 0 ? caf?" in proc.stdout


def test_a_terminal_that_hangs_up_sighup_and_eio(project):
    """The terminal (an ssh session) closes: the runner gets SIGHUP and every later write to it fails with EIO.
    The run aborts like SIGTERM, its checkpoint says so, and it exits 129."""
    project.make_jobdef("config: {name: hup}\ntasks:\n  a: {task: Talk, parameters: {sleep: 30, lines: 1}}\n")
    main, tty = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-s"],
        cwd=project.path,
        stdin=tty,
        stdout=tty,
        stderr=tty,
    )
    os.close(tty)
    deadline = time.time() + 20
    while not any(m.startswith("start a") for m in marks(project)):
        assert time.time() < deadline
        try:
            os.read(main, 65536)  # keep the terminal drained
        except OSError:
            pass
        time.sleep(0.02)
    os.close(main)  # the terminal is gone: writes to it now fail with EIO
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(20) == ExitCode.HANGUP
    assert "abort a" in marks(project)
    journal = (project.path / ".flowmancer" / "hup.jsonl").read_text()
    assert journal.splitlines()[-1] == '{"t":"a","s":"ABORTED"}'


# -- numbers too large --------------------------------------------------------------------------------


def test_a_30_day_timeout_works_and_infinity_is_refused(project):
    project.make_jobdef("tasks:\n  a: {task: Talk, timeout: 2592000, backoff: 2592000, max_attempts: 2}\n")
    result = project.run_subprocess()
    assert result.ret == 0, result.stdout + result.stderr
    project.make_jobdef("tasks:\n  a: {task: Talk, timeout: .inf}\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR and "tasks.a.timeout" in result.stderr
    assert "finite" in result.stderr and "Traceback" not in result.stderr


def test_a_huge_backoff_factor_waits_at_most_a_year_and_can_be_stopped(project, launch):
    assert retry_delay(5, 1.0, 1e308, None, 0) == MAX_DELAY
    project.make_jobdef(
        "tasks:\n  a: {task: Talk, max_attempts: 3, backoff: 0.1, backoff_factor: 1.0e+300, parameters: {fail: true, lines: 1}}\n"
    )
    proc = launch()
    deadline = time.time() + 20
    while sum(m.startswith("start a") for m in marks(project)) < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # now waiting for a retry a year away
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.TERMINATED, out + err
    assert "OverflowError" not in err and "Traceback" not in err


def test_exitfirst_ends_when_the_last_running_task_ends(project):
    project.make_jobdef(
        "tasks:\n  bad: {task: Talk, parameters: {fail: true, lines: 1}}\n"
        "  slow: {task: Talk, parameters: {sleep: 0.5, lines: 1}}\n  after: {task: Talk, dependencies: [slow]}\n"
    )
    t0 = time.time()
    result = project.run_subprocess("-x")
    assert result.ret == ExitCode.TASKS_FAILED
    assert time.time() - t0 < 3.5  # not the 5 s of abort_grace_seconds after the last task ended
    assert "end slow" in marks(project) and "start after 1" not in marks(project)


# -- job files that are not ---------------------------------------------------------------------------


def test_a_fifo_or_a_device_as_job_file_is_refused_at_once(project):
    os.mkfifo(project.path / "fifo.yaml")
    (project.path / "folder.yaml").mkdir()
    for path, what in (("fifo.yaml", "a FIFO"), ("/dev/zero", "a device"), ("folder.yaml", "a folder")):
        t0 = time.time()
        result = project.run_subprocess("-j", path, jobdef=None, timeout=20)
        assert time.time() - t0 < 10
        assert result.ret == ExitCode.JOBDEF_ERROR and f"is {what}, not a job definition file" in result.stderr
    project.make_jobdef("include: [fifo.yaml, /dev/zero]\ntasks:\n  a: {task: Talk}\n")
    result = project.run_subprocess(timeout=20)
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "fifo.yaml is a FIFO" in result.stderr and "/dev/zero is a device" in result.stderr


def test_a_yaml_alias_bomb_is_refused_at_its_line(project):
    lines = ['  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    project.make_jobdef("aliases:\n" + "\n".join(lines) + "\ntasks:\n  a: {task: Talk}\n")
    assert (project.path / "job.yaml").stat().st_size < 500
    t0 = time.time()
    result = project.run_subprocess("--list", timeout=60)
    assert time.time() - t0 < 15
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:6: YAML aliases expand to more than 100,000 values (an alias bomb?)" in result.stderr


def test_an_unusable_log_folder_is_a_job_definition_error(project):
    project.make_jobdef("tasks:\n  a: {task: Talk}\n")
    (project.path / "logs").write_text("a file where the log folder goes")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR and "the log folder cannot be used" in result.stderr
    assert "logs is not a folder" in result.stderr and marks(project) == []
    (project.path / "logs").unlink()
    ro = project.path / "readonly"
    ro.mkdir()
    project.make_jobdef(
        "loggers:\n  files: {logger: FileLogger, parameters: {base_log_dir: ./readonly/logs}}\ntasks:\n  a: {task: Talk}\n"
    )
    subprocess.run(["chattr", "+i", str(ro)], check=True)
    try:
        result = project.run_subprocess()
    finally:
        subprocess.run(["chattr", "-i", str(ro)], check=True)
    assert result.ret == ExitCode.JOBDEF_ERROR and "job.yaml:2: loggers.files.parameters.base_log_dir" in result.stderr
    assert "cannot be written" in result.stderr and marks(project) == []


def test_a_file_that_is_not_a_job_definition_is_never_echoed(project):
    secret = project.path / "shadow"
    secret.write_text("".join(f"user{i}:$6$SECRETHASH{i}:20228:0:99999:7:::\n" for i in range(25)))
    project.make_jobdef(f"include: [{secret}]\ntasks:\n  a: {{task: Talk}}\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert f"{secret} is not a job definition" in result.stderr
    assert "SECRETHASH" not in result.stdout + result.stderr


def test_an_include_from_outside_the_app_root_is_named_in_the_header(project):
    outside = project.path.parent / f"{project.path.name}-shared.yaml"
    outside.write_text("config: {max_concurrency: 2}\n")
    project.make_jobdef(f"include: [../{outside.name}]\ntasks:\n  a: {{task: Talk, parameters: {{lines: 1}}}}\n")
    result = project.run()
    assert result.ret == 0
    assert f"note: included from outside the app root: ../{outside.name} ({outside})" in result.stdout
