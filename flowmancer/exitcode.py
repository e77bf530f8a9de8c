"""Exit codes of the ``flowmancer`` command, shaped like pytest's ``ExitCode``."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  #: every task completed (or was skipped)
    TASKS_FAILED = 1  #: at least one task FAILED, DEFAULTED or ABORTED
    USAGE_ERROR = 2  #: bad command line (unknown option, missing -j, bad --var)
    JOBDEF_ERROR = 3  #: the job definition or a task module is invalid; nothing ran
    INTERNAL_ERROR = 4  #: a bug in flowmancer or a plugin; please report it
    ALREADY_RUNNING = 5  #: another run of the same job holds its lock; nothing ran
    CHECKPOINT_ERROR = 6  #: the checkpoint cannot be read (damaged) or written (disk full, permissions)
    NO_TASKS_SELECTED = 7  #: -k, -m, --only, --skip, --run-from/--run-to left no task to run; nothing ran
    HANGUP = 129  #: stopped by SIGHUP (the terminal or ssh session closed)
    INTERRUPTED = 130  #: stopped by Ctrl-C (SIGINT)
    TERMINATED = 143  #: stopped by SIGTERM

    @classmethod
    def for_signal(cls, signum: int) -> ExitCode:
        """The code of a run stopped by ``signum`` (128 + its number, as a shell reports it)."""
        import signal

        codes = {int(signal.SIGHUP): cls.HANGUP, int(signal.SIGTERM): cls.TERMINATED}
        return codes.get(int(signum), cls.INTERRUPTED)
