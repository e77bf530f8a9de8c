"""The live view (--ui): a real run, its server process, real HTTP clients and headless Chromium on the page."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM, Browser, states
from tasklib import pid_alive, processes_with, start_job, wait_files

TASKS = """
import os, time
from pydantic import SecretStr
from flowmancer.task import Task, task

@task
class Nap(Task):
    seconds: float = 0.5
    password: SecretStr = SecretStr("hunter2-do-not-show")

    def run(self):
        print(f"<b>napping</b> {self.seconds}")
        open(f"started-{self.task_info.name}", "w").write("x")
        time.sleep(self.seconds)

@task
class Held(Nap):
    def run(self):
        super().run()
        print("halfway")
        deadline = time.time() + 60
        while not os.path.exists(f"release-{self.task_info.name}") and time.time() < deadline:
            time.sleep(0.02)

@task
class Chatty(Task):
    lines: int = 1000

    def run(self):
        for i in range(self.lines):
            print(f"line {i} " + "x" * 100)
"""


def url_of(proc) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"live view: (http://\S+)", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no live view URL in the header; stderr: {proc.stderr.read()}")


def end_linger(proc) -> str:
    """Wait for the run's end (it lingers), then Ctrl-C: what it printed after its URL."""
    out = []
    for line in proc.stdout:
        out.append(line)
        if "open for 30 s more" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=20)
    return "".join(out) + rest


def events_until_end(url: str) -> list[dict[str, Any]]:
    """Every event to the run's end, reconnecting as a browser does (a client that falls too far behind is
    dropped; it resumes from the last event it got)."""
    events: list[dict[str, Any]] = []
    for _ in range(50):
        since = events[-1]["seq"] if events else 0
        try:
            with urllib.request.urlopen(f"{url}api/events?since={since}", timeout=30) as stream:
                for raw in stream:
                    if raw.startswith(b"data: "):
                        events.append(json.loads(raw[6:]))
                        if events[-1]["type"] == "end":
                            return events
        except ConnectionResetError:
            pass
    raise AssertionError(f"never saw the end of the run ({len(events)} events)")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (apt-get install chromium)")
def test_the_page_shows_running_then_completed_without_a_reload(fmtester, tmp_path):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n"
        "  first: {task: Nap, parameters: {seconds: 0.2}}\n"
        "  slow-a: {task: Held, dependencies: [first], parameters: {seconds: 2.5}}\n"
        "  slow-b: {task: Held, dependencies: [first], parameters: {seconds: 2.5}}\n"
        "  last: {task: Nap, dependencies: [slow-a, slow-b], parameters: {seconds: 0.2}}\n"
    )
    proc = start_job(fmtester, "--ui", "--ui-linger", "30")
    url = url_of(proc)
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(url)
        browser.wait_for("document.body.dataset.status === 'running'", what="the run")
        browser.js("window.notReloaded = true")
        browser.wait_for(
            "['slow-a', 'slow-b'].every(n => document.querySelector(`#graph g.node[data-task='${n}']`)"
            "?.dataset.state === 'RUNNING')",
            what="both slow tasks running",
        )
        shown = states(browser)
        assert shown["slow-a"] == shown["slow-b"] == "RUNNING" and shown["first"] == "COMPLETED"
        assert shown["last"] == "INIT"
        browser.js("document.querySelector(`#graph g.node[data-task='slow-a']`).dispatchEvent(new MouseEvent('click'))")
        browser.wait_for(
            "document.getElementById('log').textContent.includes('<b>napping</b> 2.5')", what="slow-a's output"
        )
        assert browser.js("document.querySelectorAll('#log b').length") == 0  # text, never markup
        browser.wait_for("document.getElementById('log').textContent.includes('halfway')", what="a later line")
        assert states(browser)["slow-a"] == "RUNNING"  # each line shows as it is written, not at the task's end
        params = browser.js("document.getElementById('params').textContent")
        assert '"seconds": 2.5' in params and "**********" in params and "hunter2" not in params
        assert browser.js("document.querySelectorAll('#timeline rect.bar.s-RUNNING').length") == 2
        browser.screenshot(Path(os.environ.get("UI_SHOTS", tmp_path)) / "running.png")
        for name in ("slow-a", "slow-b"):
            (fmtester.path / f"release-{name}").write_text("x")
        browser.wait_for("document.body.dataset.status === 'ended'", timeout=30, what="the end of the run")
        assert browser.js("window.notReloaded") is True  # the same page, updated by its events
        assert set(states(browser).values()) == {"COMPLETED"}
        assert browser.js("document.getElementById('status').textContent") == "ended · exit code 0"
        bars = browser.js("[...document.querySelectorAll('#timeline rect.bar')].map(b => b.dataset.task)")
        assert sorted(bars) == ["first", "last", "slow-a", "slow-b"]
        assert browser.screenshot(tmp_path / "ended.png").stat().st_size > 10_000
    finally:
        browser.close()
        end_linger(proc)
    assert proc.returncode == 0


