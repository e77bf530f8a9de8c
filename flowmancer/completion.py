"""Built-in plugin ``completion``: <Tab> completion in bash, zsh and fish, by argcomplete.

``flowmancer --completion SHELL`` prints the script to load in the shell's start-up file. At a <Tab>, the
shell runs ``flowmancer`` with ``_ARGCOMPLETE`` set; ``flowmancer_parser_ready`` then answers from the full
parser (so every plugin's options complete too) and exits before anything runs: task names of the job file
for ``--skip``/``--only``/``--force``/``--run-from``/``--run-to``, its tags for ``-m``, plugin names (and
``no:NAME``) for ``-p``, YAML files for ``-j``. Nothing is imported for it in a normal run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Optional

from .config import Config
from .markers import hookimpl

SHELLS = ("bash", "zsh", "fish")
#: options whose values are task names of the job
TASK_OPTIONS = frozenset({"skip", "only", "force", "run_from", "run_to"})


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--completion",
        choices=SHELLS,
        metavar="SHELL",
        help="print the <Tab> completion script for SHELL (bash, zsh or fish) and exit, e.g. "
        'eval "$(flowmancer --completion bash)" in ~/.bashrc',
    )


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    shell = config.getoption("completion")
    if not shell:
        return None
    from argcomplete.shell_integration import shellcode

    print(shellcode(["flowmancer"], shell=shell), end="")
    return 0


@hookimpl
def flowmancer_parser_ready(parser: argparse.ArgumentParser, pluginmanager: Any) -> None:
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete
    from argcomplete.completers import FilesCompleter

    plugins = _plugin_names(pluginmanager)
    for action in parser._actions:
        if action.dest in TASK_OPTIONS:
            action.completer = _task_names  # type: ignore[attr-defined]
        elif action.dest == "markexpr":
            action.completer = _tags  # type: ignore[attr-defined]
        elif action.dest == "plugin_specs":
            action.completer = lambda **_: plugins  # type: ignore[attr-defined]
        elif action.dest == "jobdef":
            action.completer = FilesCompleter(("yaml", "yml"))  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser)  # prints the completions for the shell and exits


def _plugin_names(pm: Any) -> list[str]:
    from .pluginmanager import BUILTINS

    names = set(BUILTINS) | {n for n, p in pm.list_name_plugin() if p is not None and not n.startswith(("<", "/"))}
    names = {n for n in names if not n.isdigit()}
    return sorted(names) + sorted(f"no:{n}" for n in names)


def _job_tasks(parsed_args: argparse.Namespace) -> dict[str, Any]:
    """The job's tasks (name -> definition), read as the run would find the file; {} if it cannot be read."""
    from .cli import found_here

    path = getattr(parsed_args, "jobdef", None) or found_here(Path.cwd())
    if not path:
        return {}
    try:
        from .config import find_rootdir
        from .jobdef import load_jobdef

        loaded = load_jobdef(Path(path).resolve(), find_rootdir(Path(path).resolve()))
        return {n: t for n, t in loaded.model.tasks.items()}
    except Exception:  # noqa: BLE001 - a job with errors: complete what the YAML says
        try:
            import yaml

            with open(path, encoding="utf-8") as f:
                tasks = (yaml.safe_load(f) or {}).get("tasks") or {}
            return {str(n): t for n, t in tasks.items()} if isinstance(tasks, dict) else {}
        except Exception:  # noqa: BLE001 - no completion is better than a traceback at a <Tab>
            return {}


def _task_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    return [n for n in _job_tasks(parsed_args) if n.startswith(prefix)]


def _tags(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    tags: set[str] = set()
    for t in _job_tasks(parsed_args).values():
        found = getattr(t, "tags", None) if not isinstance(t, dict) else t.get("tags")
        tags.update(str(x) for x in found or ())
    return sorted(x for x in tags if x.startswith(prefix))
