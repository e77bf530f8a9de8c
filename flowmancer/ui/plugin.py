"""Built-in plugin ``ui``: ``--ui [HOST:]PORT`` (or ``config.ui``) serves a live view of the run in the browser.

Off, it costs an option and one check at job start: the reporter that sends the run's events
(``reporter``) is imported and registered only for a run with the view. The server is a helper process
(``server``); with ``--watch`` the watcher starts it once and every rerun feeds it, so one page shows them all.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Optional, Union

from ..errors import UsageError
from ..markers import hookimpl
from ..stash import StashKey

if TYPE_CHECKING:  # every run loads this plugin: what only a run with the view needs is imported then
    from ..config import Config
    from ..job import Job
    from ..jobdef.models import ConfigSchema

#: set for a ``--watch`` rerun: the watcher's server (its feed socket, and the page's URL)
FEED_ENV = "FLOWMANCER_UI_FEED"
URL_ENV = "FLOWMANCER_UI_URL"
DEFAULT = "127.0.0.1:0"
#: the addresses that are this machine only: no token needed there
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ADDRESS = r"^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):)?(\d{1,5})$"  # compiled on first use
URL = StashKey[str]()
HELPER = StashKey[Any]()


def address(where: Union[str, int, bool]) -> tuple[str, int]:
    """``8000``, ``:8000``, ``0.0.0.0:8000``, ``[::1]:0`` (0: a free port) -> (host, port); loopback unless named."""
    if where is True:
        where = DEFAULT
    m = re.match(_ADDRESS, str(where).strip())
    if where is False or m is None or int(m.group(2)) > 65535:
        raise ValueError(f"{where!r} is not [HOST:]PORT (e.g. 8000, 0.0.0.0:8000, [::1]:0; port 0 picks a free one)")
    return (m.group(1) or "127.0.0.1").strip("[]"), int(m.group(2))


def _checked(where: Union[str, int, bool]) -> Union[str, int, bool]:
    if where is not False:
        address(where)
    return where


def _option(text: str) -> str:
    try:
        address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("live view (plugin ui)")
    g.add_argument(
        "--ui",
        nargs="?",
        const=DEFAULT,
        type=_option,
        metavar="[HOST:]PORT",
        help="serve a live view of the run in the browser while it runs (default 127.0.0.1 and a free port; the "
        "URL is printed in the header; beyond loopback it carries a token every request needs)",
    )
    g.add_argument(
        "--ui-linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep serving the live view this long after the run ends (Ctrl-C ends it sooner)",
    )


@hookimpl
def flowmancer_addconfig(schema: ConfigSchema) -> None:
    from pydantic import AfterValidator

    schema.add(
        "ui",
        Optional[Annotated[Union[bool, int, str], AfterValidator(_checked)]],
        None,
        help="serve the live view as --ui does: [HOST:]PORT, or true for 127.0.0.1 and a free port",
    )


def requested(config: Config, job: Optional[Job] = None) -> Optional[tuple[str, int]]:
    """Where to serve the view: ``--ui`` first, then ``config.ui`` (``None``: no view)."""
    where: Any = config.getoption("ui")
    if where is None and job is not None:
        where = getattr(job.jobdef.model.config, "ui", None)
    if where is None or where is False:
        return None
    try:
        return address(where)
    except ValueError as exc:
        raise UsageError(f"--ui: {exc}") from None


@hookimpl
def flowmancer_configure(config: Config) -> None:
    """``--watch``: the watcher serves one page for every rerun (each a new process that feeds it)."""
    if not config.getoption("watch") or os.environ.get(FEED_ENV):
        return
    where = requested(config)
    if where is None and config.getoption("ui") is None and config.jobdef_path is not None:
        from ..errors import FlowmancerError
        from ..jobdef import read_jobdef

        try:
            ui = getattr(read_jobdef(config).model.config, "ui", None)
            where = address(ui) if ui not in (None, False) else None
        except (FlowmancerError, ValueError):
            pass  # each rerun reports it
    if where is None:
        return
    from .reporter import Helper

    helper = config.stash[HELPER] = Helper(*where, feed=True)
    os.environ[FEED_ENV], os.environ[URL_ENV] = helper.feed_path, helper.url
    print(f"live view: {helper.url}", flush=True)


@hookimpl
def flowmancer_unconfigure(config: Config) -> None:
    helper = config.stash.get(HELPER, None)
    if helper is not None:
        helper.close()


@hookimpl(tryfirst=True)
def flowmancer_job_start(job: Job) -> None:
    config = job.config
    feed = os.environ.get(FEED_ENV)
    where = None if feed else requested(config, job)
    if where is None and not feed:
        return
    from .reporter import UiReporter

    reporter = UiReporter(job, where, feed, config.getoption("ui_linger") or 0.0)
    config.stash[URL] = reporter.url
    config.pluginmanager.register(reporter, "ui-reporter")


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> Optional[list[str]]:
    url = config.stash.get(URL, None)
    return [f"live view: {url}"] if url else None