def test_an_event_stream_sees_every_transition_in_order_and_the_state_matches_the_summary(fmtester):
    fmtester.make_tasks(TASKS + "\n@task\nclass Boom(Task):\n    def run(self):\n        raise ValueError('no')\n")
    fmtester.make_jobdef(
        "tasks:\n"
        "  a: {task: Nap}\n"
        "  b: {task: Nap, dependencies: [a]}\n"
        "  bad: {task: Boom, dependencies: [a], max_attempts: 2}\n"
        "  never: {task: Nap, dependencies: [bad]}\n"
    )
    proc = start_job(fmtester, "--ui", "--ui-linger", "30")
    url = url_of(proc)
    wait_files(fmtester, "started-a")  # a late client: it gets what came before, in order
    events = events_until_end(url)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # none missed, none twice
    states_of: dict[str, list[str]] = {}
    for e in events:
        if e["type"] == "state":
            states_of.setdefault(e["task"], []).append(e["state"])
    assert states_of["a"] == states_of["b"] == ["PENDING", "RUNNING", "COMPLETED"]
    assert states_of["bad"] == ["PENDING", "RUNNING", "PENDING", "RUNNING", "FAILED"]
    assert states_of["never"] == ["DEFAULTED"]  # blocked by a failure
    order = [(e["task"], e["state"]) for e in events if e["type"] == "state"]
    assert order.index(("a", "COMPLETED")) < order.index(("b", "RUNNING"))
    logs = [ln for e in events if e["type"] == "log" and e["task"] == "a" for ln in e["lines"]]
    assert "<b>napping</b> 0.5" in logs
    snap = get_json(url + "api/state")
    out = end_linger(proc)
    assert proc.returncode == 1
    summary = re.search(r"=== (.*) in [\d.]+s ===", out)
    assert summary, out
    told = dict((state.upper(), int(n)) for n, state in re.findall(r"(\d+) (\w+)", summary.group(1)))
    assert snap["counts"] == told == {"COMPLETED": 2, "FAILED": 1, "DEFAULTED": 1}
    assert snap["job"]["exitcode"] == 1 and snap["job"]["summary"] == told
    tasks = {t["name"]: t for t in snap["tasks"]}
    assert [a["state"] for a in tasks["bad"]["attempts"]] == ["FAILED", "FAILED"]
    assert tasks["bad"]["attempts"][0]["error"] == "run() raised ValueError: no"
    assert tasks["a"]["parameters"] == {"seconds": 0.5, "password": "**********"}


