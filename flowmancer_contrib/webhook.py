"""A JSON POST for job and task events, for chat bots, dashboards and anything that takes a webhook.

Each POST is one JSON object: ``{"event": "job_start" | "job_finish" | "task_finish", "job": NAME,
"time": ISO, ...}``; ``job_finish`` adds ``"outcome"`` (success, failure, aborted) and ``"counts"``;
``task_finish`` adds ``"task"`` and ``"state"`` (sent when a task reaches one of ``task_states``).

YAML: ``extensions: {hook: {extension: WebhookNotification, parameters: {url: URL}}}``,
or ``-p flowmancer_contrib.webhook --webhook-url URL``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import Counter
from typing import Any

from pydantic import Field, PrivateAttr

from flowmancer import hookimpl
from flowmancer.config import Config
from flowmancer.eventbus.execution import ExecutionStateTransition
from flowmancer.extensions import extension
from flowmancer.jobdef import LoadedJobDef

from .notify import Notification, add_extension, http_post


@extension
class WebhookNotification(Notification):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    task_states: list[str] = Field(default_factory=lambda: ["COMPLETED", "FAILED", "DEFAULTED", "ABORTED"])

    _aborted: bool = PrivateAttr(default=False)

    def send_notification(self, title: str, msg: str) -> None:
        http_post(self.url, msg.encode(), {"Content-Type": "application/json", **self.headers}, self.timeout)

    def _event(self, event: str, **extra: Any) -> None:
        body = {"event": event, "job": self.job_name, "time": dt.datetime.now().astimezone().isoformat(), **extra}
        self.notify(event, json.dumps(body))

    async def update(self, evt: Any) -> None:
        await super().update(evt)
        if isinstance(evt, ExecutionStateTransition) and evt.to_state.value in self.task_states:
            self._event("task_finish", task=evt.name, state=evt.to_state.value)

    def _finish(self, outcome: str) -> None:
        self._event("job_finish", outcome=outcome, counts=dict(Counter(self._states.values())))

    async def on_create(self) -> None:
        if self.notify_on_start:
            self._event("job_start")

    async def on_success(self) -> None:
        if self.notify_on_success:
            self._finish("success")

    async def on_failure(self) -> None:
        if self.notify_on_failure and not self._aborted:
            self._finish("failure")

    async def on_abort(self) -> None:
        self._aborted = True
        if self.notify_on_abort:
            self._finish("aborted")


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument_group("webhook").add_argument(
        "--webhook-url", metavar="URL", help="POST job and task events as JSON to URL"
    )


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> None:
    url = config.getoption("webhook_url")
    if url:
        add_extension(config, "webhook (--webhook-url)", WebhookNotification(url=url))
