"""``python -m flowmancer`` and the ``flowmancer`` console script."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        if sys.argv[1:] == ["--version"]:  # answered before importing anything heavy
            from . import __version__

            print(f"flowmancer {__version__}")
            return
        from .forkserver import prestart

        prestart(sys.argv[1:])  # before the heavy imports below: see prestart
        from .cli import console_main

        console_main()
    except KeyboardInterrupt:  # Ctrl-C while Python imports flowmancer: a message, not a traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
