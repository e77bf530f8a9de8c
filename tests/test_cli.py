"""The `flowmancer` command and the `Flowmancer().start()` driver, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flowmancer import Flowmancer, __version__
from flowmancer.exitcode import ExitCode

OK_TASKS = """
from flowmancer.task import Task, task

@task
class Hello(Task):
    def run(self):
        print("hello from", self.task_info.name)

@task
class Boom(Task):
    def run(self):
        raise RuntimeError("boom")
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(OK_TASKS)
    fmtester.make_jobdef("config: {name: cli-job}\ntasks:\n  a: {task: Hello}\n  b: {task: Hello, dependencies: [a]}\n")
    return fmtester


def test_version_and_help(project):
    r = project.run_subprocess("--version", jobdef=None)
    assert r.ret == 0 and r.stdout.strip() == f"flowmancer {__version__}"
    r = project.run_subprocess("--help", jobdef=None)
    assert r.ret == 0
    for frag in ["--jobdef", "--restart", "--max-concurrency", "--var", "--skip", "--run-to", "exit codes:", "130"]:
        assert frag in r.stdout


def test_plain_output_without_tty_and_summary(project):
    r = project.run_subprocess()
    assert r.ret == 0, r.stderr
    assert "\x1b[" not in r.stdout  # not a TTY: no colour
    r.out.fnmatch_lines(["*job 'cli-job' · 2 tasks*"])
    assert f"root: {project.path}" in r.stdout
    assert r.outlines[-1].startswith("=== 2 completed in ")
    r.assert_outcomes(completed=2)


