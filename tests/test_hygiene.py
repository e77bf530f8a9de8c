"""Hygiene: what a task names or prints cannot act on the terminal, reports are private files, secrets are
never checkpointed as their masked text."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from flowmancer.exitcode import ExitCode

TASKS = r"""
from pydantic import BaseModel, SecretStr
from flowmancer.task import Task, task


class Creds(BaseModel):
    user: str
    password: SecretStr


@task
class Loud(Task):
    fail: bool = False

    def run(self):
        print("\x1b[31mred\x1b[0m and \u202eevil\x07 end")
        if self.fail:
            raise RuntimeError("boom \x1b[2J")


@task
class Keep(Task):
    def run(self):
        self.shared_dict["creds"] = Creds(user="me", password="hunter2")
        self.shared_dict["plain"] = {"n": 1}


@task
class Gate(Task):
    def run(self):
        import os
        if os.path.exists("fail"):
            raise RuntimeError("failing on purpose")


@task
class Look(Task):
    def run(self):
        with open("seen.txt", "w") as f:
            f.write(repr(sorted(self.shared_dict)))
"""

EVIL = '"evil\\e[2J\\u202eman"'  # a task name with an ANSI escape and a right-to-left override (YAML escapes)


def test_control_characters_never_reach_the_terminal_raw(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(f"tasks:\n  {EVIL}: {{task: Loud, parameters: {{fail: true}}}}\n")
    for args in (("-s", "--color", "no"), ("--list",), ("-n",)):
        result = fmtester.run_subprocess(*args)
        out = result.stdout + result.stderr
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out, (args, out)
        assert "evil\\x1b[2J\\u202eman" in out, (args, out)
    result = fmtester.run_subprocess("-s", "--color", "no")
    assert result.ret == ExitCode.TASKS_FAILED
    assert "\\x1b[31mred\\x1b[0m and \\u202eevil\\x07 end" in result.stdout  # the output, shown escaped
    assert "boom \\x1b[2J" in result.stdout  # the error too
    run_dir = sorted((fmtester.path / "logs").iterdir())[-1]
    (log,) = list(run_dir.iterdir())
    assert "\x1b[31mred\x1b[0m and \u202eevil\x07 end" in log.read_text()  # the log keeps what was written


def test_reports_are_private_files_whatever_the_umask(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Loud}\n")
    (fmtester.path / "r.html").write_text("an old report")
    os.chmod(fmtester.path / "r.html", 0o666)
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-p", "flowmancer_contrib.report"]
        + ["--report", "r.html", "--report-json", "r.json"],
        cwd=fmtester.path,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0),
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("r.html", "r.json"):
        mode = stat.S_IMODE((fmtester.path / name).stat().st_mode)
        assert mode == 0o640, (name, oct(mode))
    assert "red" in (fmtester.path / "r.html").read_text()


def test_a_model_holding_a_secret_is_not_checkpointed_as_its_mask(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n  keep: {task: Keep}\n  gate: {task: Gate}\n  look: {task: Look, dependencies: [keep, gate]}\n"
    )
    (fmtester.path / "fail").touch()
    assert fmtester.run().ret == 1
    journal = (fmtester.path / ".flowmancer" / "job.jsonl").read_text()
    assert "hunter2" not in journal and "**********" not in journal
    (fmtester.path / "fail").unlink()
    result = fmtester.run("-r")
    assert result.ret == 0, result.stdout + result.stderr
    result.out.fnmatch_lines(["*not restored: 'creds' (Creds, which holds a secret)*"])
    assert (fmtester.path / "seen.txt").read_text() == "['plain']"  # never the masked '**********'


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
