"""Every hook is documented and tested; user plugins can observe and override the built-ins."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from flowmancer import ExecutionState as S
from flowmancer import hookimpl, hookspec
from flowmancer.exitcode import ExitCode

TESTS = Path(__file__).parent


def test_every_hook_has_a_docstring_and_a_test():
    sources = "\n".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != "test_hooks.py")
    sources += (TESTS / "test_hooks.py").read_text().split("# --- hook tests ---", 1)[1]
    names = hookspec.all_hook_names()
    assert len(names) >= 15
    for name in names:
        doc = inspect.getdoc(getattr(hookspec, name))
        assert doc and len(doc) > 20, f"{name} needs a docstring"
        assert name in sources, f"{name} has no test"


def test_readme_documents_every_hook():
    readme = (TESTS.parent / "README.md").read_text()
    for name in hookspec.all_hook_names():
        assert f"`{name}" in readme, f"README hook reference misses {name}"


# --- hook tests ---


@pytest.fixture
def two_tasks(recorder_project):
    recorder_project.make_jobdef(
        "tasks:\n  a: {task: Record}\n  b: {task: Record, dependencies: [a], max_attempts: 2, "
        "parameters: {fail_times: 1}}\n"
    )
    return recorder_project


def test_hook_call_order_for_a_run(two_tasks):
    result = two_tasks.run()
    assert result.ret == 0
    order = [c.name for c in result.recorder.calls if c.name != "flowmancer_task_log"]
    assert order[:2] == ["flowmancer_cmdline_main", "flowmancer_load_jobdef"]
    assert order.index("flowmancer_collection_modifytasks") < order.index("flowmancer_report_header")
    assert order.index("flowmancer_job_start") < order.index("flowmancer_runjob")
    assert order[-3:] == ["flowmancer_job_finish", "flowmancer_terminal_summary", "flowmancer_unconfigure"]
    spawns = result.recorder.getcalls("flowmancer_task_spawn")
    assert [c.task.name for c in spawns] == ["a", "b", "b"]
    starts = result.recorder.getcalls("flowmancer_task_start")
    assert [c.task.name for c in starts] == ["a", "b", "b"]
    retries = result.recorder.getcalls("flowmancer_task_retry")
    assert [(c.task.name, c.result.attempt) for c in retries] == [("b", 1)]
    finishes = [
        (c.task.name, c.result.state, c.result.will_retry) for c in result.recorder.getcalls("flowmancer_task_finish")
    ]
    assert finishes == [("a", S.COMPLETED, False), ("b", S.FAILED, True), ("b", S.COMPLETED, False)]
    trans = [(c.task.name, c.from_state, c.to_state) for c in result.recorder.getcalls("flowmancer_task_transition")]
    assert trans == [
        ("a", S.INIT, S.PENDING),
        ("a", S.PENDING, S.RUNNING),
        ("a", S.RUNNING, S.COMPLETED),
        ("b", S.INIT, S.PENDING),
        ("b", S.PENDING, S.RUNNING),
        ("b", S.RUNNING, S.PENDING),
        ("b", S.PENDING, S.RUNNING),
        ("b", S.RUNNING, S.COMPLETED),
    ]
    assert [c.exitcode for c in result.recorder.getcalls("flowmancer_job_finish")] == [0]


def test_user_retry_policy_wins_over_builtin(two_tasks, timeline):
    # A user plugin's answer comes before the built-in's (which would wait 0 s).
    class LongerBackoff:
        @hookimpl
        def flowmancer_task_retry(self, job, task, result):
            return 0.25 if task.attempt < task.max_attempts else None

    result = two_tasks.run(plugins=(LongerBackoff(),))
    assert result.ret == 0
    rows = [r for r in timeline.rows() if r[0] == "b"]
    assert rows[1][1] - rows[0][2] >= 0.25


def test_can_start_gate_and_report_header_and_addoption(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.1}}}}" for i in range(4))
    recorder_project.make_jobdef(f"tasks:\n{tasks}\n")

    class OneAtATime:
        @hookimpl
        def flowmancer_addoption(self, parser):
            parser.add_argument("--serial", action="store_true")

        @hookimpl
        def flowmancer_task_can_start(self, job, task):
            return not (job.config.option.serial and job.running)

        @hookimpl
        def flowmancer_report_header(self, config, job):
            return [f"serial mode: {config.option.serial}"]

    result = recorder_project.run("--serial", plugins=(OneAtATime(),))
    assert result.ret == 0
    result.out.fnmatch_lines(["*serial mode: True*"])
    assert timeline.max_overlap() == 1


def test_job_has_room_gates_every_task_at_once(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.1}}}}" for i in range(5))
    recorder_project.make_jobdef(f"tasks:\n{tasks}\n")

    class TwoAtATime:
        @hookimpl
        def flowmancer_job_has_room(self, job):
            return len(job.running) < 2

    result = recorder_project.run(plugins=(TwoAtATime(),))
    assert result.ret == 0
    assert timeline.max_overlap() == 2 and len(timeline.rows()) == 5


def test_max_concurrency_does_not_ask_every_ready_task_on_every_pass(recorder_project, timeline):
    """Under max_concurrency, a full pass costs one gate call, not one per ready task (it made 17,000
    can_start calls for a fan of 1,000 under max_concurrency 8)."""
    mids = "".join(f"  m{i}: {{task: Record, dependencies: [src]}}\n" for i in range(60))
    recorder_project.make_jobdef(f"config: {{max_concurrency: 2}}\ntasks:\n  src: {{task: Record}}\n{mids}")
    asked: list[str] = []

    class Count:
        @hookimpl
        def flowmancer_task_can_start(self, job, task):
            asked.append(task.name)

    result = recorder_project.run(plugins=(Count(),))
    assert result.ret == 0 and len(timeline.rows()) == 61
    assert len(asked) == 61  # each task once, when a slot was free for it


def test_collection_modifytasks_can_skip(recorder_project, timeline):
    recorder_project.make_jobdef("tasks:\n  a: {task: Record}\n  b: {task: Record, dependencies: [a]}\n")

    class SkipA:
        @hookimpl
        def flowmancer_collection_modifytasks(self, config, job):
            job.set_state(job.tasks["a"], S.SKIPPED)

    result = recorder_project.run(plugins=(SkipA(),))
    assert result.ret == 0
    assert timeline.names() == ["b"]
    assert result.states() == {"a": "SKIPPED", "b": "COMPLETED"}


def test_task_log_and_configure_unconfigure(fmtester):
    fmtester.make_tasks(
        "from flowmancer.task import Task, task\n@task\nclass P(Task):\n    def run(self):\n        print('hi')\n"
    )
    fmtester.make_jobdef("tasks:\n  p: {task: P}\n")
    seen = []

    class Watch:
        @hookimpl
        def flowmancer_configure(self, config):
            seen.append("configure")

        @hookimpl
        def flowmancer_task_log(self, job, task, record):
            seen.append(f"{task.name}:{record.message}")

        @hookimpl
        def flowmancer_unconfigure(self, config):
            seen.append("unconfigure")

    assert fmtester.run(plugins=(Watch(),)).ret == 0
    assert seen == ["configure", "p:hi", "unconfigure"]


def test_replace_spawn_runjob_load_and_cmdline_main(recorder_project, timeline):
    recorder_project.make_jobdef("tasks:\n  a: {task: Record}\n")
    spawned = []

    class CountingSpawn:
        @hookimpl
        def flowmancer_task_spawn(self, job, task):
            from flowmancer.localexec import ProcessHandle

            spawned.append(task.name)
            return ProcessHandle(job, task)

    assert recorder_project.run(plugins=(CountingSpawn(),)).ret == 0
    assert spawned == ["a"] and timeline.names() == ["a"]

    class DryRun:
        @hookimpl
        def flowmancer_runjob(self, job):
            for t in job:
                job.set_state(t, S.SKIPPED)
            return True

    result = recorder_project.run(plugins=(DryRun(),))
    assert result.ret == 0 and result.states() == {"a": "SKIPPED"}
    assert timeline.names() == ["a"]  # nothing more ran

    class Refuse:
        @hookimpl
        def flowmancer_load_jobdef(self, config):
            from flowmancer.errors import JobDefinitionError, Problem

            raise JobDefinitionError([Problem("refused by policy", hint="ask the admin")])

    result = recorder_project.run(plugins=(Refuse(),))
    assert result.ret == ExitCode.JOBDEF_ERROR and "refused by policy" in result.stderr

    class Answer:
        @hookimpl
        def flowmancer_cmdline_main(self, config):
            print("answered without running")
            return 0

    result = recorder_project.run(plugins=(Answer(),))
    assert result.ret == 0 and "answered without running" in result.stdout


def test_a_crashing_plugin_is_an_internal_error(recorder_project):
    recorder_project.make_jobdef("tasks:\n  a: {task: Record}\n")

    class Broken:
        @hookimpl
        def flowmancer_job_start(self, job):
            raise ZeroDivisionError("plugin bug")

    result = recorder_project.run(plugins=(Broken(),))
    assert result.ret == ExitCode.INTERNAL_ERROR
    assert "INTERNAL ERROR" in result.stderr and "ZeroDivisionError: plugin bug" in result.stderr


def test_jobdef_loaded_problems_join_the_others(recorder_project):
    recorder_project.make_jobdef("config: {name: ''}\ntasks:\n  a: {task: Recrod}\n")

    class NamePolicy:
        @hookimpl
        def flowmancer_jobdef_loaded(self, config, jobdef):
            from flowmancer.errors import Problem

            if not jobdef.model.config.name:
                return [Problem("the job needs a name", jobdef.location(("config", "name")), hint="set config.name")]
            return []

    result = recorder_project.run(plugins=(NamePolicy(),))
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "job definition errors (2)" in result.stderr
    assert "job.yaml:1: the job needs a name" in result.stderr and "unknown task class 'Recrod'" in result.stderr


def test_task_shared_dict_hook(fmtester):
    fmtester.make_tasks(
        "from flowmancer.task import Task, task\n@task\nclass W(Task):\n    def run(self):\n"
        "        self.shared_dict['k'] = 1\n        del self.shared_dict['k']\n        self.shared_dict['j'] = [2]\n"
    )
    fmtester.make_jobdef("tasks:\n  w: {task: W}\n")
    result = fmtester.run()
    calls = result.recorder.getcalls("flowmancer_task_shared_dict")
    assert [(c.task.name, c.key, c.value, c.deleted) for c in calls] == [
        ("w", "k", 1, False),
        ("w", "k", None, True),
        ("w", "j", [2], False),
    ]
    assert result.job.shared_dict == {"j": [2]}


def test_task_timeout_hook_overrides_the_setting(recorder_project):
    recorder_project.make_jobdef("tasks:\n  slow: {task: Record, parameters: {sleep: 5}}\n")

    class Deadline:
        @hookimpl
        def flowmancer_task_timeout(self, job, task):
            return 0.3 if task.name == "slow" else None

    result = recorder_project.run(plugins=(Deadline(),))
    assert result.ret == 1
    assert result.job.tasks["slow"].result.error == "timed out after 0.3 s"
    assert result.duration < 4


def test_runjob_idle_is_called_once_per_wake_up(recorder_project):
    tasks = "".join(f"  t{i}: {{task: Record}}\n" for i in range(20))
    recorder_project.make_jobdef("tasks:\n" + tasks)
    result = recorder_project.run()
    idle = len(result.recorder.getcalls("flowmancer_runjob_idle"))
    events = len(result.recorder.getcalls("flowmancer_task_transition"))
    assert 1 <= idle < events  # batched: fewer calls than events


def test_terminal_summary_sections_come_before_the_last_line(recorder_project):
    recorder_project.make_jobdef("tasks:\n  a: {task: Record}\n")

    class Section:
        @hookimpl
        def flowmancer_terminal_summary(self, job, write):
            write(f"custom section: {len(job)} task(s)")

    out = recorder_project.run(plugins=(Section(),)).outlines
    assert out[-2] == "custom section: 1 task(s)" and out[-1].startswith("=== 1 completed")


COVERAGE_TASKS = """
from flowmancer.task import Task, task


