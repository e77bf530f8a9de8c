"""The ``flowmancer`` command (and the option parsing behind ``Flowmancer().start()``)."""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from . import signalwatch, stdio
from .config import Config, find_rootdir, read_settings
from .errors import FlowmancerError, UsageError
from .exitcode import ExitCode
from .hookrelay import answer
from .jobdef.load import collector_paused, thaw
from .pluginmanager import FlowmancerPluginManager, preparse_plugin_args

EPILOG = """\
exit codes:
  0    every task completed (or was skipped)
  1    at least one task failed, was defaulted or aborted
  2    usage error (bad option, missing -j)
  3    job definition error: nothing ran
  4    internal error
  5    another run of this job is running (its lock is held): nothing ran
  6    the checkpoint cannot be read (damaged) or written (disk full, permissions)
  7    the selection (-k, -m, --only, --skip, --run-from/--run-to) left no task: nothing ran
  129  hangup (SIGHUP); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM)

new project: flowmancer init [DIR] writes a starter (tasks/, job.yaml, main.py, a test) that runs as written
docs: flowmancer --docs [TOPIC] (installed with this version, e.g. --docs "job definition"), or
      https://github.com/natsunlee/flowmancer#readme
completion: eval "$(flowmancer --completion bash)" in ~/.bashrc (zsh, fish: see --docs completion)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}\n  try '{self.prog} --help'")


def build_parser(prog: str) -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog=prog,
        description="Run a Flowmancer job: tasks in parallel processes, in dependency order.",
        epilog=EPILOG,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-j",
        "--jobdef",
        metavar="PATH",
        help="the job definition YAML file (default: job.yaml, job.yml, flowmancer.yaml or flowmancer.yml in the "
        "current folder, the first found)",
    )
    p.add_argument(
        "-r",
        "--restart",
        "--lf",
        action="store_true",
        help="resume from the last failure of this job (its checkpoint); a normal run if there is none",
    )
    p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set $VAR{KEY} in the job definition (repeatable)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="app root: where ./tasks, relative paths and includes are resolved (default: see README)",
    )
    p.add_argument(
        "-p",
        dest="plugin_specs",
        action="append",
        default=[],
        metavar="NAME",
        help="load plugin NAME (module or entry point); -p no:NAME blocks one",
    )
    p.add_argument(
        "--disable-plugin-autoload",
        action="store_true",
        help="do not load the plugins of installed packages (the `flowmancer` entry points)",
    )
    p.add_argument(
        "-d", "--debug", action="store_true", help="debug mode: also print the traceback behind an error message"
    )
    p.add_argument("-t", "--type", dest="jobdef_type", default="yaml", choices=("yaml",), help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"flowmancer {__version__}")
    return p


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out


#: the job files ``flowmancer`` looks for in the current folder when no ``-j`` is given (as go-task its Taskfile)
DEFAULT_JOBDEFS = ("job.yaml", "job.yml", "flowmancer.yaml", "flowmancer.yml")


def found_here(cwd: Path) -> Optional[str]:
    """The job file ``flowmancer`` uses in ``cwd`` when no ``-j`` is given (``None``: there is none)."""
    for name in DEFAULT_JOBDEFS:
        if (cwd / name).is_file():
            return name
    return None


def _locate(
    argv: Sequence[str], default_root: Optional[Path], default_jobdef: Optional[str]
) -> tuple[Optional[Path], Path]:
    """The job file and the app root, from ``-j`` and ``--root`` alone (before plugins are loaded)."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("-j", "--jobdef")
    pre.add_argument("--root")
    early, _ = pre.parse_known_args(list(argv))
    cwd = Path.cwd()
    jobdef = early.jobdef or default_jobdef or found_here(cwd)
    jobdef_path: Optional[Path] = None
    if jobdef:
        base = cwd if early.jobdef else (default_root or cwd)
        jobdef_path = (base / os.path.expanduser(jobdef)).resolve()
    if early.root:
        rootdir = (cwd / early.root).resolve()
    elif default_root is not None:
        rootdir = default_root
    elif jobdef_path is not None:
        rootdir = find_rootdir(jobdef_path)
    else:
        rootdir = cwd
    return jobdef_path, rootdir


def _setup(
    argv: Sequence[str],
    prog: str,
    default_root: Optional[Path],
    default_jobdef: Optional[str],
    extra_vars: Optional[dict[str, str]],
    plugins: Sequence[object] = (),
) -> Config:
    env_addopts = shlex.split(os.environ.get("FLOWMANCER_ADDOPTS", ""))
    jobdef_path, rootdir = _locate([*env_addopts, *argv], default_root, default_jobdef)
    settings = read_settings(rootdir)
    argv = [*settings.addopts, *env_addopts, *argv]  # later wins: CLI > FLOWMANCER_ADDOPTS > pyproject
    pm = FlowmancerPluginManager()
    to_load = pm.consider_preparse([*settings.plugins, *pm.load_env_plugins(), *preparse_plugin_args(argv)])
    pm.load_builtins()
    for i, plugin in enumerate(plugins):
        pm.register(plugin, f"<passed plugin {i}>")
        pm.origins[f"<passed plugin {i}>"] = "passed to run()"
    parser = build_parser(prog)
    pm.hook.flowmancer_addoption.call_historic(kwargs={"parser": parser})
    if str(rootdir) not in sys.path:
        sys.path.insert(0, str(rootdir))
    if not ("--disable-plugin-autoload" in argv or os.environ.get("FLOWMANCER_DISABLE_PLUGIN_AUTOLOAD")):
        pm.load_entry_points()
    for name in to_load:
        pm.import_plugin(name)
    pm.load_conftests(rootdir, jobdef_path.parent if jobdef_path else None)
    pm.validate()
    pm.hook.flowmancer_parser_ready(parser=parser, pluginmanager=pm)
    option = parser.parse_args(list(argv))
    variables = {**(extra_vars or {}), **parse_vars(option.var)}
    config = Config(pm, option, rootdir, jobdef_path, variables, Path.cwd())
    config.argv = list(argv)
    config.settings = settings
    settings.env_addopts = env_addopts
    return config