def test_beyond_loopback_every_request_needs_the_token_and_nothing_changes_anything(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    proc = start_job(fmtester, "--ui", "0.0.0.0:0", "--ui-linger", "30")
    url = url_of(proc)
    base, token = url.split("?token=")
    port = int(base.rsplit(":", 1)[1].strip("/"))
    for path in ("", "api/state", "api/events", "page.js"):
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=10)
        assert denied.value.code == 403
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state?token=x{token}", timeout=10)
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=10).read().decode()
    assert f'src="page.js?token={token}"' in page
    assert get_json(f"http://127.0.0.1:{port}/api/state?token={token}")["job"]["name"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/api/state?token={token}", body=b"{}")
    assert conn.getresponse().status == 501  # read-only: GET and HEAD
    end_linger(proc)


def test_on_loopback_a_page_from_another_name_is_refused(fmtester):
    """A DNS-rebinding page (evil.example resolving to 127.0.0.1) sends its own name as Host."""
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    proc = start_job(fmtester, "--ui", "--ui-linger", "30")
    url = url_of(proc)
    assert "token" not in url and url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/state", headers={"Host": f"evil.example:{port}"})
    assert conn.getresponse().status == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/state", headers={"Host": host})
        assert conn.getresponse().status == 200
    end_linger(proc)


def test_config_ui_and_its_errors(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("config:\n  ui: true\ntasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    result = fmtester.run("-j", "job.yaml")
    assert result.ret == 0 and re.search(r"live view: http://127\.0\.0\.1:\d+/", result.stdout)
    fmtester.make_jobdef("config:\n  ui: 'banana:'\ntasks:\n  a: {task: Nap}\n")
    result = fmtester.run("-j", "job.yaml")
    assert result.ret == 3 and "job.yaml:2" in result.stderr and "is not [HOST:]PORT" in result.stderr
    result = fmtester.run("-j", "job.yaml", "--ui", "99999")
    assert result.ret == 2 and "is not [HOST:]PORT" in result.stderr
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    for looking in ("-n", "--list"):  # nothing runs: nothing to serve
        result = fmtester.run("-j", "job.yaml", "--ui", looking)
        assert result.ret == 0 and "live view" not in result.stdout


def test_a_port_in_use_is_a_clear_error_before_any_task_runs(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = fmtester.run("-j", "job.yaml", "--ui", str(port))
    assert result.ret == 2, result.stderr
    assert f"--ui 127.0.0.1:{port}: cannot serve the live view there" in result.stderr
    assert "Traceback" not in result.stderr and not (fmtester.path / "started-a").exists()


def test_blocked_with_no_ui(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n")
    result = fmtester.run("-j", "job.yaml", "-p", "no:ui", "--ui")
    assert result.ret == 2 and "unrecognized arguments: --ui" in result.stderr
    result = fmtester.run("-j", "job.yaml", "-p", "no:ui")
    assert result.ret == 0 and "live view" not in result.stdout


def test_the_server_goes_with_a_killed_runner(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap, parameters: {seconds: 30}}\n")
    os.environ["UI_TEST_RUN"] = marker = f"UI_TEST_RUN={time.time()}"
    try:
        proc = start_job(fmtester, "--ui")
    finally:
        del os.environ["UI_TEST_RUN"]
    url = url_of(proc)
    wait_files(fmtester, "started-a")
    server = [p for p in processes_with(marker) if b"flowmancer.ui.server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(server) == 1
    assert get_json(url + "api/state")["tasks"][0]["state"] == "RUNNING"
    os.killpg(proc.pid, signal.SIGKILL)  # the OOM killer: runner, task (its group) and not the server (its own)
    proc.communicate(timeout=20)
    deadline = time.time() + 10
    while any(pid_alive(p) for p in server):
        assert time.time() < deadline, "the live view's server outlived its runner"
        time.sleep(0.05)
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "api/state", timeout=5)


def test_a_client_that_never_reads_does_not_stall_the_run(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n" + "".join(f"  c{i}: {{task: Chatty, parameters: {{lines: 20000}}}}\n" for i in range(10))
    )
    proc = start_job(fmtester, "--ui", "--ui-linger", "30")
    url = url_of(proc)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    stuck = socket.create_connection(("127.0.0.1", port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    reader = urllib.request.urlopen(url + "api/state", timeout=10)
    reader.close()
    events = events_until_end(url)  # a client that reads sees the end while the stuck one holds its socket
    assert events[-1]["exitcode"] == 0 and events[-1]["summary"] == {"COMPLETED": 10}
    assert any(e["type"] == "log" and "line 19999 " + "x" * 100 in e["lines"] for e in events)
    end_linger(proc)
    assert proc.returncode == 0
    stuck.close()


def test_watch_keeps_one_page_across_reruns(fmtester, tmp_path):
    from test_watch import Watcher

    fmtester.make_tasks(TASKS)
    job = "tasks:\n  a: {task: Nap, parameters: {seconds: 0.1}}\n  b: {task: Nap, parameters: {seconds: %s}}\n"
    fmtester.make_jobdef(job % "0.2")
    w = Watcher(fmtester.path, "-j", "job.yaml", "--ui")
    browser = Browser(tmp_path / "profile") if CHROMIUM else None
    try:
        w.wait_for(lambda t: "=== 2 completed" in t)
        url = re.search(r"live view: (http://\S+)", w.text).group(1)  # type: ignore[union-attr]
        assert w.text.count(f"live view: {url}") == 2  # the watcher's line, and the run's header
        first = get_json(url + "api/state")
        assert first["job"]["run"] == 1 and first["counts"] == {"COMPLETED": 2}
        if browser:
            browser.open(url)
            browser.wait_for("document.body.dataset.status === 'ended'", what="run 1's end")
            browser.js("window.notReloaded = true")
        time.sleep(0.3)
        fmtester.make_jobdef(job % "0.3")  # b's parameter: only b reruns
        w.wait_for(lambda t: "1 completed, 1 up to date" in t)
        snap = get_json(url + "api/state")
        assert snap["job"]["run"] == 2 and snap["job"]["changed"] == ["job.yaml"] and snap["job"]["exitcode"] == 0
        tasks = {t["name"]: t for t in snap["tasks"]}
        assert tasks["a"]["attempts"][-1]["up_to_date"] and not tasks["b"]["attempts"][-1]["up_to_date"]
        assert snap["up_to_date"] == 1
        events = events_since(url, first["seq"])
        assert events[0]["type"] == "job" and events[0]["rerun"] is True
        assert [e["task"] for e in events if e["type"] == "state" and e["state"] == "RUNNING"] == ["b"]
        if browser:
            banner = browser.wait_for(
                "document.getElementById('banner').textContent.includes('reran') && "
                "document.getElementById('banner').textContent",
                what="run 2's banner",
            )
            assert "run 2" in banner and "changed: job.yaml" in banner and "reran b · 1 up to date" in banner
            assert browser.js("window.notReloaded") is True
            browser.screenshot(Path(os.environ.get("UI_SHOTS", tmp_path)) / "rerun.png")
    finally:
        if browser:
            browser.close()
        w.stop()
    with pytest.raises(OSError):  # the watcher's end is its page's
        urllib.request.urlopen(url + "api/state", timeout=5)


def events_since(url: str, since: int) -> list[dict[str, Any]]:
    """The events after ``since`` up to the last one so far (``/api/state``'s seq)."""
    last = get_json(url + "api/state")["seq"]
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(f"{url}api/events?since={since}", timeout=30) as stream:
        for raw in stream:
            if raw.startswith(b"data: "):
                events.append(json.loads(raw[6:]))
                if events[-1]["seq"] == last:
                    return events
    raise AssertionError(f"the stream ended early: {events[-3:]}")


def test_a_stopped_server_never_blocks_the_run_and_catches_up_after(fmtester):
    """The server process frozen (SIGSTOP) under a flood of output: the run ends at its pace; resumed, the
    server gets the whole state again (events were dropped) with the end."""
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef(
        "tasks:\n" + "".join(f"  c{i}: {{task: Chatty, parameters: {{lines: 30000}}}}\n" for i in range(20))
    )
    os.environ["UI_TEST_RUN"] = marker = f"UI_TEST_RUN={time.time()}"
    try:
        proc = start_job(fmtester, "--ui", "--ui-linger", "30")
    finally:
        del os.environ["UI_TEST_RUN"]
    url = url_of(proc)
    server = [p for p in processes_with(marker) if b"flowmancer.ui.server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(server[0], signal.SIGSTOP)
    try:
        out = []
        for line in proc.stdout:  # the run goes on, and ends, with its server frozen
            out.append(line)
            if "open for 30 s more" in line:
                break
        assert any("=== 20 completed" in ln for ln in out), out[-5:]
    finally:
        os.kill(server[0], signal.SIGCONT)
    events = events_until_end(url)  # it catches up: the rest of what waited, then the whole state, the end
    assert any(e["type"] == "job" and e["resync"] for e in events)  # what was dropped came back as a whole
    snap = get_json(url + "api/state")
    assert snap["counts"] == {"COMPLETED": 20} and snap["job"]["exitcode"] == 0
    assert snap["job"]["summary"] == {"COMPLETED": 20}
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 0
