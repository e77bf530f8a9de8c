"""Built-in plugin ``watch``: ``--watch`` reruns the job whenever its files change.

Each run is a fresh ``flowmancer`` process (so edited task code is really reloaded), started ahead of its
turn and waiting with flowmancer already imported (``standby``); ``watchfiles.watch`` reports the changes:
a change during a run stops it with SIGINT (tasks get ``on_abort``) and starts the next one.
Reruns are incremental (``--no-incremental``: every task reruns): only the tasks the
change affects run, and the rerun's first line says which (``changed: tasks/helpers.py -> transform``).
Watched: ``.py`` and ``.yaml`` files under the app root (task, logger and extension
modules, ``flowmancerconf.py``, job files), the job file and its includes wherever they are; ignored:
``logs/``, ``.flowmancer/``, caches and editors' temp files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

from .config import Config
from .errors import FlowmancerError
from .exitcode import ExitCode
from .markers import hookimpl

#: changes are grouped until none came for STEP_MS (an editor's save is a few writes within a millisecond or
#: two), for at most DEBOUNCE_MS; a save is seen ~2 steps after it is written (step 25 ms: 37 ms, 10 ms: 15 ms)
DEBOUNCE_MS = 100
STEP_MS = 10


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch",
        action="store_true",
        help="run the job, then rerun the tasks a change affects whenever its YAML, task modules or flowmancerconf.py "
        "change (incremental; --no-incremental reruns all)",
    )


def watched_paths(config: Config) -> list[Path]:
    paths = {config.rootdir.resolve()}
    if config.jobdef_path is not None:
        from .jobdef import read_jobdef

        files = [config.jobdef_path]
        try:
            loaded = read_jobdef(config)
            files = loaded.files or files
            for d in loaded.model.config.extension_directories:
                folder = (config.rootdir / os.path.expanduser(d)).resolve()
                if folder.is_dir():
                    paths.add(folder)
        except FlowmancerError:
            pass  # the run itself reports it; watch what we know
        paths.update(f.resolve().parent for f in files)
    # Drop folders inside other watched folders.
    return sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))


def rerun_args(argv: list[str], incremental: bool = False) -> list[str]:
    """Each rerun: the same command without ``--watch`` (with ``--incremental`` if asked for)."""
    args = [a for a in argv if a != "--watch"]
    if incremental and "--incremental" not in args:
        args.append("--incremental")
    return args


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    if not config.getoption("watch"):
        return None
    import watchfiles

    argv = config.argv
    if config.jobdef_path is not None and not any(a in ("-j", "--jobdef") or a.startswith("--jobdef=") for a in argv):
        argv = ["-j", str(config.jobdef_path), *argv]  # a driver's default job definition
    if "--root" not in argv:
        argv = ["--root", str(config.rootdir), *argv]
    paths = watched_paths(config)
    rootdir = config.rootdir.resolve()
    ignore = [str(rootdir / "logs"), str(rootdir / ".flowmancer")]
    watch_filter = watchfiles.PythonFilter(ignore_paths=ignore, extra_extensions=(".yaml", ".yml"))
    where = ", ".join(str(p) for p in paths)
    print(f"watching {where} (Ctrl-C to stop)", flush=True)

    # Reruns are incremental unless told otherwise (or the plugin is blocked: -p no:incremental).
    incremental = "--no-incremental" not in argv and config.pluginmanager.has_plugin("incremental")

    def on_change(changes: set[tuple[Any, str]]) -> None:
        if incremental:  # the rerun prints the line itself, with the tasks the change affects
            return
        names = sorted({os.path.relpath(p, rootdir) for _, p in changes})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        stamp = time.strftime("%H:%M:%S")
        print(f"\n{'─' * 20} {stamp} changed: {shown}: rerunning {'─' * 20}", flush=True)

    import logging  # here, not at import: every run loads this plugin, few watch

    logging.getLogger("watchfiles").setLevel(logging.ERROR)  # its "process already dead" notes are noise here

    stopped_by: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopped_by.append(signum)
        raise KeyboardInterrupt  # SIGTERM and SIGHUP stop watching as cleanly as Ctrl-C

    from .standby import Standby, stop

    args = rerun_args(argv, incremental)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    proc = None
    standby = Standby()
    try:
        proc, standby = standby.go(args, "[]"), Standby()
        for changes in watchfiles.watch(
            *paths, watch_filter=watch_filter, debounce=DEBOUNCE_MS, step=STEP_MS, raise_interrupt=False
        ):
            on_change(changes)
            stop(proc)
            # what changed, as watchfiles.run_process tells its processes (the rerun's line names them)
            told = json.dumps([[change.raw_str(), path] for change, path in changes])
            proc, standby = standby.go(args, told), Standby()
    except KeyboardInterrupt:  # SIGTERM or SIGHUP outside watchfiles.watch (which stops on its own)
        pass
    finally:
        if proc is not None:
            stop(proc)
        standby.discard()
        for sig, old in previous.items():
            signal.signal(sig, old)
    print("\nwatch stopped", flush=True)
    return int(ExitCode.for_signal(stopped_by[0]) if stopped_by else ExitCode.INTERRUPTED)
