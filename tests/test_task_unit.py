"""A task class built directly and its run() called, as in a plain unit test (the original API allowed it)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from flowmancer.task import Task, task


@task
class AddRows(Task):
    n: int

    def run(self) -> None:
        self.shared_dict["rows"] = self.shared_dict.get("rows", 0) + self.n
        self.logger.info("added %d rows", self.n)


def test_a_task_built_with_a_shared_dict(caplog):
    shared = {"rows": 1}
    with caplog.at_level("INFO"):
        AddRows(shared_dict=shared, n=3).run()
    assert shared == {"rows": 4}
    assert "added 3 rows" in caplog.text  # pytest's own log capture has it


def test_outside_pytest_the_logger_prints(tmp_path):
    script = tmp_path / "unit.py"
    script.write_text(
        "from flowmancer.task import Task, task\n\n"
        "@task\nclass Hello(Task):\n    def run(self):\n        self.logger.debug('hello %s', 'there')\n\n"
        "Hello().run()\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "DEBUG - hello there" in proc.stderr


def test_a_task_built_without_one_has_its_own(capfd):
    t = AddRows(n="2")  # validated as from the YAML
    t.run()
    assert t.shared_dict == {"rows": 2}


def test_parameters_are_still_validated():
    with pytest.raises(ValidationError):
        AddRows(n="many")
    with pytest.raises(ValidationError):
        AddRows(n=1, extra=2)
