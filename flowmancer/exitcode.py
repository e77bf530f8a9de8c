"""Exit codes of the ``flowmancer`` command, shaped like pytest's ``ExitCode``."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  #: every task completed (or was skipped)
    TASKS_FAILED = 1  #: at least one task FAILED, DEFAULTED or ABORTED
    USAGE_ERROR = 2  #: bad command line (unknown option, missing -j, bad --var)
    JOBDEF_ERROR = 3  #: the job definition or a task module is invalid; nothing ran
    INTERNAL_ERROR = 4  #: a bug in flowmancer or a plugin; please report it
    INTERRUPTED = 130  #: stopped by Ctrl-C (SIGINT)
    TERMINATED = 143  #: stopped by SIGTERM
