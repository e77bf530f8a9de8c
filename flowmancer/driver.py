"""``Flowmancer``: the driver API of the original project (``Flowmancer().start()``).

As fast as the ``flowmancer`` command: ``Flowmancer()`` starts the fork server before the runner's own
modules are imported (``start`` imports them), so the server imports pydantic on another core meanwhile; and
the interpreter's last garbage collections are skipped when the driver's process exits (see ``start``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

_FREEZE_AT_EXIT = False


def _caller_dir(depth: int = 2) -> Path:
    """The folder of the file that called ``Flowmancer()``: the app root, like the original, but from
    the direct caller rather than the outermost frame, so it also works under pytest or a wrapper."""
    frame = sys._getframe(depth)
    file = frame.f_globals.get("__file__")
    return Path(file).resolve().parent if file else Path.cwd()


class Flowmancer:
    def __init__(self, *, test: bool = False, debug: bool = False, root: Optional[str] = None) -> None:
        self._root = Path(root).resolve() if root else _caller_dir()
        self._test = test
        self._debug = debug
        self._vars: dict[str, str] = {}
        from .forkserver import prestart  # a light module: sockets and pickle

        prestart(sys.argv[1:])

    def set_jobdef_var(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("set_jobdef_var takes str key and value")
        self._vars[key] = value

    def unset_jobdef_var(self, key: str) -> None:
        del self._vars[key]

    def start(
        self,
        default_jobdef_path: Optional[str] = None,
        default_jobdef_type: str = "yaml",
        raise_exception_on_failure: bool = False,
        argv: Optional[list[str]] = None,
    ) -> int:
        """Parse ``sys.argv`` (or ``argv``), run the job, return 0 on success, else the number of FAILED +
        DEFAULTED + ABORTED tasks (at least 1 when the job could not run at all)."""
        from .cli import run  # only now: see the module docstring

        global _FREEZE_AT_EXIT
        if not _FREEZE_AT_EXIT:
            # At exit the interpreter's last full collections re-scan every object the run left (~35 ms after
            # a small job): frozen just before, they are skipped, as the flowmancer command does. Only at exit:
            # until then the driver's interpreter collects as usual.
            import atexit
            import gc

            atexit.register(gc.freeze)
            _FREEZE_AT_EXIT = True
        args = list(sys.argv[1:] if argv is None else argv)
        if self._debug:
            args.append("--debug")
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "flowmancer"
        code, config = run(
            args,
            prog=prog,
            default_root=self._root,
            default_jobdef=default_jobdef_path,
            extra_vars=self._vars,
            raise_errors=raise_exception_on_failure,
        )
        job = config.job if config is not None else None
        if code == 0:
            return 0
        if job is not None and job.failed_count:
            return job.failed_count
        return max(1, code)
