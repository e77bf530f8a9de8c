"""Plugin ``report`` (autoloaded through the ``flowmancer`` entry points): the ``--report`` and
``--report-json`` options. It imports the report itself (``flowmancer_contrib.report``) only when one is
asked for, so a run without them pays nothing for it; ``-p no:report`` blocks it."""

from __future__ import annotations

import argparse
from typing import Any

from flowmancer import hookimpl
from flowmancer.config import Config


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("run report")
    g.add_argument("--report", metavar="PATH", help="write a self-contained HTML report of the run")
    g.add_argument("--report-json", metavar="PATH", help="write the report's data as JSON")


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: Any) -> None:
    h, j = config.getoption("report"), config.getoption("report_json")
    if h or j:  # paths on the command line are relative to where you are
        from flowmancer.components import register_as_plugin

        from .report import RunReport

        report = RunReport(
            html=str(config.invocation_dir / h) if h else None, json_path=str(config.invocation_dir / j) if j else None
        )
        report._fm_root = config.rootdir
        register_as_plugin(config, report, "report (--report)", "--report / --report-json")
