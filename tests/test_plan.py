"""--dry-run, --list, --graph and --schema: look at a job without running it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from tasklib import DAG, STEP_TASKS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "readme"

JOB = """
config: {name: plan}
tasks:
  extract: {task: Record}
  transform: {task: Record, dependencies: [extract], max_attempts: 3}
  load: {task: Record, dependencies: [transform]}
  side: {task: Record}
"""


@pytest.fixture
def project(recorder_project):
    recorder_project.make_jobdef(JOB)
    return recorder_project


def nothing_happened(project):
    assert not (project.path / "events.txt").exists()
    assert not (project.path / "logs").exists()


def test_dry_run(project):
    result = project.run("-n", "--skip", "side")
    assert result.ret == 0
    assert result.outlines == [
        "plan for job 'plan' (4 tasks):",
        "   1. run   extract (Record): no dependencies",
        "   2. skip  side (Record): deselected",
        "   3. run   transform (Record, up to 3 attempts): after extract",
        "   4. run   load (Record): after transform",
        "3 would run, 1 would not; nothing was run (--dry-run)",
    ]
    nothing_happened(project)
    assert not (project.path / ".flowmancer").exists()


def test_dry_run_with_restart_shows_the_checkpoint(project):
    project.make_tasks(
        "import os\nfrom flowmancer.task import Task, task\n\n@task\nclass Flaky(Task):\n    def run(self):\n"
        "        if os.path.exists('break'):\n            raise RuntimeError('broken')\n",
        name="flaky",
    )
    project.make_jobdef(JOB.replace("transform: {task: Record", "transform: {task: Flaky"))
    (project.path / "break").touch()
    assert project.run().ret == 1
    checkpoint = (project.path / ".flowmancer" / "plan.jsonl").read_bytes()
    result = project.run("-n", "-r")
    assert result.ret == 0
    out = result.stdout
    assert "resuming from checkpoint: 2 completed tasks will not rerun" in out
    assert "skip  extract (Record): completed in the checkpoint (-r)" in out
    assert "run   transform (Flaky, up to 3 attempts): failed in the checkpoint, reruns with on_restart" in out
    assert "run   load (Record): defaulted in the checkpoint; after transform" in out
    assert (project.path / ".flowmancer" / "plan.jsonl").read_bytes() == checkpoint  # read, not written

    mermaid = project.run("--graph", "mermaid", "-r").stdout
    assert "flowchart TD" in mermaid and 't0["extract<br/><small>Record</small>"]' in mermaid
    assert "t0 --> t1" in mermaid
    assert "style t0 fill:#b7e1a1" in mermaid and "style t1 fill:#f4a6a6" in mermaid
    dot = project.run("--graph", "dot", "-r").stdout
    assert dot.startswith('digraph "plan" {') and '"extract" -> "transform";' in dot
    assert 'fillcolor="#f4a6a6"' in dot


def test_list(project):
    result = project.run("--list")
    assert result.outlines == [
        "extract    Record  -",
        "transform  Record  extract",
        "load       Record  transform",
        "side       Record  -",
    ]
    nothing_happened(project)


def test_graph_without_state(project):
    mermaid = project.run("--graph", "mermaid").stdout.splitlines()
    assert mermaid[0] == "flowchart TD" and not any("style" in ln for ln in mermaid)
    nothing_happened(project)


def test_graph_labels_are_escaped(project):
    project.make_jobdef(
        "tasks:\n  'say \"hi\" #1': {task: Record}\n  '<i>&': {task: Record, dependencies: ['say \"hi\" #1']}\n"
    )
    mermaid = project.run("--graph", "mermaid").stdout
    assert 't0["say #quot;hi#quot; #35;1<br/><small>Record</small>"]' in mermaid
    assert 't1["#lt;i#gt;#amp;<br/><small>Record</small>"]' in mermaid
    dot = project.run("--graph", "dot").stdout
    assert '"say \\"hi\\" #1" [label="say \\"hi\\" #1\\nRecord"];' in dot
    assert '"<i>&" -> ' not in dot and '"say \\"hi\\" #1" -> "<i>&";' in dot


PARAM_TASKS = """
from enum import Enum
from typing import List, Optional
from pydantic import BaseModel
from flowmancer.task import Task, task