@task
class Talk(Task):
    fail_first: bool = False

    def run(self):
        print("hello from", self.task_info.name)
        self.shared_dict[self.task_info.name] = self.task_info.attempt
        if self.fail_first and self.task_info.attempt == 1:
            raise RuntimeError("first attempt fails")


@task
class Each(Task):
    x: int = 0

    def run(self):
        if self.x == 0:
            self.shared_dict["xs"] = [1, 2]
"""


def test_one_run_calls_every_hook(fmtester):
    """Not a grep: one real run (a retry, a deselected task, output, shared_dict, a run-time fan-out) calls
    every hook of the spec, except the three that come before a recorder can be registered."""
    fmtester.make_tasks(COVERAGE_TASKS)
    fmtester.make_jobdef(
        "tasks:\n  a: {task: Talk}\n  b: {task: Talk, dependencies: [a], max_attempts: 2, timeout: 60,\n"
        "      parameters: {fail_first: true}}\n  left-out: {task: Talk}\n"
        "  lists: {task: Each}\n  each: {task: Each, dependencies: [lists], matrix: {x: '$SHARED{xs}'}}\n"
    )
    result = fmtester.run("--skip", "left-out")
    assert result.ret == ExitCode.OK
    called = {c.name for c in result.recorder.calls}
    before_recording = {"flowmancer_addoption", "flowmancer_parser_ready", "flowmancer_configure"}
    assert set(hookspec.all_hook_names()) - before_recording - called == set()
    summary = result.recorder.getcalls("flowmancer_terminal_summary")[0]
    assert summary.exitcode == 0 and summary.terminalreporter is not None
    added = [c.task.name for c in result.recorder.getcalls("flowmancer_task_added")]
    assert added == ["each[x=1]", "each[x=2]"]  # flowmancer_task_expand answered for "each"


def test_every_hook_parameter_is_documented():
    for name in hookspec.all_hook_names():
        fn = getattr(hookspec, name)
        doc = inspect.getdoc(fn) or ""
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in doc, f"{name} does not document {param}"


def test_typed_relay_matches_the_spec():
    """``config.hook`` is typed by ``hookrelay.HookRelay``: the same hooks with the same parameters."""
    from flowmancer.hookrelay import HookRelay

    for name in hookspec.all_hook_names():
        spec = getattr(hookspec, name)
        opts = spec.flowmancer_spec
        if opts.get("historic"):
            assert name in HookRelay.__annotations__, name
            continue
        relay = getattr(HookRelay, name)
        assert list(inspect.signature(relay).parameters)[1:] == list(inspect.signature(spec).parameters), name
        returns = inspect.signature(relay).return_annotation
        assert returns.startswith("list[") != bool(opts.get("firstresult")), (name, returns)


def test_parser_ready_sees_every_option_before_parsing(fmtester):
    """A flowmancerconf.py sees the built-ins' and another plugin's options, and may change defaults."""
    fmtester.makefile(
        "flowmancerconf.py",
        "from flowmancer import hookimpl\n\n"
        "@hookimpl\ndef flowmancer_addoption(parser):\n    parser.add_argument('--mine', default='x')\n\n"
        "@hookimpl\ndef flowmancer_parser_ready(parser, pluginmanager):\n"
        "    opts = sorted(o for a in parser._actions for o in a.option_strings)\n"
        "    open('options.txt', 'w').write(' '.join(opts))\n"
        "    parser.set_defaults(mine='changed')\n\n"
        "@hookimpl\ndef flowmancer_configure(config):\n    print('mine is', config.getoption('mine'))\n",
    )
    fmtester.make_tasks("from flowmancer.task import Task, task\n\n@task\nclass T(Task):\n    def run(self): pass\n")
    fmtester.make_jobdef("tasks:\n  a: {task: T}\n")
    result = fmtester.run_subprocess()
    assert result.ret == ExitCode.OK, result.stderr
    assert "mine is changed" in result.stdout
    options = (fmtester.path / "options.txt").read_text().split()
    assert {"--mine", "--skip", "--completion", "--docs", "--incremental"} <= set(options)
