"""Pushover notifications.

YAML: ``extensions: {push: {extension: PushoverNotification, parameters: {app_token: T, user_key: U}}}``,
or ``-p flowmancer_contrib.pushover --pushover-token T --pushover-user U``.
"""

from __future__ import annotations

import argparse
import urllib.parse

from flowmancer import hookimpl
from flowmancer.config import Config
from flowmancer.extensions import extension
from flowmancer.jobdef import LoadedJobDef

from .notify import Notification, add_extension, http_post


@extension
class PushoverNotification(Notification):
    app_token: str
    user_key: str
    api_url: str = "https://api.pushover.net/1/messages.json"

    def send_notification(self, title: str, msg: str) -> None:
        form = {"token": self.app_token, "user": self.user_key, "title": title, "message": msg}
        body = urllib.parse.urlencode(form).encode()
        http_post(self.api_url, body, {"Content-type": "application/x-www-form-urlencoded"}, self.timeout)


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("pushover")
    g.add_argument("--pushover-token", metavar="TOKEN", help="Pushover application token")
    g.add_argument("--pushover-user", metavar="KEY", help="Pushover user key")


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> None:
    token, user = config.getoption("pushover_token"), config.getoption("pushover_user")
    if token and user:
        add_extension(config, "pushover (--pushover-token)", PushoverNotification(app_token=token, user_key=user))
