"""Every bad input gets a clear answer: exit code 3, file and line, a hint; never a traceback or a hang.

The corpus is real files: ``tests/data/bad_jobs/*.yaml`` (each starts with ``# expect: a || b``, the
fragments the error must contain) and ``tests/data/bad_projects/*/`` (job plus task modules or includes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GOOD_TASKS
from flowmancer.errors import JobDefinitionError
from flowmancer.exitcode import ExitCode

DATA = Path(__file__).parent / "data"
JOBS = sorted((DATA / "bad_jobs").glob("*.yaml"))
PROJECTS = sorted(p for p in (DATA / "bad_projects").iterdir() if p.is_dir())


def test_the_corpus_is_big_enough():
    assert len(JOBS) + len(PROJECTS) >= 40


def expectations(job: Path) -> list[str]:
    """The fragments the error must contain (what follows `` # schema: `` is for tests/test_schema.py)."""
    first = job.read_text().splitlines()[0].split(" # schema: ")[0]
    assert first.startswith("# expect: "), job
    return first[len("# expect: ") :].split(" || ")


def check(root: Path, job: Path) -> str:
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", str(job)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert time.time() - start < 30, "too slow: a bad input must be answered quickly"
    err = proc.stderr
    assert proc.returncode == ExitCode.JOBDEF_ERROR, f"exit {proc.returncode}\n{proc.stdout}\n{err}"
    assert "Traceback" not in err, err
    assert "hint:" in err, f"no fix suggested:\n{err}"
    assert not (root / "ran.txt").exists(), "nothing may run"
    for fragment in expectations(job):
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    return err


@pytest.mark.parametrize("job", JOBS, ids=[j.stem for j in JOBS])
def test_bad_job_file(tmp_path, job):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.py").write_text(GOOD_TASKS)
    target = tmp_path / "job.yaml"
    shutil.copy(job, target)
    err = check(tmp_path, target)
    assert f"{target}:" in err  # names the file (with a line)
    assert "hunter2" not in err  # a secret's value is never shown


@pytest.mark.parametrize("project", PROJECTS, ids=[p.name for p in PROJECTS])
def test_bad_project(tmp_path, project):
    shutil.copytree(project, tmp_path / "p")
    root = tmp_path / "p"
    (root / "tasks").mkdir(exist_ok=True)
    (root / "tasks" / "good.py").write_text(GOOD_TASKS)
    check(root, root / "job.yaml")


def test_ten_megabyte_yaml(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.py").write_text(GOOD_TASKS)
    job = tmp_path / "job.yaml"
    job.write_text(
        "# expect: job.yaml:4 || valid integer || 'xxxxx\ntasks:\n  a:\n    parameters: {count: "
        + "x" * 10_000_000
        + "}\n    task: DoSomething\n"
    )
    err = check(tmp_path, job)
    assert len(err) < 5000  # the huge value is cut short in the message


def test_many_problems_are_capped(tmp_path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "good.py").write_text(GOOD_TASKS)
    job = tmp_path / "job.yaml"
    body = "".join(f"  t{i}: {{task: Nope}}\n" for i in range(300))
    job.write_text("# expect: job definition errors (300) || and 250 more like these\ntasks:\n" + body)
    check(tmp_path, job)


# -- generated documents ----------------------------------------------------------------------------

KEYS = [
    "tasks",
    "config",
    "task",
    "parameters",
    "dependencies",
    "max_attempts",
    "backoff",
    "trigger",
    "timeout",
    "name",
    "max_concurrency",
    "include",
    "loggers",
    "extensions",
    "checkpointer",
    "aliases",
    "count",
    "names",
    "DoSomething",
    "a",
    "b",
    "version",
    "task_defaults",
    "retry_on",
    "x",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=16),
    st.sampled_from(KEYS),
    st.text(max_size=5),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_generated_documents_load_or_raise_the_documented_error(tmp_path, doc):
    import yaml

    from flowmancer.job import build_job
    from flowmancer.jobdef import load_jobdef
    from flowmancer.registry import Registry

    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_jobdef(path, tmp_path)
        build_job(None, loaded, Registry("task"), list(loaded.problems))  # type: ignore[arg-type]
    except JobDefinitionError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        exc.render()
