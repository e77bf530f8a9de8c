"""Built-in plugin ``main``: the default run (load the job, run it, report) and job loading."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Optional

from .collect import collect_directories, collect_packages
from .config import Config
from .errors import Problem
from .exitcode import ExitCode
from .hookrelay import answer
from .job import Job, build_job
from .jobdef.load import collector_paused, read_jobdef
from .lifeline import open_fds, opened_since
from .markers import hookimpl
from .registry import Registry
from .states import TaskResult


def _located(loaded: Any, problem: Problem) -> Problem:
    """A collection problem about ``config.extension_directories[i]`` (or packages), at that line of the YAML."""
    key, _, index = problem.where.partition("[")
    if problem.location is not None or not key.startswith("config.extension_"):
        return problem
    path: tuple[Any, ...] = ("config", key.split(".", 1)[1])
    where = loaded.location((*path, int(index.rstrip("]")))) if index.rstrip("]").isdigit() else None
    where = where or loaded.location(path)
    return dataclasses.replace(problem, location=where) if where is not None else problem


@hookimpl(trylast=True)
def flowmancer_load_jobdef(config: Config) -> Optional[Job]:
    with collector_paused():
        return _load(config)


def _load(config: Config) -> Job:
    loaded = read_jobdef(config)
    cfg = loaded.model.config
    problems = list(loaded.problems)
    before = open_fds()
    found_here = collect_directories(config.rootdir, cfg.extension_directories)
    found_here += collect_packages(cfg.extension_packages)
    problems += [_located(loaded, p) for p in found_here]
    module_fds = opened_since(before)  # files the user's modules opened: their task processes keep them
    for found in config.hook.flowmancer_jobdef_loaded(config=config, jobdef=loaded):
        problems += found or []
    if not loaded.matrix_expanded:  # -p no:matrix
        problems += [
            Problem("matrix: needs the matrix plugin, blocked here (-p no:matrix)", loaded.location(("tasks", n)))
            for n, t in loaded.model.tasks.items()
            if t.matrix is not None
        ]
    job = build_job(config, loaded, Registry("task"), problems)
    job.module_fds = module_fds
    return job


@hookimpl
def flowmancer_report_header(config: Config, job: Job) -> list[str]:
    return [f"note: included from outside the app root: {where}" for where in job.jobdef.outside_root]


def exit_code_for(job: Job) -> ExitCode:
    if job.interrupted is not None:
        return ExitCode.for_signal(job.interrupted)
    if job.error is not None:
        return job.error.exit_code
    return ExitCode.TASKS_FAILED if job.failed_count else ExitCode.OK


@hookimpl(trylast=True)
def flowmancer_cmdline_main(config: Config) -> int:
    hook = config.hook
    if config.option.restart and not config.pluginmanager.has_plugin("checkpoint"):
        print("WARNING: -r: checkpointing is disabled (-p no:checkpoint); running the whole job", file=sys.stderr)
    with collector_paused(freeze=True):  # set-up makes what the run keeps; the collector resumes when tasks start
        job = answer(hook.flowmancer_load_jobdef(config=config), "flowmancer_load_jobdef")
        config.job = job
        hook.flowmancer_collection_modifytasks(config=config, job=job)
        hook.flowmancer_job_start(job=job)
    for t in job:
        if t.state.is_final:  # deselected or restored: their one final report
            result = t.result or TaskResult(name=t.name, state=t.state, attempt=t.attempt)
            hook.flowmancer_task_not_run(job=job, task=t, result=result)
    try:
        hook.flowmancer_runjob(job=job)
    finally:
        import time

        job.end_time = time.time()
    code = exit_code_for(job)
    hook.flowmancer_job_finish(job=job, exitcode=int(code))
    if job.error is not None:
        print(f"ERROR: {job.error}", file=sys.stderr)
    return code
