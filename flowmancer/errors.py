"""User-facing errors: each carries everything needed to print it without a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .exitcode import ExitCode


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The choice ``word`` was most likely meant to be (for "did you mean ...?"), if one is close enough.
    difflib is imported here, on the error path, not by every run."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a job definition, a task module or a parameter."""

    message: str
    location: Optional[Location] = None
    where: str = ""  # dotted path inside the job, e.g. "tasks.load.parameters.retries"
    hint: str = ""

    def render(self) -> str:
        """One problem as printed; what came from the YAML (names, keys) cannot act on the terminal."""
        from .stdio import printable

        head = f"{self.location}: " if self.location else ""
        where = f"{printable(self.where)}: " if self.where else ""
        text = f"{head}{where}{printable(self.message)}"
        if self.hint:
            text += f"\n    hint: {printable(self.hint)}"
        return text


class FlowmancerError(Exception):
    """Base of errors that are the user's to fix; the CLI prints them and exits with ``exit_code``."""

    exit_code: ExitCode = ExitCode.USAGE_ERROR


class ExpandError(FlowmancerError):
    """A run-time fan-out cannot expand (``flowmancer_task_expand``): its task fails with this message."""


class UsageError(FlowmancerError):
    exit_code = ExitCode.USAGE_ERROR


class _Hinted(FlowmancerError):
    """An error about the run's state: what is wrong, then on its own line what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message, self.hint = message, hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


class AlreadyRunning(_Hinted):
    """Another run of the same job holds its lock: this one starts no task."""

    exit_code = ExitCode.ALREADY_RUNNING


class NoTasksSelected(_Hinted):
    """The selection options left nothing to run (pytest's "no tests ran", exit 5 there; 5 is taken here)."""

    exit_code = ExitCode.NO_TASKS_SELECTED


class CheckpointError(_Hinted):
    """The checkpoint cannot be read (damaged) or written (disk full, permissions, a file in the way)."""

    exit_code = ExitCode.CHECKPOINT_ERROR


class JobDefinitionError(FlowmancerError):
    """All problems found in a job definition, reported together."""

    exit_code = ExitCode.JOBDEF_ERROR

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.render())

    #: at most this many problems are printed; the rest are counted
    MAX_SHOWN = 50

    def render(self) -> str:
        n = len(self.problems)
        lines = [f"job definition error{'s' if n != 1 else ''} ({n}):"]
        lines += [" - " + p.render().replace("\n", "\n   ") for p in self.problems[: self.MAX_SHOWN]]
        if n > self.MAX_SHOWN:
            lines.append(f" ... and {n - self.MAX_SHOWN} more like these")
        return "\n".join(lines)
