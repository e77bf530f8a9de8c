"""E-mail notifications with the standard library's ``smtplib``.

YAML: ``extensions: {mail: {extension: EmailNotification, parameters: {recipient: ..., smtp_host: ...,
smtp_port: 25, sender_user: flowmancer, sender_host: example.com}}}``,
or ``-p flowmancer_contrib.email --email-to ADDR --smtp HOST:PORT``.
"""

from __future__ import annotations

import argparse
import smtplib
from email.message import EmailMessage
from typing import Optional

from flowmancer import hookimpl
from flowmancer.config import Config
from flowmancer.errors import Problem
from flowmancer.extensions import extension
from flowmancer.jobdef import LoadedJobDef

from .notify import Notification, add_extension


@extension
class EmailNotification(Notification):
    recipient: str
    smtp_host: str
    smtp_port: int = 25
    sender_user: str = "flowmancer"
    sender_host: str = "localhost"
    starttls: bool = False
    username: Optional[str] = None
    password: Optional[str] = None

    def send_notification(self, title: str, msg: str) -> None:
        em = EmailMessage()
        em["From"] = f"{self.sender_user}@{self.sender_host}"
        em["Subject"] = title
        em["To"] = self.recipient
        em.set_content(msg)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as s:
            if self.starttls:
                s.starttls()
            if self.username:
                s.login(self.username, self.password or "")
            s.send_message(em)


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("email")
    g.add_argument("--email-to", metavar="ADDRESS", help="e-mail job start/end notifications to ADDRESS")
    g.add_argument("--smtp", metavar="HOST:PORT", default="localhost:25", help="SMTP server (default localhost:25)")


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> list[Problem]:
    to = config.getoption("email_to")
    if not to:
        return []
    host, _, port = str(config.getoption("smtp")).rpartition(":")
    if not host or not port.isdigit():
        return [Problem(f"--smtp {config.getoption('smtp')!r}: expected HOST:PORT")]
    add_extension(config, "email (--email-to)", EmailNotification(recipient=to, smtp_host=host, smtp_port=int(port)))
    return []