class Mode(Enum):
    FAST = "fast"
    SAFE = "safe"

class Target(BaseModel):
    host: str
    port: int = 443

@task
class Deploy(Task):
    target: Target
    mode: Mode = Mode.SAFE
    tags: List[str] = []
    note: Optional[str] = None

    def run(self):
        pass

@task
class Ping(Task):
    def run(self):
        pass
"""


def test_schema_validates_job_files_with_task_parameters(fmtester):
    fmtester.make_tasks(PARAM_TASKS)
    result = fmtester.run("--schema", jobdef="")
    assert result.ret == 0, result.stderr
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    good = yaml.safe_load(
        "include: [base.yaml]\nconfig: {name: x, max_concurrency: 2}\ntasks:\n"
        "  d: {task: Deploy, parameters: {target: {host: h}, mode: fast}, dependencies: [p]}\n  p: {task: Ping}\n"
    )
    assert list(validator.iter_errors(good)) == []
    for bad in (
        {"tasks": {"d": {"task": "Deploy", "parameters": {"target": {"host": "h"}, "mode": "reckless"}}}},
        {"tasks": {"d": {"task": "Deploy", "parameters": {"target": {"port": 1}}}}},
        {"tasks": {"d": {"task": "Deploy", "parameters": {"target": {"host": "h"}, "colour": 1}}}},
        {"tasks": {"p": {"task": "Pong"}}},
        {"tasks": {"p": {"task": "Ping", "max_attempt": 2}}},
        {"config": {"max_concurency": 1}, "tasks": {}},
    ):
        assert list(validator.iter_errors(bad)), bad
    assert "Deploy" in schema["$defs"] and "Target" in schema["$defs"]


def _edges_from_mermaid(text):
    ids = dict(re.findall(r'^\s+(t\d+)\["([^<"]+)<br/>', text, re.M))
    return {(ids[a], ids[b]) for a, b in re.findall(r"^\s+(t\d+) --> (t\d+)$", text, re.M)}


def _edges_from_dot(text):
    return set(re.findall(r'^\s+"([^"]+)" -> "([^"]+)";$', text, re.M))


def test_graphs_parse_back_to_the_dependencies(project):
    expected = {("extract", "transform"), ("transform", "load")}
    assert _edges_from_mermaid(project.run("--graph", "mermaid").stdout) == expected
    assert _edges_from_dot(project.run("--graph", "dot").stdout) == expected


def test_schema_accepts_the_readme_example_and_rejects_a_broken_one(fmtester):
    import shutil

    shutil.copytree(EXAMPLE, fmtester.path, dirs_exist_ok=True)
    result = fmtester.run("--schema", jobdef="")
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    readme_job = yaml.safe_load((EXAMPLE / "job.yaml").read_text())
    assert list(validator.iter_errors(readme_job)) == []
    broken = yaml.safe_load((EXAMPLE / "job.yaml").read_text())
    broken["tasks"]["succeed-task-a"]["parameters"] = {"my_optional_int_var": "five"}  # required one missing too
    broken["tasks"]["final-fail-task"]["max_attempts"] = 0
    errors = list(validator.iter_errors(broken))
    assert errors


def test_list_shows_tags(fmtester):
    project = fmtester
    project.make_tasks(STEP_TASKS)
    project.make_jobdef(DAG)
    rows = {ln.split()[0]: ln.split() for ln in project.run("--list").outlines}
    assert rows["load-slow"] == ["load-slow", "Step", "extract", "#nightly", "#slow"]
    assert rows["upload"] == ["upload", "IOStep", "load-fast", "#io"]
    assert rows["report"] == ["report", "Step", "load-slow,", "load-fast"]