def unsupported_platform() -> Optional[str]:
    """Why this system cannot run Flowmancer (``None``: it can). Tasks are POSIX processes in process groups,
    watched through pipes; Linux is tested (macOS uses the spawn start method, untested); Windows has neither."""
    if sys.platform.startswith("win") or os.name != "posix":
        return (
            f"Flowmancer needs a POSIX system (Linux; macOS untested), not {sys.platform}: tasks run as processes "
            "in their own process groups, watched through pipes. On Windows, use WSL"
        )
    return None


def run(
    argv: Optional[Sequence[str]] = None,
    *,
    prog: str = "flowmancer",
    default_root: Optional[Path] = None,
    default_jobdef: Optional[str] = None,
    extra_vars: Optional[dict[str, str]] = None,
    raise_errors: bool = False,
    plugins: Sequence[object] = (),
    raise_interrupt: bool = False,
) -> tuple[int, Optional[Config]]:
    """Run one job from command-line arguments; return (exit code, config). A Ctrl-C outside the scheduler
    (which turns it into an orderly abort) returns 130, or raises ``KeyboardInterrupt`` with ``raise_interrupt``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["init"] and prog == "flowmancer":  # flowmancer init [DIR]: a starter project
        from .scaffold import init

        return init(argv[1:]), None
    why = unsupported_platform()
    if why is not None:
        print(f"ERROR: {why}", file=sys.stderr)
        return int(ExitCode.USAGE_ERROR), None
    saved = stdio.guard()  # a reader that goes away (| head) or a closed terminal never ends the run
    early = signalwatch.catch_early()
    try:
        return _run(argv, prog, default_root, default_jobdef, extra_vars, raise_errors, plugins, raise_interrupt)
    finally:
        thaw()  # what start-up froze, if no fork gave it back (see collector_paused)
        signalwatch.release_early(early)
        stdio.restore(saved)


def _run(
    argv: list[str],
    prog: str,
    default_root: Optional[Path],
    default_jobdef: Optional[str],
    extra_vars: Optional[dict[str, str]],
    raise_errors: bool,
    plugins: Sequence[object],
    raise_interrupt: bool = False,
) -> tuple[int, Optional[Config]]:
    config: Optional[Config] = None
    try:
        with collector_paused(freeze=True):  # the plugins' imports: as the job's loading
            config = _setup(argv, prog, default_root, default_jobdef, extra_vars, plugins)
    except FlowmancerError as exc:
        if raise_errors:
            raise
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(exc.exit_code), None
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0), None
    except KeyboardInterrupt:  # Ctrl-C while starting: nothing ran
        if raise_interrupt:
            raise
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED), None
    except Exception:
        if raise_errors:
            raise
        print("INTERNAL ERROR: flowmancer or a plugin crashed while starting; please report this:", file=sys.stderr)
        traceback.print_exc()
        return int(ExitCode.INTERNAL_ERROR), None
    try:
        config.hook.flowmancer_configure.call_historic(kwargs={"config": config})
        try:
            code = config.hook.flowmancer_cmdline_main(config=config)
        finally:
            config.hook.flowmancer_unconfigure(config=config)
    except FlowmancerError as exc:
        if raise_errors:
            raise
        if config.option.debug:
            traceback.print_exc()
        print(f"ERROR: {exc}", file=sys.stderr)
        return int(exc.exit_code), config
    except KeyboardInterrupt:
        if raise_interrupt:
            raise
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED), config
    except Exception:
        if raise_errors:
            raise
        print(
            "INTERNAL ERROR: flowmancer or a plugin crashed; please report this with the text below.", file=sys.stderr
        )
        traceback.print_exc()
        return int(ExitCode.INTERNAL_ERROR), config
    return int(answer(code, "flowmancer_cmdline_main")), config


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run(argv)[0]


def console_main() -> None:
    """The ``flowmancer`` command (a Ctrl-C outside the scheduler reaches ``__main__``)."""
    code = run(raise_interrupt=True)[0]
    # This process ends now, and the interpreter's last full collections would re-scan every object the
    # run left behind (~35 ms after a small job, more than the job's own work). Frozen, they are skipped.
    # atexit handlers and module teardown still run, so a file a plugin left open is flushed and closed
    # as usual; only cyclic garbage is left to the OS (Python does not promise to finalize it at exit).
    gc.freeze()
    sys.exit(code)
