"""Every job-definition problem is found before anything runs, all at once, with file, line and a hint."""

from __future__ import annotations

import pytest

from conftest import GOOD_TASKS
from flowmancer.exitcode import ExitCode

TASKS = GOOD_TASKS


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    return fmtester


def errors_of(fmtester, yaml_text, name="job.yaml"):
    path = fmtester.make_jobdef(yaml_text, name=name)
    result = fmtester.run(jobdef=name)
    assert result.ret == ExitCode.JOBDEF_ERROR, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (fmtester.path / "ran.txt").exists(), "nothing may run when the job is invalid"
    return result.stderr, str(path)


CASES = [
    # (yaml, expected fragments: each must appear in the error output)
    (
        "tasks:\n  a: {task: DoSomething, parameters: {count: 1}\n",
        ["job.yaml:3", "YAML syntax error", "flow mapping that starts at line 2"],
    ),
    ("tasks:\n\ta: {task: DoSomething}\n", ["job.yaml:2", "tabs for indentation"]),
    (
        "tasks:\n  a: {task: DoSomething, parameters: {count: 1}}\n  a: {task: DoSomething}\n",
        ["job.yaml:3", "duplicate key 'a' (first defined at line 2)"],
    ),
    ("", ["job.yaml:1", "the job definition is empty"]),
    ("- a\n- b\n", ["must be a mapping", "start the file with `tasks:`"]),
    ("tasks: {}\n", ["the job has no tasks"]),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters: {count: 1}\n    max_attempt: 2\n",
        ["job.yaml:5", "tasks.a.max_attempt", "unknown key 'max_attempt'", "did you mean 'max_attempts'?"],
    ),
    (
        "config:\n  max_concurency: 2\ntasks:\n  a: {task: DoSomething, parameters: {count: 1}}\n",
        ["job.yaml:2", "did you mean 'max_concurrency'?"],
    ),
    ("tasks:\n  a:\n    task: Do Something\n", ["job.yaml:3", "tasks.a.task", "did you mean 'DoSomething'?"]),
    ("tasks:\n  a:\n    task: DoSomthing\n", ["unknown task class 'DoSomthing'", "did you mean 'DoSomething'?"]),
    ("tasks:\n  a:\n    task: Frobnicate\n", ["unknown task class 'Frobnicate'", "decorate the class with @task"]),
    (
        "tasks:\n  a:\n    task: DoSomething\n",
        ["job.yaml:2", "tasks.a.parameters.count", "missing required parameter 'count'", "tasks/mytasks.py"],
    ),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters:\n      count: 1\n      colour: red\n",
        ["job.yaml:6", "unknown parameter 'colour'", "known parameters: count, names"],
    ),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters:\n      count: many\n",
        ["job.yaml:5", "tasks.a.parameters.count", "valid integer", "'many'"],
    ),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters:\n      count: 1\n      names: [1, [2]]\n",
        ["tasks.a.parameters.names[1]", "valid string"],
    ),
    (
        "tasks:\n  a: {task: DoSomething, parameters: {count: 1}, dependencies: [bb]}\n  b: {task: DoSomething, "
        "parameters: {count: 1}}\n",
        ["job.yaml:2", "undefined dependency 'bb'", "did you mean 'b'?"],
    ),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters: {count: 1}\n    dependencies:\n      - a\n",
        ["job.yaml:6", "task 'a' depends on itself"],
    ),
    (
        "tasks:\n  a: {task: DoSomething, parameters: {count: 1}, dependencies: [b]}\n"
        "  b: {task: DoSomething, parameters: {count: 1}, dependencies: [a]}\n",
        ["dependency cycle: ", "a -> b -> a"],
    ),
    ("tasks:\n  a: {task: DoSomething, parameters: {count: 1}, max_attempts: 0}\n", ["max_attempts", "greater than"]),
    ("tasks:\n  1: {task: DoSomething, parameters: {count: 1}}\n", ["job.yaml:2", "valid string"]),
    ("tasks:\n  a: !!python/object:os.system {}\n", ["job.yaml:2", "YAML tag", "not allowed"]),
    ("tasks:\n  a: !!python/name:os.system x\n", ["job.yaml:2", "not allowed"]),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters:\n      count: $VAR{n}\n",
        ["job.yaml:5", "$VAR{n} is not set", "--var n="],
    ),
    (
        "tasks:\n  a:\n    task: DoSomething\n    parameters:\n      count: $ENV{FM_SURELY_UNSET_VAR}\n",
        ["job.yaml:5", "$ENV{FM_SURELY_UNSET_VAR} is not set", "export FM_SURELY_UNSET_VAR="],
    ),
]


