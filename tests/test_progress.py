"""The live status block, seen through a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

TASKS = """
import time
from flowmancer.task import Task, task

@task
class Wait(Task):
    seconds: float = 1.5

    def run(self):
        time.sleep(self.seconds)
"""


def run_in_pty(cwd, *args, env=None):
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmancer", *args],
        cwd=cwd,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **(env or {})},
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(60)
    os.close(master)
    return proc.returncode, out.decode()


def test_live_block_on_a_tty(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n  long-one: {task: Wait, max_attempts: 2}\n  short: {task: Wait, parameters: {seconds: 0.2}}\n"
    )
    code, out = run_in_pty(fmtester.path, "-j", "job.yaml")
    assert code == 0, out
    # redrawn about once a second while nothing else happened
    assert re.search(r"  ▸ long-one  attempt 1/2  (0\.[89]|1\.\d)s", out), out
    assert "2 running" in out and "\x1b[34m1 running" in out
    assert "\x1b[J" in out  # the block is cleared before lines scroll above it
    assert out.rstrip().endswith("\x1b[0m") and "2 completed" in out.splitlines()[-1]
    redraws = out.count("\x1b[J")
    assert redraws <= 10 * 1.6 + 5  # at most ~10 a second over the ~1.5 s run


def test_live_block_shows_the_pools_in_use(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "config: {pools: {db: 1, gpu: 2}}\ntasks:\n"
        "  one: {task: Wait, parameters: {seconds: 0.6}, resources: {db: 1}}\n"
        "  two: {task: Wait, parameters: {seconds: 0.6}, resources: {db: 1}}\n"
    )
    code, out = run_in_pty(fmtester.path, "-j", "job.yaml")
    assert code == 0, out
    assert "pools: db 1/1 · gpu 0/2" in out, out


def test_no_live_block_without_a_tty_or_with_quiet_or_no_color(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Wait, parameters: {seconds: 0.3}}\n")
    piped = fmtester.run_subprocess()
    assert "▸" not in piped.stdout
    for args, env in ((["-q"], None), ([], {"NO_COLOR": "1"}), (["--progress", "no"], None)):
        code, out = run_in_pty(fmtester.path, "-j", "job.yaml", *args, env=env)
        assert code == 0 and "▸" not in out and "\x1b[J" not in out, args
