"""The scheduler: order, parallelism, shared_dict, retries, failure propagation, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys

from flowmancer import ExecutionState as S
from flowmancer.exitcode import ExitCode


def test_diamond_order_and_parallelism(recorder_project, timeline):
    recorder_project.make_jobdef(
        """
        tasks:
          top: {task: Record}
          left: {task: Record, dependencies: [top], parameters: {sleep: 0.5}}
          right: {task: Record, dependencies: [top], parameters: {sleep: 0.5}}
          bottom: {task: Record, dependencies: [left, right]}
        """
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.OK, result.stdout + result.stderr
    assert set(result.states().values()) == {"COMPLETED"}
    names = timeline.names()
    assert names[0] == "top" and names[-1] == "bottom"
    top_end = timeline.span("top")[1]
    bottom_start = timeline.span("bottom")[0]
    assert all(top_end <= timeline.span(n)[0] for n in ("left", "right"))
    assert all(timeline.span(n)[1] <= bottom_start for n in ("left", "right"))
    # left and right ran at the same time: the two 0.5 s sleeps took well under 1 s together.
    l0, l1 = timeline.span("left")
    r0, r1 = timeline.span("right")
    assert max(l1, r1) - min(l0, r0) < 0.9
    assert timeline.max_overlap() == 2


def test_failure_defaults_downstream_but_independent_tasks_run(recorder_project, timeline):
    recorder_project.make_jobdef(
        """
        tasks:
          a: {task: Record, parameters: {fail_times: 5}}
          b: {task: Record, dependencies: [a]}
          c: {task: Record, dependencies: [b]}
          independent: {task: Record, parameters: {sleep: 0.2}}
          after-independent: {task: Record, dependencies: [independent]}
        """
    )
    result = recorder_project.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states() == {
        "a": "FAILED",
        "b": "DEFAULTED",
        "c": "DEFAULTED",
        "independent": "COMPLETED",
        "after-independent": "COMPLETED",
    }
    assert sorted(timeline.names()) == ["a", "after-independent", "independent"]  # b and c never started
    result.out.fnmatch_lines(["*upstream task 'a' failed*"])
    result.assert_outcomes(completed=2, failed=1, defaulted=2)


def test_retries_with_backoff(recorder_project, timeline):
    recorder_project.make_jobdef(
        """
        tasks:
          flaky: {task: Record, max_attempts: 3, backoff: 0.3, parameters: {fail_times: 2}}
          after: {task: Record, dependencies: [flaky]}
        """
    )
    result = recorder_project.run()
    assert result.ret == 0, result.stdout
    rows = [r for r in timeline.rows() if r[0] == "flaky"]
    assert [r[3] for r in rows] == [1, 2, 3]
    for prev, nxt in zip(rows, rows[1:], strict=False):
        assert nxt[1] - prev[2] >= 0.3  # waited the backoff between attempts
    flaky = result.job.tasks["flaky"]
    assert [h.state for h in flaky.history] == [S.FAILED, S.FAILED, S.COMPLETED]
    assert [h.will_retry for h in flaky.history] == [True, True, False]
    assert result.stdout.count("retrying in 0.3s") == 2


def test_retries_exhausted(recorder_project, timeline):
    recorder_project.make_jobdef("tasks:\n  never: {task: Record, max_attempts: 2, parameters: {fail_times: 9}}\n")
    result = recorder_project.run()
    assert result.ret == 1
    assert [r[3] for r in timeline.rows()] == [1, 2]
    result.out.fnmatch_lines(["*RuntimeError: never failing attempt 2*"])


def test_max_concurrency_is_never_exceeded(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.2}}}}" for i in range(6))
    recorder_project.make_jobdef(f"config:\n  max_concurrency: 2\ntasks:\n{tasks}\n")
    result = recorder_project.run()
    assert result.ret == 0
    assert timeline.max_overlap() == 2
    assert result.duration >= 0.6  # 3 waves of 0.2 s


def test_max_concurrency_cli_overrides_yaml(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.2}}}}" for i in range(4))
    recorder_project.make_jobdef(f"config:\n  max_concurrency: 4\ntasks:\n{tasks}\n")
    assert recorder_project.run("--max-concurrency", "1").ret == 0
    assert timeline.max_overlap() == 1


def test_unlimited_concurrency_runs_all_at_once(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.4}}}}" for i in range(5))
    recorder_project.make_jobdef(f"tasks:\n{tasks}\n")
    result = recorder_project.run()
    assert result.ret == 0
    assert timeline.max_overlap() == 5


def test_shared_dict_across_parallel_producers(fmtester):
    fmtester.make_tasks(
        """
        import time
        from flowmancer.task import Task, task

        @task
        class Produce(Task):
            key: str
            value: int
            def run(self):
                time.sleep(0.2)
                self.shared_dict[self.key] = self.value
                self.shared_dict.update({f"{self.key}_list": [self.value] * 2})

        @task
        class Consume(Task):
            def run(self):
                total = self.shared_dict["x"] + self.shared_dict["y"]
                with open("sum.txt", "w") as f:
                    f.write(f"{total} {self.shared_dict['x_list']} {sorted(self.shared_dict)}")
        """
    )
    fmtester.make_jobdef(
        """
        tasks:
          px: {task: Produce, parameters: {key: x, value: 40}}
          py: {task: Produce, parameters: {key: y, value: 2}}
          consume: {task: Consume, dependencies: [px, py]}
        """
    )
    result = fmtester.run()
    assert result.ret == 0, result.stdout
    assert (fmtester.path / "sum.txt").read_text() == "42 [40, 40] ['x', 'x_list', 'y', 'y_list']"
    assert result.job.shared_dict == {"x": 40, "x_list": [40, 40], "y": 2, "y_list": [2, 2]}


def test_tasks_run_in_the_app_root_from_any_folder(fmtester):
    """`flowmancer -j` works from any folder; tasks see the app root (where ./tasks is) as their cwd."""
    fmtester.make_tasks(
        """
        import os
        from flowmancer.task import Task, task

        @task
        class Where(Task):
            def run(self):
                print("cwd=" + os.getcwd())
        """
    )
    fmtester.make_jobdef("tasks:\n  w: {task: Where}\n", name="jobs/job.yaml")
    sub = fmtester.path / "elsewhere"
    sub.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "../jobs/job.yaml", "-s"], cwd=sub, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cwd={fmtester.path}" in proc.stdout
    assert f"root: {fmtester.path}" in proc.stdout


def test_no_limit_still_respects_open_file_limits(recorder_project):
    """max_concurrency 0 with more tasks than file descriptors allow: the run waits, it does not crash."""
    import resource

    tasks = "".join(f"  t{i}: {{task: Record}}\n" for i in range(400))
    recorder_project.make_jobdef("tasks:\n" + tasks)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.run(
        [sys.executable, "-m", "flowmancer", "-j", "job.yaml", "-qq", "-p", "no:filelogger"],
        cwd=recorder_project.path,
        capture_output=True,
        text=True,
        preexec_fn=low_limit,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "400 completed" in proc.stdout


def test_success_settles_before_the_process_exits_without_losing_output(fmtester, spawn_path):
    """A task that reported success is settled at once (its dependents start while its process tears
    down); output it wrote below Python just before still reaches its log, and every process is reaped."""
    fmtester.make_tasks(
        """
