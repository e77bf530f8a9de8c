"""``python -m flowmancer`` and the ``flowmancer`` console script."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered before importing anything heavy
        from . import __version__

        print(f"flowmancer {__version__}")
        return
    from .forkserver import prestart

    prestart(sys.argv[1:])  # before the heavy imports below: see prestart
    from .cli import console_main

    console_main()


if __name__ == "__main__":
    main()
