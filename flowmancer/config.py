"""``Config``: the parsed options, the app root and the plugin manager of one run."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

from .stash import Stash

if TYPE_CHECKING:
    from .hookrelay import HookRelay
    from .job import Job
    from .pluginmanager import FlowmancerPluginManager


@dataclass
class Settings:
    """``[tool.flowmancer]`` of the app root's ``pyproject.toml`` (and ``FLOWMANCER_ADDOPTS``)."""

    path: Optional[Path] = None
    addopts: list[str] = field(default_factory=list)  #: command-line options put before the user's
    plugins: list[str] = field(default_factory=list)  #: like ``-p`` for each
    config: dict[str, Any] = field(default_factory=dict)  #: defaults for every job's ``config:``
    env_addopts: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        where = str(self.path) if self.path else "no pyproject.toml with [tool.flowmancer]"
        out = [f"settings: {where}"]
        if self.addopts:
            out.append(f"  addopts (pyproject): {' '.join(self.addopts)}")
        if self.plugins:
            out.append(f"  plugins (pyproject): {', '.join(self.plugins)}")
        for k, v in self.config.items():
            out.append(f"  config default (pyproject): {k} = {v!r} (a job's YAML overrides it)")
        if self.env_addopts:
            out.append(f"  addopts (FLOWMANCER_ADDOPTS): {' '.join(self.env_addopts)}")
        return out


def _load_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, tomllib.TOMLDecodeError) as exc:
        from .errors import UsageError

        raise UsageError(
            f"{path}: cannot read it as TOML: {exc}; fix it (its [tool.flowmancer] table applies)"
        ) from None


def read_settings(rootdir: Path) -> Settings:
    path = rootdir / "pyproject.toml"
    if not (path.is_file() and _pyproject_has_section(path)):
        return Settings()
    table = dict(_load_toml(path).get("tool", {}).get("flowmancer", {}))
    addopts = table.pop("addopts", [])
    plugins = table.pop("plugins", [])
    return Settings(
        path=path,
        addopts=shlex.split(addopts) if isinstance(addopts, str) else [str(a) for a in addopts],
        plugins=[plugins] if isinstance(plugins, str) else [str(p) for p in plugins],
        config=table,
    )


def _pyproject_has_section(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    import tomllib

    try:
        return "flowmancer" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:  # ours only if it has our table: then reading it says what is wrong, and where
        return "[tool.flowmancer" in text


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
        #: plugin state for the run: typed with ``flowmancer.stash.StashKey``
        self.stash = Stash()
        #: the command-line arguments of the run, as given (``--watch`` reruns with them)
        self.argv: list[str] = []
        self.job: Optional[Job] = None
        self.settings = Settings()

    @property
    def hook(self) -> HookRelay:
        """Calls hooks by name with keyword arguments; typed by ``hookrelay.HookRelay``."""
        return cast("HookRelay", self.pluginmanager.hook)

    def getoption(self, name: str, default: Any = None) -> Any:
        return getattr(self.option, name, default)