import os
from flowmancer.task import Task, task

@task
class Raw(Task):
    def run(self):
        print(f"{self.task_info.name} python")
        with open("pids.txt", "a") as f:
            f.write(f"{os.getpid()}\\n")

    def on_destroy(self):
        os.write(1, f"{self.task_info.name} raw\\n".encode())
"""
    )
    n = 20
    fmtester.make_jobdef(
        "tasks:\n  t0: {task: Raw}\n"
        + "".join(f"  t{i}: {{task: Raw, dependencies: [t{i - 1}]}}\n" for i in range(1, n))
    )
    result = fmtester.run()
    assert result.ret == 0
    logs = {p.stem: p.read_text() for p in next((fmtester.path / "logs").iterdir()).glob("t*.log")}
    for i in range(n):
        assert f"t{i} python" in logs[f"t{i}"] and f"t{i} raw" in logs[f"t{i}"], logs[f"t{i}"]
        assert result.job.tasks[f"t{i}"].result.exitcode == 0
    pids = (fmtester.path / "pids.txt").read_text().split()
    assert len(pids) == n and not [p for p in pids if os.path.exists(f"/proc/{p}")], "left a process (or a zombie)"


def test_a_task_stopped_mid_event_does_not_stall_the_others(fmtester, spawn_path):
    """A task process stopped half-way through writing an event (a large line, a debugger, SIGSTOP) holds
    only itself up: the scheduler reads what is there and settles the other tasks meanwhile."""
    fmtester.make_tasks(
        """
import os, pickle, struct, sys, time
from flowmancer.task import Task, task

@task
class HalfEvent(Task):
    def run(self):
        value = pickle.dumps("x" * 100_000)
        frame = pickle.dumps({"event": "shared", "op": "set", "key": "big", "pickled": value})
        data = struct.pack("!i", len(frame)) + frame
        fd = self.shared_dict.send.conn.fd  # the task's event pipe
        os.write(fd, data[: len(data) // 2])
        time.sleep(3)  # stopped mid-event
        os.write(fd, data[len(data) // 2 :])

@task
class Quick(Task):
    def run(self):
        time.sleep(0.5)
        print("quick done")
"""
    )
    fmtester.make_jobdef("tasks:\n  half: {task: HalfEvent}\n  quick: {task: Quick}\n")
    result = fmtester.run()
    assert result.ret == 0, result.stdout + result.stderr
    half, quick = result.job.tasks["half"].result, result.job.tasks["quick"].result
    assert quick.end - half.start < 2.0, "the scheduler waited for the rest of the stopped task's event"
    assert half.end - half.start >= 3.0
    assert result.job.shared_dict["big"] == "x" * 100_000  # the event arrived whole once it was complete


def test_spawn_start_method_used_on_macos_and_windows(fmtester, monkeypatch):
    """Where fork is unavailable tasks start with multiprocessing's spawn: same results, output and order."""
    monkeypatch.setenv("FLOWMANCER_START_METHOD", "spawn")
    fmtester.make_tasks(
        """
from flowmancer.task import Task, task

@task
class Say(Task):
    fail: bool = False

    def run(self):
        print(f"{self.task_info.name} says hi")
        self.shared_dict[self.task_info.name] = 1
        if self.fail:
            raise ValueError("nope")
"""
    )
    fmtester.make_jobdef(
        "tasks:\n  a: {task: Say}\n  b: {task: Say, dependencies: [a]}\n"
        "  c: {task: Say, dependencies: [a], parameters: {fail: true}}\n  d: {task: Say, dependencies: [c]}\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.TASKS_FAILED
    assert result.states() == {"a": "COMPLETED", "b": "COMPLETED", "c": "FAILED", "d": "DEFAULTED"}
    assert result.job.tasks["c"].result.error == "run() raised ValueError: nope"
    assert result.job.shared_dict == {"a": 1, "b": 1, "c": 1}
    log = next((fmtester.path / "logs").iterdir()) / "b.log"
    assert "b says hi" in log.read_text()
