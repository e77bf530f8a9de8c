"""The HTML and JSON run reports, rendered in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from browser import CHROMIUM, chromium

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "readme"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (apt-get install chromium)")


def render(page: Path, tmp: Path) -> tuple[str, float]:
    """The DOM Chromium renders from the file, and how long it took; also saves a screenshot."""
    flags = chromium(tmp / "profile")
    start = time.perf_counter()
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    took = time.perf_counter() - start
    subprocess.run(
        [*flags, "--window-size=1200,900", f"--screenshot={tmp / 'report.png'}", page.as_uri()],
        capture_output=True,
        timeout=60,
    )
    assert (tmp / "report.png").stat().st_size > 1000
    return dom, took


def test_readme_example_report(fmtester, tmp_path):
    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    fast = (
        (EXAMPLE / "job.yaml")
        .read_text()
        .replace(
            'my_required_string_var: "My First Task!"',
            'my_required_string_var: "My First Task!"\n      my_optional_int_var: 0',
        )
    )
    fmtester.makefile("fast.yaml", fast)
    result = fmtester.run_python(
        "main.py",
        "-j",
        "fast.yaml",
        "-p",
        "flowmancer_contrib.report",
        "--report",
        "run.html",
        "--report-json",
        "run.json",
    )
    assert result.ret == 1
    dom, _ = render(fmtester.path / "run.html", tmp_path)
    bars = re.findall(r'<rect class="bar state-(\w+)" data-task="([^"]+)" data-attempt="(\d)"', dom)
    assert [(s, a) for s, t, a in bars if t == "final-fail-task"] == [("FAILED", "1"), ("FAILED", "2"), ("FAILED", "3")]
    assert {t for _, t, _ in bars} == {"succeed-task-a", "succeed-task-b", "final-fail-task"}
    assert "my-flowmancer-job" in dom and "failure" in dom
    assert "Let this be caught by Flowmancer" in dom  # the last lines of output
    assert '"my_required_string_var": "My First Task!"' in dom.replace("&quot;", '"')
    data = json.loads((fmtester.path / "run.json").read_text())
    assert data["outcome"] == "failure" and data["exitcode"] == 1
    final = next(t for t in data["tasks"] if t["name"] == "final-fail-task")
    assert [a["state"] for a in final["attempts"]] == ["FAILED"] * 3 and final["dependencies"] == [
        "succeed-task-a",
        "succeed-task-b",
    ]
    assert "network" not in dom and "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", dom)


TASKS = """
from pydantic import SecretStr
from flowmancer.task import Task, task

@task
class Noisy(Task):
    token: SecretStr = SecretStr("hunter2")

    def run(self):
        print("<script>alert('x')</script> & <b>bold</b>")
"""


def test_escaping_secrets_and_the_yaml_extension(fmtester, tmp_path):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "config: {extension_packages: [flowmancer_contrib]}\ntasks:\n  n: {task: Noisy}\n"
        "extensions:\n  report: {extension: RunReport, parameters: {html: out/report.html, json_path: out/r.json}}\n"
    )
    result = fmtester.run()  # out/ does not exist: it is made
    assert result.ret == 0, result.stderr
    page = fmtester.path / "out" / "report.html"
    dom, _ = render(page, tmp_path)
    assert "<script>" not in page.read_text() and "&lt;script&gt;alert" in dom
    assert "hunter2" not in page.read_text() and "**********" in page.read_text()
    assert json.loads((fmtester.path / "out" / "r.json").read_text())["tasks"][0]["state"] == "COMPLETED"


def test_report_for_200_tasks(fmtester, tmp_path):
    fmtester.make_tasks(TASKS)
    body = "".join(
        f"  t{i}: {{task: Noisy{', dependencies: [t' + str(i - 20) + ']' if i >= 20 else ''}}}\n" for i in range(200)
    )
    fmtester.make_jobdef("config: {max_concurrency: 8}\ntasks:\n" + body)
    assert fmtester.run("-p", "flowmancer_contrib.report", "--report", "big.html").ret == 0
    page = fmtester.path / "big.html"
    assert page.stat().st_size < 1_000_000
    dom, took = render(page, tmp_path)
    assert dom.count('<rect class="bar') == 200
    assert took < 2.0


def test_an_unwritable_report_is_a_warning_not_a_failure(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.makefile("blocker", "a file where the report's folder should be")
    fmtester.make_jobdef(
        "config: {extension_packages: [flowmancer_contrib]}\ntasks:\n  n: {task: Noisy}\n"
        "extensions:\n  report: {extension: RunReport, parameters: {html: blocker/report.html}}\n"
    )
    result = fmtester.run()
    assert result.ret == 0, result.stderr
    assert "WARNING: the run report could not be written to" in result.stderr
    assert not list((fmtester.path / ".flowmancer").glob("*.jsonl"))  # a completed run leaves no checkpoint


def test_report_options_need_no_dash_p_and_can_be_blocked(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  n: {task: Noisy}\n")
    result = fmtester.run_subprocess("--report", "reports/last.html")  # the plugin comes from our entry points
    assert result.ret == 0, result.stderr
    assert (fmtester.path / "reports" / "last.html").is_file()
    blocked = fmtester.run_subprocess("-p", "no:report", "--report", "x.html")
    assert blocked.ret == 2 and "unrecognized arguments: --report" in blocked.stderr
