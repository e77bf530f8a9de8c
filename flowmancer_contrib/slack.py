"""Slack notifications through an incoming webhook.

YAML: ``extensions: {slack: {extension: SlackWebhookNotification, parameters: {webhook: URL}}}``
(with ``flowmancer_contrib`` in ``config.extension_packages``), or as a plugin:
``flowmancer -p flowmancer_contrib.slack --slack-webhook URL -j job.yaml``.
"""

from __future__ import annotations

import argparse
import json

from flowmancer import hookimpl
from flowmancer.config import Config
from flowmancer.extensions import extension
from flowmancer.jobdef import LoadedJobDef

from .notify import Notification, add_extension, http_post


@extension
class SlackWebhookNotification(Notification):
    webhook: str

    def send_notification(self, title: str, msg: str) -> None:
        body = json.dumps({"text": title, "attachments": [{"text": msg}]}).encode()
        http_post(self.webhook, body, {"Content-Type": "application/json"}, self.timeout)


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument_group("slack").add_argument(
        "--slack-webhook", metavar="URL", help="post job start/end notifications to this Slack webhook"
    )


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> None:
    url = config.getoption("slack_webhook")
    if url:
        add_extension(config, "slack (--slack-webhook)", SlackWebhookNotification(webhook=url))
