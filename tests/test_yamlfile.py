"""The job file's YAML: the two ways it is read (the parser's events for most files, a composed node tree
for files with anchors, aliases or merge keys) give the same data, marks and problems."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowmancer.exitcode import ExitCode
from flowmancer.jobdef import yamlfile
from flowmancer.jobdef.yamlfile import MAX_DEPTH, read_yaml

ROOT = Path(__file__).resolve().parent.parent
#: the corpus of bad jobs and the examples, but for files with an alias (only the node tree can read those)
FILES = sorted(
    (
        p
        for p in [*(ROOT / "tests" / "data" / "bad_jobs").glob("*.yaml"), *(ROOT / "examples").glob("*/job.yaml")]
        if "*" not in p.read_text()
    ),
    key=lambda p: p.name,
)
EXTRA = {
    "tags": "tasks:\n  a: {task: T, parameters: {s: !!str 1, n: !!int '3', b: !!binary aGk=, d: 2024-01-01}}\n",
    "bad tag": "tasks:\n  a: {task: T, parameters: {x: !!python/object:os.system {}, y: !!python/tuple [1]}}\n",
    "complex key": "tasks:\n  a: {task: T}\n? [x, y]\n: 1\n",
    "duplicates": "tasks:\n  a: {task: T}\n  a: {task: U}\n",
    "dollars": "tasks:\n  a: {task: T, parameters: {p: $ENV{HOME}, q: ['x', 'y$'], $k: 1}}\n",
    "two documents": "tasks: {}\n---\ntasks: {}\n",
    "empty document": "---\n",
    "only comments": "# nothing\n",
    "list": "- tasks\n",
    "syntax": "tasks:\n  a: {task: T\n",
    "deep": "tasks:\n  a: {task: T, parameters: {p: " + "[" * 300 + "]" * 300 + "}}\n",
}


def _read(path: Path):
    problems: list = []
    data, marks, dollars = read_yaml(path, problems)
    return data, marks, dollars, [(p.message, p.location) for p in problems]


@pytest.mark.parametrize("source", [*FILES, *EXTRA], ids=lambda s: s.name if isinstance(s, Path) else s)
def test_events_and_nodes_read_the_same(tmp_path, monkeypatch, source):
    path = tmp_path / "job.yaml"
    path.write_text(source.read_text() if isinstance(source, Path) else EXTRA[source])
    monkeypatch.setattr(yamlfile, "_may_share", lambda text: False)
    a = _read(path)
    monkeypatch.setattr(yamlfile, "_may_share", lambda text: True)
    b = _read(path)
    assert a[0] == b[0]
    assert a[1] == b[1]
    assert a[2] == b[2]
    assert [(m, loc and (loc.line, loc.column)) for m, loc in a[3]] == [
        (m, loc and (loc.line, loc.column)) for m, loc in b[3]
    ]


@pytest.mark.parametrize("levels", [300, 5000])
def test_nesting_deeper_than_the_limit_is_an_error_at_its_line(fmtester, levels):
    """Thousands of levels used to end in Python's RecursionError (a traceback). Past 1,000 levels, newer
    libyaml (PyYAML 6.0.4's wheels) refuses the file itself, as a syntax error at the same line."""
    fmtester.make_tasks(
        "from flowmancer.task import Task, task\n\n@task\nclass T(Task):\n    p: list = []\n\n"
        "    def run(self):\n        pass\n"
    )
    fmtester.make_jobdef("tasks:\n  a:\n    task: T\n    parameters:\n      p: " + "[" * levels + "]" * levels + "\n")
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job.yaml:5: " in result.stderr and "Traceback" not in result.stderr
    if levels < 1000:
        assert f"job.yaml:5: tasks.a.parameters: YAML nested more than {MAX_DEPTH} levels deep" in result.stderr
    else:
        assert "levels deep" in result.stderr or "exceeded maximum nesting depth" in result.stderr
        assert "flatten the structure" in result.stderr


def test_marks_are_made_only_when_a_line_is_asked_for(tmp_path):
    """A file read without problems keeps its text, not its 400,000 marks (for a 100,000-task job): the
    first look-up reads it again, and finds what the node tree finds."""
    path = tmp_path / "job.yaml"
    path.write_text("config:\n  name: x\ntasks:\n  a: {task: T}\n  b:\n    task: T\n    dependencies: [a, c]\n")
    data, marks, _, problems = _read(path)
    assert problems == [] and isinstance(marks, yamlfile.LazyMarks)
    assert marks._marks is None  # nothing made by reading
    assert yamlfile.locate(marks, ()).line == 1 and marks._marks is None  # the root's mark is kept
    assert yamlfile.locate(marks, ("tasks", "b", "dependencies", 1)).line == 7
    assert (yamlfile.locate(marks, ("tasks", "b", "task")).line, marks._marks is not None) == (6, True)
    path.write_text("tasks: {}\n")  # the file changed since (--watch): the marks are of the text that was read
    assert yamlfile.locate(marks, ("tasks", "a")).line == 4


def test_a_file_with_a_problem_is_read_with_its_marks(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("tasks:\n  a: {task: T}\n  a: {task: U}\n")
    _, marks, _, problems = _read(path)
    assert not isinstance(marks, yamlfile.LazyMarks)
    assert problems[0][0] == "duplicate key 'a' (first defined at line 2)" and problems[0][1].line == 3


def test_an_unknown_task_class_is_reported_at_its_line(tmp_path):
    """The marks made late (see above) still point at the line: what the user sees."""
    (tmp_path / "job.yaml").write_text("tasks:\n  first: {task: Missing}\n\n  second:\n    task: AlsoMissing\n")
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == ExitCode.JOBDEF_ERROR
    assert "job.yaml:2:" in proc.stderr and "job.yaml:5:" in proc.stderr and "Traceback" not in proc.stderr
