"""Built-in plugin ``command``: tasks that run a program (``command:`` in the job YAML).

    sort:
      command: [sort, -o, out.csv, data.csv]    # an argument list: no shell, no quoting to think about
    report:
      command: "wc -l out.csv > count.txt"      # a string is split like a shell's words (shlex) ...
      shell: true                               # ... and only a shell (/bin/sh -c) reads > | && $HOME
      cwd: reports                              # relative to the app root
      env: {LC_ALL: C}                          # added to the task's environment

A command task is a task like any other: its own process (the command runs as its child, in the task's
process group, so a timeout or Ctrl-C stops the command too), retries, ``timeout``, ``dependencies``,
``$VAR{}``/``$ENV{}`` substitution, and its stdout/stderr lines in the task's log (the command writes to the
task's own descriptors 1 and 2). It fails when the command exits non-zero (``CommandFailed``, which
``retry_on`` can name) or cannot be started. ``{name}`` in the command is replaced by the parameter
``name`` (a matrix key, or one given under ``parameters:``): in an argument list each item is filled in
alone; in a string without a shell, after splitting it into words, so a value with spaces stays one
argument; with ``shell: true``, quoted for the shell (``shlex.quote``). ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Optional

from .config import Config
from .errors import Problem
from .jobdef.models import LoadedJobDef
from .markers import hookimpl
from .registry import Registry


@hookimpl
def flowmancer_jobdef_loaded(config: Config, jobdef: LoadedJobDef) -> Optional[list[Problem]]:
    """Import the ``Command`` class only for a job that uses it (and has no ``Command`` class of its own)."""
    if any(t.task == "Command" for t in jobdef.model.tasks.values()) and "Command" not in Registry("task"):
        import_module("flowmancer.commandtask")  # declares it (again, if a test harness unloaded it)
    return None


def __getattr__(name: str) -> Any:
    """``from flowmancer.command import Command`` (to subclass it), ``CommandFailed`` (for ``retry_on``)."""
    if name in ("Command", "CommandFailed"):
        from . import commandtask

        return getattr(commandtask, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
