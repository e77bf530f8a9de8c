"""``python -m flowmancer`` and the ``flowmancer`` console script."""

from __future__ import annotations

import gc
import os
import signal
import sys


def main() -> None:
    try:
        if sys.argv[1:] == ["--version"]:  # answered before importing anything heavy
            from . import __version__

            print(f"flowmancer {__version__}")
            return
        # Ctrl-C during the imports is taken up after them: a KeyboardInterrupt raised inside one can leave
        # a module half made (pydantic_core's Rust import panics and prints its own traceback).
        pressed: list[int] = []
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
        gc.disable()  # what the imports make lives on: see jobdef.load.collector_paused
        try:
            from .forkserver import prestart

            prestart(sys.argv[1:])  # before the heavy imports below: see prestart
            from .cli import console_main
        finally:
            gc.freeze()
            gc.enable()
            signal.signal(signal.SIGINT, previous)
        if pressed:
            raise KeyboardInterrupt
        try:
            console_main()
        finally:  # the run is over: Ctrl-C now ends the process at once (in the interpreter's exit, a
            signal.signal(signal.SIGINT, _exit_now)  # KeyboardInterrupt printed a traceback, or was lost)
    except KeyboardInterrupt:  # Ctrl-C outside the scheduler (which handles it itself): a message, no traceback
        print("interrupted", file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # Not sys.exit(130): once a KeyboardInterrupt has passed through code compiled by exec() (a dataclass
        # being made while a module imports, say), CPython marks it unhandled and, at exit, kills itself with
        # SIGINT whatever the exit code. Nothing of a run is left to finalize here.
        os._exit(130)


def _exit_now(signum: int, frame: object) -> None:
    os._exit(130)


if __name__ == "__main__":
    main()
