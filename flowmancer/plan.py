"""Built-in plugin ``plan``: look at a job without running it: ``--dry-run``, ``--list``, ``--graph``.

They load and validate the job and apply the selection and ``-r`` (reading the checkpoint, never
writing it), then print and exit 0; nothing starts, no log folder is made.
"""

from __future__ import annotations

import argparse
import graphlib
import json
from typing import Optional

from .config import Config
from .hookrelay import answer
from .job import Job, TaskRun
from .jobdef.load import collector_paused
from .jobdef.matrix import shared_keys
from .markers import hookimpl
from .stash import StashKey
from .states import ExecutionState
from .stdio import printable

S = ExecutionState
#: a plugin's word on whether a task would run, and why (the ``incremental`` plugin's decisions)
PLAN_REASON = StashKey[tuple[bool, str]]("plan.reason")
# fill colours for --graph by state (a restored checkpoint state when -r is given)
_FILL = {
    "COMPLETED": "#b7e1a1",
    "FAILED": "#f4a6a6",
    "DEFAULTED": "#f7d794",
    "ABORTED": "#d6a2e8",
    "RUNNING": "#a4c8f0",
    "PENDING": "#dddddd",
    "SKIPPED": "#c7ecee",
}


@hookimpl
def flowmancer_addoption(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("looking at a job without running it")
    g.add_argument("-n", "--dry-run", action="store_true", help="print what would run, in order, and why; run nothing")
    g.add_argument("--list", action="store_true", help="list the tasks: class, dependencies, tags, pools, priority")
    g.add_argument("--graph", choices=("mermaid", "dot"), help="print the task graph (coloured by checkpoint with -r)")


def ordered(job: Job) -> list[TaskRun]:
    """Tasks in a valid run order: dependencies first, YAML order among equals."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter({t.name: t.dependencies for t in job})
    sorter.prepare()
    out: list[TaskRun] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: job.tasks[n].index)
        out += [job.tasks[n] for n in ready]
        sorter.done(*ready)
    return out


def reason(job: Job, t: TaskRun) -> tuple[bool, str]:
    deps = f"after {', '.join(t.dependencies)}" if t.dependencies else "no dependencies"
    if t.definition.deferred:
        lists = ", ".join(f"$SHARED{{{k}}}" for k in shared_keys(t.definition.matrix).values())
        deps += f"; then one task per value of {lists} (made when it is ready)"
    if t.state is S.SKIPPED:
        return False, "deselected"
    if t.state is S.COMPLETED:
        return False, "completed in the checkpoint (-r)"
    said = t.stash.get(PLAN_REASON)
    if said is not None:
        return said
    if t.is_restart:
        return True, f"failed in the checkpoint, reruns with on_restart; {deps}"
    cp = t.checkpoint_state
    if cp:
        return True, f"{cp.lower()} in the checkpoint; {deps}"
    return True, deps


def dry_run(job: Job) -> list[str]:
    lines = [f"plan for job '{job.name}' ({len(job)} tasks):"]
    runs = 0
    for i, t in enumerate(ordered(job), 1):
        will, why = reason(job, t)
        runs += will
        attempts = f", up to {t.max_attempts} attempts" if t.max_attempts > 1 else ""
        lines.append(f"{i:>4}. {'run ' if will else 'skip'}  {printable(t.name)} ({t.class_name}{attempts}): {why}")
    lines.append(f"{runs} would run, {len(job) - runs} would not; nothing was run (--dry-run)")
    return lines


def listing(job: Job) -> list[str]:
    names = {t.name: printable(t.name) for t in job}
    width = max(len(n) for n in names.values())
    cwidth = max(len(t.class_name) for t in job)
    deps = {t.name: ", ".join(names[d] for d in t.dependencies) or "-" for t in job}
    dwidth = max(len(d) for d in deps.values())
    lines = []
    for t in job:
        extra = [f"#{printable(tag)}" for tag in t.tags]
        extra += [f"{printable(r)}:{n:g}" for r, n in t.definition.resources.items()]  # what it holds of a pool
        if t.settings.priority:
            extra.append(f"priority {t.settings.priority}")
        text = " ".join(extra)
        lines.append(f"{names[t.name]:<{width}}  {t.class_name:<{cwidth}}  {deps[t.name]:<{dwidth}}  {text}".rstrip())
    pools = getattr(job.jobdef.model.config, "pools", None) or {}
    for name, size in pools.items():
        users = sum(1 for t in job if name in t.definition.resources)
        uses = f"{users} tasks use it" if users != 1 else "1 task uses it"
        lines.append(f"pool {printable(name)}: {size} at once, {uses}")
    return lines


def _state_for_graph(job: Job, t: TaskRun) -> Optional[str]:
    if t.state is S.SKIPPED:
        return "SKIPPED"
    cp = t.checkpoint_state
    return str(cp) if cp else None


def _mermaid(text: str) -> str:
    """``text`` inside a quoted mermaid label: its entity codes for what would end or mark up the label."""
    text = printable(text).replace("#", "#35;")
    for ch, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("&", "#amp;"), ("`", "#96;")):
        text = text.replace(ch, code)
    return text


def graph(job: Job, fmt: str) -> list[str]:
    if fmt == "mermaid":
        ids = {t.name: f"t{i}" for i, t in enumerate(job)}
        lines = ["flowchart TD"]
        for t in job:
            lines.append(f'    {ids[t.name]}["{_mermaid(t.name)}<br/><small>{t.class_name}</small>"]')
        for t in job:
            for d in t.dependencies:
                lines.append(f"    {ids[d]} --> {ids[t.name]}")
        for t in job:
            state = _state_for_graph(job, t)
            if state in _FILL:
                lines.append(f"    style {ids[t.name]} fill:{_FILL[state]}")
        return lines
    lines = [f"digraph {json.dumps(job.name)} {{", "    rankdir=TB;", "    node [shape=box, style=rounded];"]
    for t in job:
        state = _state_for_graph(job, t)
        fill = f', style="rounded,filled", fillcolor="{_FILL[state]}"' if state in _FILL else ""
        label = json.dumps(f"{t.name}\n{t.class_name}", ensure_ascii=False)  # escapes quotes and control characters
        lines.append(f"    {json.dumps(t.name, ensure_ascii=False)} [label={label}{fill}];")
    for t in job:
        for d in t.dependencies:
            lines.append(f"    {json.dumps(d, ensure_ascii=False)} -> {json.dumps(t.name, ensure_ascii=False)};")
    lines.append("}")
    return lines


@hookimpl(tryfirst=True)
def flowmancer_cmdline_main(config: Config) -> Optional[int]:
    opt = config.option
    if not (opt.dry_run or opt.list or opt.graph):
        return None
    with collector_paused():  # nothing here outlives the process's next step: printing and exiting
        job = answer(config.hook.flowmancer_load_jobdef(config=config), "flowmancer_load_jobdef")
        config.job = job
        config.hook.flowmancer_collection_modifytasks(config=config, job=job)
        if opt.list:
            out = listing(job)
        elif opt.graph:
            out = graph(job, opt.graph)
        else:
            out = job.notes + dry_run(job)
    print("\n".join(out))
    return 0
