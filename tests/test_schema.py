"""``flowmancer --schema`` against real validators: ``check-jsonschema`` (what CI and pre-commit users run) on
every example job and on the error corpus, and ``jsonschema`` on generated documents: the schema accepts
every job the runner accepts, and where it rejects one it points at the field the runner names.

Each corpus file's first line ends with `` # schema: PATH``: the JSON path check-jsonschema must report, or
``-`` where a schema cannot see the problem (a dependency cycle or an undefined dependency, an unset
variable, a missing include, YAML the parser refuses, a task name that is not a string)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from conftest import GOOD_TASKS
from flowmancer.errors import JobDefinitionError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/job.yaml"))
CORPUS = sorted((ROOT / "tests" / "data" / "bad_jobs").glob("*.yaml"))
CHECK = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")


def schema_of(project: Path, *args: str) -> Path:
    """``flowmancer --schema`` run in ``project``, written to schema.json there."""
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "--schema", *args], cwd=project, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    out = project / "schema.json"
    out.write_text(proc.stdout)
    return out


def check_jsonschema(schema: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHECK, "--schemafile", str(schema), *map(str, files)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def good_project(tmp_path_factory) -> Path:
    """The corpus's project (GOOD_TASKS) and its schema."""
    root = tmp_path_factory.mktemp("schema")
    (root / "tasks").mkdir()
    (root / "tasks" / "good.py").write_text(GOOD_TASKS)
    schema_of(root)
    return root


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_job_passes_check_jsonschema(tmp_path, example):
    project = tmp_path / example.name
    shutil.copytree(example, project, ignore=shutil.ignore_patterns("logs", ".flowmancer"))
    schema = schema_of(project, "-j", "job.yaml")
    result = check_jsonschema(schema, project / "job.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_starter_project_passes_check_jsonschema(tmp_path):
    subprocess.run([sys.executable, "-m", "flowmancer", "init", str(tmp_path / "p")], check=True, capture_output=True)
    result = check_jsonschema(schema_of(tmp_path / "p"), tmp_path / "p" / "job.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


ACCEPTED = """\
config:
  max_concurrency: $ENV{MC:2}
  task_defaults:
    max_attempts: $VAR{tries:2}
    trigger: $VAR{rule:all_done}
tasks:
  a:
    task: DoSomething
    parameters:
      count: $VAR{n:3}
      names: ["$ENV{USER:me}", plain]
    dependencies:
    timeout: $VAR{t:5.5}
    cache: $VAR{cache:true}
  b:
    task: DoSomething
    parameters: {count: 1}
    dependencies: [a]
    tags:
    inputs: data/*.csv
  grid:
    task: DoSomething
    matrix: {count: [1, 2], exclude: [{count: 2}], include: [{count: 7}]}
    priority: 2
  sort:
    command: [sort, -o, out.txt, "{file}", 1, true]
    parameters: {file: in.txt}
  report:
    command: "wc -l out.txt > n.txt"
    shell: true
    cwd: .
    env: {LC_ALL: C}
    dependencies: [sort, grid]
loggers:
  f:
    logger: FileLogger
    parameters:
extensions:
checkpointer:
"""


def test_what_the_runner_accepts_the_schema_accepts(good_project):
    """Substitutions where a number, a boolean or a choice goes, empty keys, a single glob, a matrix (its keys
    missing from parameters), command tasks (no task:): the runner's dry run takes this job, and so does
    check-jsonschema."""
    job = good_project / "accepted.yaml"
    job.write_text(ACCEPTED)
    dry = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "accepted.yaml", "-n"], cwd=good_project, capture_output=True
    )
    assert dry.returncode == 0, dry.stderr
    result = check_jsonschema(good_project / "schema.json", job)
    assert result.returncode == 0, result.stdout + result.stderr
    (good_project / "empty_config.yaml").write_text(
        "config:\ntasks:\n  a: {task: NeedsSecret, parameters: {password: x}}\n"
    )
    assert check_jsonschema(good_project / "schema.json", good_project / "empty_config.yaml").returncode == 0


def _schema_path(job: Path) -> str:
    return job.read_text().splitlines()[0].split(" # schema: ")[1].strip()


def test_the_corpus_says_what_the_schema_sees():
    assert all(" # schema: " in j.read_text().splitlines()[0] for j in CORPUS)
    assert sum(_schema_path(j) != "-" for j in CORPUS) >= 35


@pytest.fixture(scope="module")
def corpus_report(good_project, tmp_path_factory) -> dict[str, str]:
    """check-jsonschema once over a copy of the whole corpus: file stem -> the path of its first error."""
    folder = tmp_path_factory.mktemp("corpus")
    seen = [j for j in CORPUS if _schema_path(j) != "-"]  # a recursive alias crashes check-jsonschema itself
    for job in seen:
        shutil.copy(job, folder / job.name)
    result = check_jsonschema(good_project / "schema.json", *(folder / j.name for j in seen))
    first: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if "::$" in line:
            file, rest = line.strip().split("::", 1)
            first.setdefault(Path(file).stem, rest.split(": ", 1)[0])
    return first


@pytest.mark.parametrize("job", CORPUS, ids=[j.stem for j in CORPUS])
def test_error_corpus_with_check_jsonschema(corpus_report, job):
    expected = _schema_path(job)
    if expected != "-":  # else beyond a schema (see the module docstring); the runner's test is test_bad_input.py
        assert corpus_report.get(job.stem) == expected


def test_a_wrong_parameter_names_the_field_of_the_class_in_task(tmp_path):
    """Two classes with different fields: the error for one names its own field, never the other's."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.py").write_text(
        "from flowmancer.task import Task, task\n\n"
        "@task\nclass Alpha(Task):\n    size: int\n    def run(self): pass\n\n"
        "@task\nclass Beta(Task):\n    label: str\n    def run(self): pass\n"
    )
    schema = schema_of(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text("tasks:\n  b:\n    task: Beta\n    parameters: {label: ok, size: 3}\n")
    result = check_jsonschema(schema, job)
    assert result.returncode == 1
    assert "$.tasks.b.parameters: Additional properties are not allowed ('size' was unexpected)" in result.stdout
    job.write_text("tasks:\n  a:\n    task: Alpha\n    parameters: {size: big}\n")
    result = check_jsonschema(schema, job)
    assert "$.tasks.a.parameters.size" in result.stdout and "label" not in result.stdout


# -- generated documents: the runner accepts => the schema accepts ----------------------------------------

from test_bad_input import documents  # noqa: E402 - the same generator as the runner's own fuzz test


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_every_generated_document_the_runner_accepts_the_schema_accepts(good_project, doc):
    from flowmancer.job import build_job
    from flowmancer.jobdef import load_jobdef
    from flowmancer.registry import Registry

    validator = jsonschema.Draft202012Validator(json.loads((good_project / "schema.json").read_text()))
    path = good_project / "gen.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_jobdef(path, good_project)
        build_job(None, loaded, Registry("task"), list(loaded.problems))  # type: ignore[arg-type]
    except JobDefinitionError:
        return
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == [], errors