@pytest.mark.parametrize(("text", "fragments"), CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_invalid_job_definitions(project, text, fragments):
    err, path = errors_of(project, text)
    for frag in fragments:
        assert frag in err, f"{frag!r} not in:\n{err}"
    assert path in err or "the job has no tasks" in err or "must be a mapping" in err


def test_cycle_of_five(project):
    names = ["a", "b", "c", "d", "e"]
    body = "".join(
        f"  {n}: {{task: DoSomething, parameters: {{count: 1}}, dependencies: [{names[(i + 1) % 5]}]}}\n"
        for i, n in enumerate(names)
    )
    err, _ = errors_of(project, "tasks:\n" + body)
    assert "dependency cycle:" in err
    cycle = err.split("dependency cycle: ")[1].split("\n")[0].split(" -> ")
    assert len(cycle) == 6 and cycle[0] == cycle[-1] and set(cycle) == set(names)


def test_all_problems_reported_at_once(project):
    err, _ = errors_of(
        project,
        """
        config:
          max_concurency: 3
        tasks:
          a:
            task: Do Something
          b:
            task: DoSomething
            parameters:
              count: many
              colour: red
            dependencies: [a, c, b]
        """,
    )
    assert "job definition errors (6)" in err
    for frag in ["max_concurency", "Do Something", "'many'", "colour", "'c'", "depends on itself"]:
        assert frag in err


def test_task_module_syntax_error(project):
    project.make_tasks("def broken(:\n    pass\n", name="broken")
    err, _ = errors_of(project, "tasks:\n  a: {task: DoSomething, parameters: {count: 1}}\n")
    assert "tasks/broken.py:1" in err and "syntax error in task module" in err


def test_task_module_import_error(project):
    project.make_tasks("import not_a_real_module_xyz\n", name="needs")
    err, _ = errors_of(project, "tasks:\n  a: {task: DoSomething, parameters: {count: 1}}\n")
    assert "tasks/needs.py:1" in err and "No module named 'not_a_real_module_xyz'" in err
    assert "install the package" in err


def test_task_class_without_run(project):
    project.make_tasks(
        "from flowmancer.task import Task, task\n\n@task\nclass Lazy(Task):\n    pass\n",
        name="lazy",
    )
    err, _ = errors_of(project, "tasks:\n  a: {task: Lazy}\n")
    assert "tasks/lazy.py:3" in err and "does not implement run" in err


def test_two_classes_with_one_name_names_both_files(project):
    src = "from flowmancer.task import Task, task\n\n@task\nclass Twin(Task):\n    def run(self):\n        pass\n"
    project.make_tasks(src, name="one")
    project.make_tasks(src, name="two")
    err, _ = errors_of(project, "tasks:\n  a: {task: Twin}\n")
    assert "two task classes are named 'Twin'" in err
    assert "tasks/one.py" in err and "tasks/two.py" in err


def test_include_errors(project):
    project.makefile("inc/a.yaml", "include: [inc/b.yaml]\ntasks: {}\n")
    project.makefile("inc/b.yaml", "include: [inc/a.yaml]\n")
    err, _ = errors_of(project, "include: [inc/a.yaml, inc/missing.yaml]\ntasks: {}\n")
    assert "include cycle:" in err and "a.yaml -> " in err
    assert "included file not found: inc/missing.yaml" in err
    assert "job.yaml:1" in err


def test_missing_job_file_is_a_jobdef_error(project):
    result = project.run(jobdef="nope.yaml")
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job definition file not found" in result.stderr
