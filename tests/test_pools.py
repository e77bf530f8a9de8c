"""resources: counted against config.pools on the local executor, next to max_concurrency."""

from __future__ import annotations

from flowmancer.exitcode import ExitCode


def test_never_more_tasks_hold_a_pool_than_its_size(recorder_project, timeline):
    tasks = "".join(f"  db{i}: {{task: Record, parameters: {{sleep: 0.3}}, resources: {{db: 1}}}}\n" for i in range(5))
    recorder_project.make_jobdef(
        "config: {pools: {db: 2, gpu: 1}}\ntasks:\n" + tasks + "  free: {task: Record, parameters: {sleep: 0.3}}\n"
        "  g: {task: Record, parameters: {sleep: 0.3}, resources: {gpu: 1, db: 1}}\n"
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.OK, result.stdout
    rows = timeline.rows()
    db = [r for r in rows if r[0].startswith("db") or r[0] == "g"]
    points = sorted([(t0, 1) for _, t0, _, _ in db] + [(t1, -1) for _, _, t1, _ in db], key=lambda p: (p[0], p[1]))
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    assert best == 2  # six tasks on db, two at a time
    free = timeline.span("free")
    assert free[0] < min(t0 for _, t0, _, _ in db) + 0.2  # a task without resources does not wait for the pool


def test_a_retry_waits_without_holding_its_share(recorder_project, timeline):
    recorder_project.make_jobdef(
        "config: {pools: {db: 1}}\ntasks:\n"
        "  flaky: {task: Record, parameters: {fail_times: 1}, resources: {db: 1}, max_attempts: 2, backoff: 0.5}\n"
        "  other: {task: Record, parameters: {sleep: 0.1}, resources: {db: 1}}\n"
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.OK, result.stdout
    assert timeline.names() == ["flaky", "other", "flaky"]  # other ran while flaky waited to retry


def test_pool_errors_are_at_the_tasks_line(recorder_project):
    recorder_project.make_jobdef(
        "config: {pools: {db: 2}}\ntasks:\n"
        "  a: {task: Record, resources: {dbb: 1}}\n"
        "  b: {task: Record, resources: {db: 3}}\n"
        "  c: {task: Record, resources: {db: -1}}\n"
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    result.err.fnmatch_lines(
        [
            "*job.yaml:3: task 'a' asks for resource 'dbb', which config.pools does not have",
            "*did you mean 'db'?",
            "*job.yaml:4: task 'b' asks for 3 of 'db', whose pool holds 2*",
        ]
    )
    assert "resources.db: give a positive amount" in result.stderr


def test_list_shows_what_each_task_holds_its_priority_and_the_pools(recorder_project):
    recorder_project.make_jobdef(
        "config: {pools: {db: 2, gpu: 1}}\ntasks:\n  a: {task: Record, resources: {db: 1}, priority: 3}\n"
        "  b: {task: Record, dependencies: [a], resources: {db: 1, gpu: 1}}\n  c: {task: Record}\n"
    )
    result = recorder_project.run("--list")
    assert result.ret == ExitCode.OK
    result.out.fnmatch_lines(
        [
            "a  Record  -  db:1 priority 3",
            "b  Record  a  db:1 gpu:1",
            "c  Record  -",
            "pool db: 2 at once, 2 tasks use it",
        ]
    )
    result.out.fnmatch_lines(["pool gpu: 1 at once, 1 task uses it"])
