"""Contrib notifiers against real local servers: HTTP on 127.0.0.1 and an aiosmtpd SMTP server."""

from __future__ import annotations

import email
import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest

TASKS = """
from flowmancer.task import Task, task

@task
class Ok(Task):
    def run(self):
        pass

@task
class Bad(Task):
    def run(self):
        raise RuntimeError("bad")
"""


class Recorder(http.server.BaseHTTPRequestHandler):
    received: list = []
    delay = 0.0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).received.append((self.path, self.headers["Content-Type"], body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Recorder.received = []
    Recorder.delay = 0.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.daemon_threads = False  # so that server_close() waits for them
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", Recorder
    srv.shutdown()
    srv.server_close()  # waits for the request threads (a hanging one too): none outlives the test


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def job(extension_yaml: str = "", fail: bool = False) -> str:
    tasks = "  a: {task: Ok}\n  b: {task: Bad, dependencies: [a]}\n" if fail else "  a: {task: Ok}\n"
    return f"config: {{name: notified, extension_packages: [flowmancer_contrib]}}\ntasks:\n{tasks}{extension_yaml}"


def test_slack_from_yaml(project, server):
    url, rec = server
    project.make_jobdef(
        job(
            f"extensions:\n  slack: {{extension: SlackWebhookNotification, parameters: {{webhook: {url}/s}}}}\n",
            fail=True,
        )
    )
    result = project.run()
    assert result.ret == 1, result.stderr
    bodies = [json.loads(b) for _, ct, b in rec.received]
    assert [b["text"] for b in bodies] == [
        "Flowmancer Job Notification: STARTING",
        "Flowmancer Job Notification: FAILURE",
    ]
    assert "Job 'notified' failed at" in bodies[1]["attachments"][0]["text"]
    assert "1 completed, 1 failed; not completed: b" in bodies[1]["attachments"][0]["text"]  # named


def test_slack_as_plugin_with_option(project, server):
    url, rec = server
    project.make_jobdef(job())
    result = project.run("-p", "flowmancer_contrib.slack", "--slack-webhook", f"{url}/p")
    assert result.ret == 0
    assert [json.loads(b)["text"] for _, _, b in rec.received][-1] == "Flowmancer Job Notification: SUCCESS"
    assert all(path == "/p" for path, _, _ in rec.received)


def test_notify_flags(project, server):
    url, rec = server
    params = f"{{webhook: {url}, notify_on_start: false, notify_on_success: false}}"
    project.make_jobdef(job(f"extensions:\n  s: {{extension: SlackWebhookNotification, parameters: {params}}}\n"))
    assert project.run().ret == 0
    assert rec.received == []


def test_webhook_events(project, server):
    url, rec = server
    project.make_jobdef(
        job(f"extensions:\n  hook: {{extension: WebhookNotification, parameters: {{url: {url}/w}}}}\n", fail=True)
    )
    assert project.run().ret == 1
    events = [json.loads(b) for _, ct, b in rec.received]
    assert all(ct == "application/json" for _, ct, _ in rec.received)
    by_kind = {}
    for e in events:
        by_kind.setdefault(e["event"], []).append(e)
        assert e["job"] == "notified" and "time" in e
    assert len(by_kind["job_start"]) == 1
    assert sorted((e["task"], e["state"]) for e in by_kind["task_finish"]) == [("a", "COMPLETED"), ("b", "FAILED")]
    (finish,) = by_kind["job_finish"]
    assert finish["outcome"] == "failure" and finish["counts"] == {"COMPLETED": 1, "FAILED": 1}


def test_webhook_as_plugin(project, server):
    url, rec = server
    project.make_jobdef(job())
    assert project.run("-p", "flowmancer_contrib.webhook", "--webhook-url", url).ret == 0
    assert json.loads(rec.received[-1][2])["outcome"] == "success"


def test_pushover(project, server):
    url, rec = server
    params = f"{{app_token: tok, user_key: usr, api_url: {url}/1/messages.json}}"
    project.make_jobdef(job(f"extensions:\n  push: {{extension: PushoverNotification, parameters: {params}}}\n"))
    assert project.run().ret == 0
    path, ctype, body = rec.received[-1]
    form = dict(urllib.parse.parse_qsl(body))
    assert path == "/1/messages.json" and ctype == "application/x-www-form-urlencoded"
    assert form["token"] == "tok" and form["user"] == "usr" and form["title"] == "Flowmancer Job Notification: SUCCESS"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, handler.messages
    controller.stop()


def test_email(project, smtp):
    port, messages = smtp
    params = (
        f"{{recipient: ops@example.com, smtp_host: 127.0.0.1, smtp_port: {port}, sender_user: fm, "
        "sender_host: example.com}"
    )
    project.make_jobdef(
        job(f"extensions:\n  mail: {{extension: EmailNotification, parameters: {params}}}\n", fail=True)
    )
    assert project.run().ret == 1
    subjects = [m["Subject"] for m in messages]
    assert subjects == ["Flowmancer Job Notification: STARTING", "Flowmancer Job Notification: FAILURE"]
    assert messages[1]["From"] == "fm@example.com" and messages[1]["To"] == "ops@example.com"
    assert "Job 'notified' failed" in messages[1].get_payload()


def test_email_as_plugin(project, smtp):
    port, messages = smtp
    project.make_jobdef(job())
    result = project.run(
        "-p", "flowmancer_contrib.email", "--email-to", "me@example.com", "--smtp", f"127.0.0.1:{port}"
    )
    assert result.ret == 0, result.stderr
    assert messages[-1]["Subject"] == "Flowmancer Job Notification: SUCCESS"


def test_failing_endpoint_is_reported_never_fatal(project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket is closed
    project.make_jobdef(
        job(
            f"extensions:\n  s: {{extension: SlackWebhookNotification, parameters: {{webhook: 'http://127.0.0.1:{closed}/'}}}}\n"
        )
    )
    result = project.run()
    assert result.ret == 0
    assert result.stderr.count("SlackWebhookNotification could not send a notification") == 1
    assert "Connection refused" in result.stderr


def test_hanging_endpoint_times_out(project, server):
    url, rec = server
    rec.delay = 5.0
    params = f"{{webhook: {url}, timeout: 0.5}}"
    project.make_jobdef(job(f"extensions:\n  s: {{extension: SlackWebhookNotification, parameters: {params}}}\n"))
    result = project.run()
    assert result.ret == 0
    assert result.duration < 4
    assert "no answer within 0.5s" in result.stderr or "timed out" in result.stderr
