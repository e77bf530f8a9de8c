"""The ``Command`` task: runs a program (``command:`` in the job YAML; see the ``command`` plugin)."""

from __future__ import annotations

import os
import shlex
import string
import subprocess
from typing import Any, Dict, List, Optional, Union

from pydantic import ConfigDict, model_validator

from .task import Task, task


class CommandFailed(Exception):
    """The command exited with a non-zero code."""


def _fill(template: str, values: dict[str, Any], quote: bool) -> str:
    """``template`` with ``{name}`` replaced by ``values[name]`` (``KeyError`` for a name not given)."""
    out = []
    for literal, field, spec, conv in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        if field not in values or spec or conv:
            raise KeyError(field)
        text = values[field] if isinstance(values[field], str) else str(values[field])
        out.append(shlex.quote(text) if quote else text)
    return "".join(out)


@task
class Command(Task):
    """Runs ``command`` (see the module docstring); other parameters fill its ``{name}`` placeholders."""

    model_config = ConfigDict(extra="allow")

    command: Union[str, List[str]]
    shell: bool = False
    cwd: Optional[str] = None
    env: Dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> Command:
        if isinstance(self.command, list) and not self.command or self.command == "":
            raise ValueError("command: give a program to run")
        if self.shell and isinstance(self.command, list):
            raise ValueError("shell: true takes the command as one string (the shell splits it)")
        for part in [self.command] if isinstance(self.command, str) else self.command:
            for _, field, _, _ in string.Formatter().parse(part):
                if field is not None and field not in (self.model_extra or {}):
                    raise ValueError(f"command: {{{field}}} is not a parameter of this task")
        return self

    def argv(self) -> Union[str, list[str]]:
        """What is run: one string for the shell, else the argument list."""
        values = dict(self.model_extra or {})
        if self.shell:
            assert isinstance(self.command, str)
            return _fill(self.command, values, quote=True)
        words = shlex.split(self.command) if isinstance(self.command, str) else self.command
        return [_fill(w, values, quote=False) for w in words]

    def run(self) -> None:
        args = self.argv()
        env = {**os.environ, **self.env} if self.env else None
        try:
            code = subprocess.call(args, shell=self.shell, cwd=self.cwd or None, env=env)
        except OSError as exc:  # not found, not executable, cwd missing
            raise CommandFailed(f"cannot run {args if isinstance(args, str) else args[0]!r}: {exc.strerror}") from None
        if code != 0:
            shown = args if isinstance(args, str) else shlex.join(args)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            raise CommandFailed(f"{shown} {how}")
