"""``Config``: the parsed options, the app root and the plugin manager of one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .job import Job
    from .pluginmanager import FlowmancerPluginManager


def _pyproject_has_section(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return "flowmancer" in tomllib.loads(text).get("tool", {})
        except tomllib.TOMLDecodeError:
            return False
    return "[tool.flowmancer]" in text


def find_rootdir(jobfile: Path) -> Path:
    """Like pytest's rootdir: the nearest folder at or above the job file that holds ``tasks/`` or a
    ``pyproject.toml`` with ``[tool.flowmancer]``; failing that, the outermost one holding a
    ``flowmancerconf.py`` (so nested conf files layer); failing that, the job file's folder."""
    start = jobfile.resolve().parent
    outermost_conf = None
    for d in (start, *start.parents):
        if (d / "tasks").is_dir():
            return d
        if (d / "pyproject.toml").is_file() and _pyproject_has_section(d / "pyproject.toml"):
            return d
        if (d / "flowmancerconf.py").is_file():
            outermost_conf = d
    return outermost_conf or start


class Config:
    """Handed to every ``flowmancer_*`` initialisation hook; ``config.hook`` calls hooks."""

    def __init__(
        self,
        pluginmanager: FlowmancerPluginManager,
        option: argparse.Namespace,
        rootdir: Path,
        jobdef_path: Optional[Path],
        variables: dict[str, str],
        invocation_dir: Path,
    ) -> None:
        self.pluginmanager = pluginmanager
        self.option = option
        self.rootdir = rootdir
        self.jobdef_path = jobdef_path
        self.variables = variables
        self.invocation_dir = invocation_dir
        self.stash: dict[str, Any] = {}
        self.job: Optional[Job] = None

    @property
    def hook(self) -> Any:
        return self.pluginmanager.hook

    def getoption(self, name: str, default: Any = None) -> Any:
        return getattr(self.option, name, default)
