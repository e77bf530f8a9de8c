"""How a task process ends the way a Python program does: files the app's modules hold are flushed, and
the ``atexit`` handlers registered while the task ran are called (``worker.Attempt`` drives them)."""

from __future__ import annotations

import atexit
import io
import os
import sys
import traceback
from types import ModuleType
from typing import Any


def _format_exc(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n")
    except Exception:  # noqa: BLE001
        return f"{type(exc).__name__}"


def module_files(root: str) -> tuple[io.IOBase, ...]:
    """The open files that modules loaded from the app root (not from installed packages) hold at module
    level: a task process flushes them when it ends, as Python's teardown would. Found once per run, by
    whoever forks, not in each task process: scanning module globals there would write every object's
    reference count, copying its page (~150 page copies a task)."""
    prefix = os.path.join(root, "")
    out: list[io.IOBase] = []
    for m in list(sys.modules.values()):
        file = getattr(m, "__file__", None)
        if not (isinstance(file, str) and file.startswith(prefix) and "-packages" + os.sep not in file):
            continue
        for name, value in list(vars(m).items()):
            # Most globals are classes, functions, modules and the module's own dunders: skipped before
            # ``isinstance`` asks the ABC, whose first answer for each type walks IOBase's registry (~0.1 ms
            # a type, up to ~3 ms a run).
            if callable(value) or isinstance(value, ModuleType) or name.startswith("__"):
                continue
            if isinstance(value, io.IOBase) and value not in out:
                out.append(value)
    return tuple(out)


def flush_files(files: tuple[io.IOBase, ...]) -> None:
    for f in files:
        try:
            f.flush()
        except Exception:  # noqa: BLE001 - closed meanwhile, or read-only: nothing to do
            pass


class ExitHandlers:
    """``atexit`` in a task process: what is registered while the task runs is kept here and called when
    its process ends, last registered first, as Python does. The handlers of the process it was forked from
    are neither called nor released (releasing them could run their finalizers in this process)."""

    def __init__(self) -> None:
        self.handlers: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self._methods = (self.register, self.unregister)  # made before the fork (see Attempt)

    def install(self) -> None:
        atexit.register, atexit.unregister = self._methods  # type: ignore[assignment]

    def register(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        self.handlers.append((func, args, kwargs))
        return func

    def unregister(self, func: Any) -> None:
        self.handlers = [h for h in self.handlers if h[0] != func]

    def run(self) -> None:
        """Not multiprocessing's: a task process does not wait for the children it did not join (they are
        killed with its process group)."""
        if not self.handlers:  # the usual case: touch nothing more (each object touched copies a page)
            return
        skip = getattr(sys.modules.get("multiprocessing.util"), "_exit_function", None)
        while self.handlers:
            func, args, kwargs = self.handlers.pop()
            if func is skip:
                continue
            try:
                func(*args, **kwargs)
            except SystemExit:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported as Python reports it, then the next one
                print(f"Exception ignored in atexit callback {func!r}:\n{_format_exc(exc)}", file=sys.stderr)
