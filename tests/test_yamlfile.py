"""The job file's YAML: the two ways it is read (the parser's events for most files, a composed node tree
for files with anchors, aliases or merge keys) give the same data, marks and problems."""

from __future__ import annotations

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
