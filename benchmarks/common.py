"""What every benchmark script does first: run flowmancer as an installed one runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bytecode_env() -> dict[str, str]:
    """Compile flowmancer's bytecode (as ``pip install`` does) and return an environment that keeps it:
    without, every start of a development checkout under ``PYTHONDONTWRITEBYTECODE=1`` compiles (~60 ms)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "flowmancer")], check=True)
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tasks_module(root: Path, name: str, source: str) -> None:
    """Write ``tasks/<name>.py`` of a benchmark project."""
    (root / "tasks").mkdir(exist_ok=True)
    (root / "tasks" / f"{name}.py").write_text(source)