def test_colour_forced_and_no_color_wins(project):
    r = project.run_subprocess("--color", "yes")
    assert "\x1b[32m" in r.stdout
    r = project.run_subprocess(env={"FORCE_COLOR": "1"})
    assert "\x1b[" in r.stdout
    r = project.run_subprocess("--color", "auto", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in r.stdout


def test_quiet_levels(project):
    r = project.run_subprocess("-q")
    assert r.ret == 0
    assert r.outlines == [r.outlines[-1]] and "2 completed" in r.stdout
    project.make_jobdef("tasks:\n  a: {task: Boom}\n  b: {task: Hello}\n")
    r = project.run_subprocess("-q")
    assert r.ret == ExitCode.TASKS_FAILED
    assert "FAILURES" in r.stdout and "RuntimeError: boom" in r.stdout and "COMPLETED" not in r.stdout
    r = project.run_subprocess("-qq")
    assert len(r.outlines) == 1 and "1 completed, 1 failed" in r.stdout


def test_usage_errors_exit_2_without_traceback(project):
    for args in (["--bogus"], ["--max-concurrency", "x"]):
        r = project.run_subprocess(*args)
        assert r.ret == ExitCode.USAGE_ERROR, args
        assert "Traceback" not in r.stderr and "try 'flowmancer --help'" in r.stderr
    (project.path / "job.yaml").rename(project.path / "other.yaml")  # no job file of a default name here
    r = project.run_subprocess(jobdef=None)
    assert r.ret == ExitCode.USAGE_ERROR and "pass -j/--jobdef" in r.stderr


def test_rootdir_discovery_and_override(fmtester):
    fmtester.make_tasks(OK_TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Hello}\n", name="jobs/nested/job.yaml")
    r = fmtester.run_subprocess(jobdef="jobs/nested/job.yaml")
    assert r.ret == 0, r.stderr
    assert f"root: {fmtester.path}\n" in r.stdout  # nearest folder with tasks/
    # --root elsewhere: no tasks there, so the class is unknown.
    (fmtester.path / "empty").mkdir()
    r = fmtester.run_subprocess("--root", "empty", jobdef="jobs/nested/job.yaml")
    assert r.ret == ExitCode.JOBDEF_ERROR and "unknown task class 'Hello'" in r.stderr


def test_rootdir_by_pyproject_section(fmtester):
    fmtester.makefile("proj/pyproject.toml", "[tool.flowmancer]\n")
    fmtester.makefile("proj/extensions/t.py", OK_TASKS)
    fmtester.makefile("proj/jobs/job.yaml", "tasks:\n  a: {task: Hello}\n")
    r = fmtester.run_subprocess(jobdef="proj/jobs/job.yaml")
    assert r.ret == 0, r.stderr
    assert f"root: {fmtester.path / 'proj'}\n" in r.stdout


def test_python_dash_m_and_console_script_agree(project):
    exe = os.path.join(os.path.dirname(sys.executable), "flowmancer")
    proc = subprocess.run([exe, "-j", "job.yaml", "-q"], cwd=project.path, capture_output=True, text=True)
    assert proc.returncode == 0 and "2 completed" in proc.stdout


def test_a_plain_run_imports_only_what_it_uses(project):
    """Start-up: what only some runs use is imported by those runs (each of these cost 0.3-3 ms of every
    start), and a run that uses it still works."""
    r = project.run_python("-X", "importtime", "-m", "flowmancer", "-j", "job.yaml", "-q")
    assert r.ret == 0 and "2 completed" in r.stdout, r.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "flowmancer.task" in imported  # the measurement sees the run's imports
    unused = {
        "flowmancer.eventbus.log": "no YAML logger",
        "flowmancer.eventbus.execution": "no YAML extension",
        "flowmancer.incremental.state": "not --incremental",
        "flowmancer.incremental.fingerprint": "not --incremental",
        "flowmancer.expression": "no -k or -m",
        "pkgutil": "no extension_packages",
        "email.parser": "no two distributions with flowmancer entry points",
    }
    assert not {m: why for m, why in unused.items() if m in imported}
    r = project.run_subprocess("--incremental", "-k", "a or b", "-q")
    assert r.ret == 0 and "2 completed" in r.stdout, r.stderr


GC_CONF = """
import gc
from flowmancer import hookimpl

@hookimpl
def flowmancer_task_start(job, task):
    open("gc.txt", "a").write(f"start {task.name} {gc.isenabled()}\\n")

@hookimpl
def flowmancer_task_finish(job, task, result):
    open("gc.txt", "a").write(f"finish {task.name} {gc.isenabled()}\\n")
"""

GC_TASKS = """
import gc
from flowmancer.task import Task, task

@task
class Gc(Task):
    def run(self):
        open("gc.txt", "a").write(f"task {self.task_info.name} {gc.isenabled()}\\n")
"""


@pytest.mark.parametrize("how", ["cli", "driver"])
def test_the_collector_is_on_once_the_run_starts(fmtester, how):
    """Start-up (up to ``flowmancer_job_start``) pauses the cyclic garbage collector (what it makes lives on);
    the run itself and the tasks collect as usual, through ``flowmancer`` and through the driver."""
    fmtester.make_tasks(GC_TASKS)
    fmtester.make_conf(GC_CONF)
    fmtester.make_jobdef("tasks:\n  a: {task: Gc}\n  b: {task: Gc, dependencies: [a]}\n")
    if how == "cli":
        r = fmtester.run_subprocess("-q")
    else:
        fmtester.makefile("main.py", "from flowmancer import Flowmancer\nraise SystemExit(Flowmancer().start())\n")
        r = fmtester.run_python("main.py", "-j", "job.yaml", "-q")
    assert r.ret == 0, r.stderr
    lines = (fmtester.path / "gc.txt").read_text().splitlines()
    assert sorted(lines) == sorted(
        ["start a True", "task a True", "finish a True", "start b True", "task b True", "finish b True"]
    ), lines


def test_a_driver_run_that_forks_nothing_leaves_nothing_frozen(fmtester):
    """Start-up freezes what it made (out of the collector's sight); a run that forks no task (a dry run, a
    job definition error) gives it back at its end, so a process that runs jobs again and again leaks nothing."""
    fmtester.make_tasks(GC_TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Gc}\n")
    fmtester.makefile(
        "main.py",
        "import gc\nfrom flowmancer import Flowmancer\n"
        "for argv in (['-j', 'job.yaml', '-n'], ['-j', 'missing.yaml'], ['-j', 'job.yaml', '-q']):\n"
        "    Flowmancer().start(argv=argv)\n"
        "    print('frozen', gc.get_freeze_count())\n",
    )
    r = fmtester.run_python("main.py")
    assert r.ret == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if line.startswith("frozen")] == ["frozen 0"] * 3, r.stdout


EXIT_CONF = """
import atexit
from flowmancer import hookimpl

# Buffered and never flushed nor closed: only the interpreter's exit writes it out.
trail = open("trail.txt", "w", buffering=1 << 20)
atexit.register(lambda: open("atexit.txt", "w").write("atexit ran"))

@hookimpl
def flowmancer_task_finish(job, task, result):
    trail.write(f"{task.name}={result.state.value}\\n")
"""


@pytest.mark.parametrize("jobdef, code", [("job.yaml", 0), ("fails.yaml", 1)])
def test_exit_keeps_what_plugins_left_open(project, jobdef, code):
    """The command skips the interpreter's last full collections at exit (``gc.freeze``), not its exit:
    a plugin's buffered file that nothing closed is still written, atexit handlers run, the code stays."""
    project.make_conf(EXIT_CONF)
    project.make_jobdef("tasks:\n  a: {task: Hello}\n  b: {task: Boom, dependencies: [a]}\n", name="fails.yaml")
    r = project.run_subprocess("-q", jobdef=jobdef)
    assert r.ret == code, r.stderr
    trail = (project.path / "trail.txt").read_text()
    assert trail == ("a=COMPLETED\nb=COMPLETED\n" if code == 0 else "a=COMPLETED\nb=FAILED\n")
    assert (project.path / "atexit.txt").read_text() == "atexit ran"


def test_driver_under_pytest_uses_callers_folder(project, monkeypatch):
    """Flowmancer() finds the app root from its caller, not the outermost frame (which is pytest here)."""
    app = project.path / "app"
    app.mkdir()
    (project.path / "tasks").rename(app / "tasks")
    (project.path / "job.yaml").rename(app / "job.yaml")
    project.makefile(
        "app/drive.py", "from flowmancer import Flowmancer\n\ndef go(argv):\n    return Flowmancer().start(argv=argv)\n"
    )
    with project.isolated():
        sys.path.insert(0, str(app))
        import drive  # type: ignore[import-not-found]

        assert drive.go(["-j", str(app / "job.yaml"), "-q"]) == 0


def test_driver_returns_count_and_raises_on_request(project, monkeypatch):
    from flowmancer.errors import JobDefinitionError

    project.make_jobdef("tasks:\n  a: {task: Boom}\n  b: {task: Hello, dependencies: [a]}\n  c: {task: Hello}\n")
    with project.isolated():
        assert Flowmancer(root=str(project.path)).start(argv=["-j", "job.yaml", "-qq"]) == 2  # 1 failed + 1 defaulted
    project.make_jobdef("tasks:\n  a: {task: Nope}\n")
    with project.isolated():
        assert Flowmancer(root=str(project.path)).start(argv=["-j", "job.yaml"]) == ExitCode.JOBDEF_ERROR
    with project.isolated(), pytest.raises(JobDefinitionError, match="unknown task class 'Nope'"):
        Flowmancer(root=str(project.path)).start(argv=["-j", "job.yaml"], raise_exception_on_failure=True)


def test_driver_default_jobdef_and_vars(project):
    project.make_jobdef("config: {name: '$VAR{n}'}\ntasks:\n  a: {task: Hello}\n", name="jobs/default.yaml")
    project.makefile(
        "main.py",
        """
        import sys
        from flowmancer import Flowmancer

        fm = Flowmancer()
        fm.set_jobdef_var("n", "named-by-driver")
        sys.exit(fm.start(default_jobdef_path="jobs/default.yaml"))
        """,
    )
    other = project.path / "other"
    other.mkdir()
    proc = subprocess.run([sys.executable, "../main.py"], cwd=other, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "job 'named-by-driver'" in proc.stdout


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_aborts_running_tasks(fmtester, sig, code):
    fmtester.make_tasks(
        """
        import time
        from flowmancer.task import Task, task

        @task
        class Slow(Task):
            def run(self):
                open(f"{self.task_info.name}.started", "w").close()
                time.sleep(30)
            def on_abort(self):
                open(f"{self.task_info.name}.aborted", "w").close()
            def on_destroy(self):
                open(f"{self.task_info.name}.destroyed", "w").close()

        @task
        class Never(Task):
            def run(self):
                open("never.ran", "w").close()
        """
    )
    fmtester.make_jobdef("tasks:\n  s1: {task: Slow}\n  s2: {task: Slow}\n  after: {task: Never, dependencies: [s1]}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml"],
        cwd=fmtester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 20
    while not all((fmtester.path / f"s{i}.started").exists() for i in (1, 2)):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.02)
    start = time.time()
    os.killpg(proc.pid, sig)  # like Ctrl-C in a terminal: the whole process group gets it
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, out + err
    assert time.time() - start < 5
    assert "Traceback" not in err
    for i in (1, 2):
        assert (fmtester.path / f"s{i}.aborted").exists()
        assert (fmtester.path / f"s{i}.destroyed").exists()
    assert not (fmtester.path / "never.ran").exists()
    assert f"interrupted by {signal.Signals(sig).name}: 2 aborted, 1 not run" in out


def test_without_j_the_job_file_of_the_current_folder_is_used(fmtester):
    fmtester.make_tasks(
        "from flowmancer.task import Task, task\n\n@task\nclass Hi(Task):\n    def run(self):\n        print('hi')\n"
    )
    result = fmtester.run_subprocess(jobdef=None)
    assert result.ret == 2 and "none here (job.yaml, job.yml, flowmancer.yaml, flowmancer.yml)" in result.stderr
    fmtester.make_jobdef("tasks:\n  a: {task: Hi}\n", name="flowmancer.yaml")
    result = fmtester.run_subprocess("-s", jobdef=None)
    assert result.ret == 0 and "[a] hi" in result.stdout
    fmtester.make_jobdef("tasks:\n  b: {task: Hi}\n", name="job.yaml")  # job.yaml comes first
    result = fmtester.run_subprocess("-s", jobdef=None)
    assert result.ret == 0 and "[b] hi" in result.stdout
