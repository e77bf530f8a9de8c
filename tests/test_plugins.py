"""The plugin platform: -p, -p no:, entry points, FLOWMANCER_PLUGINS, flowmancerconf.py, plugin options."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowmancer.exitcode import ExitCode

EXAMPLE_PLUGIN = Path(__file__).resolve().parent.parent / "examples" / "plugin-package"

TASKS = """
import time
from flowmancer.task import Task, task

@task
class Nap(Task):
    seconds: float = 0.0
    fail: bool = False

    def run(self):
        time.sleep(self.seconds)
        with open("ran.txt", "a") as f:
            f.write(f"{self.task_info.name} {self.task_info.attempt}\\n")
        if self.fail:
            raise RuntimeError("asked to fail")
"""

MARKER_PLUGIN = """
from flowmancer import hookimpl

with open("imported-{name}.txt", "a") as f:
    f.write("imported\\n")

@hookimpl
def flowmancer_job_finish(job, exitcode):
    print("{name} saw the job finish with", exitcode)
"""


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(TASKS)
    fmtester.make_jobdef("tasks:\n  a: {task: Nap}\n  b: {task: Nap, dependencies: [a]}\n")
    return fmtester


def test_dash_p_module_from_the_app_root_and_dotted(project):
    project.makefile("myplugin.py", MARKER_PLUGIN.format(name="myplugin"))
    project.makefile("mypkg/__init__.py", "")
    project.makefile("mypkg/deep.py", MARKER_PLUGIN.format(name="deep"))
    result = project.run_subprocess("-p", "myplugin", "-p", "mypkg.deep")
    assert result.ret == 0, result.stderr
    result.out.fnmatch_lines(["*myplugin saw the job finish with 0*"])
    result.out.fnmatch_lines(["*deep saw the job finish with 0*"])


def test_unknown_plugin_is_a_usage_error(project):
    result = project.run_subprocess("-p", "no_such_plugin_xyz")
    assert result.ret == ExitCode.USAGE_ERROR
    assert "-p no_such_plugin_xyz: no plugin or importable module of that name" in result.stderr
    assert "Traceback" not in result.stderr


def test_flowmancer_plugins_env(project):
    project.makefile("envplugin.py", MARKER_PLUGIN.format(name="envplugin"))
    result = project.run_subprocess(env={"FLOWMANCER_PLUGINS": "envplugin"})
    result.out.fnmatch_lines(["*envplugin saw the job finish*"])


def test_blocking_builtins(project):
    result = project.run_subprocess("-p", "no:terminal")
    assert result.ret == 0 and result.stdout == ""
    (project.path / "ran.txt").unlink()
    project.make_jobdef(
        "config: {max_concurrency: 1}\ntasks:\n  a: {task: Nap, max_attempts: 3, parameters: {fail: true}}\n"
    )
    result = project.run_subprocess("-p", "no:retry")
    assert result.ret == 1
    assert (project.path / "ran.txt").read_text().split("\n")[:-1] == ["a 1"]  # no retry
    import shutil

    shutil.rmtree(project.path / "logs")
    shutil.rmtree(project.path / ".flowmancer")
    result = project.run_subprocess("-p", "no:filelogger", "-p", "no:checkpoint")
    assert not (project.path / "logs").exists() and not (project.path / ".flowmancer").exists()
    for essential in ("main", "runner", "spawn"):
        result = project.run_subprocess("-p", f"no:{essential}")
        assert result.ret == ExitCode.USAGE_ERROR
        assert f"the '{essential}' plugin is essential and cannot be disabled" in result.stderr


def test_no_concurrency_plugin_ignores_the_limit(recorder_project, timeline):
    tasks = "\n".join(f"  t{i}: {{task: Record, parameters: {{sleep: 0.3}}}}" for i in range(3))
    recorder_project.make_jobdef(f"config: {{max_concurrency: 1}}\ntasks:\n{tasks}\n")
    assert recorder_project.run("-p", "no:concurrency").ret == 0
    assert timeline.max_overlap() == 3


CONF_ROOT = """
from flowmancer import hookimpl

with open("conf-order.txt", "a") as f:
    f.write("root\\n")

@hookimpl
def flowmancer_task_retry(job, task, result):
    # A custom retry policy that wins over the built-in (firstresult, the built-in is trylast).
    return 0.0 if task.attempt < 2 else None
"""

CONF_SUB = """
from flowmancer import hookimpl

with open("conf-order.txt", "a") as f:
    f.write("sub\\n")

@hookimpl
def flowmancer_task_retry(job, task, result):
    return 0.0 if task.attempt < 3 else None  # the inner conf is asked first, like pytest's conftests
"""


def test_flowmancerconf_outermost_first_and_override_a_builtin(project):
    project.make_conf(CONF_ROOT)
    project.make_conf(CONF_SUB, folder="jobs/nightly")
    project.make_jobdef("tasks:\n  a: {task: Nap, parameters: {fail: true}}\n", name="jobs/nightly/job.yaml")
    result = project.run_subprocess(jobdef="jobs/nightly/job.yaml")
    assert result.ret == 1
    assert (project.path / "conf-order.txt").read_text().split() == ["root", "sub"]
    # max_attempts is 1, but the inner conf's retry policy allowed three attempts.
    assert (project.path / "ran.txt").read_text().split("\n")[:-1] == ["a 1", "a 2", "a 3"]
    listing = project.run_subprocess("--plugins", jobdef="jobs/nightly/job.yaml")
    assert f"flowmancerconf.py ({project.path / 'flowmancerconf.py'})" in listing.stdout
    assert f"flowmancerconf.py ({project.path / 'jobs/nightly/flowmancerconf.py'})" in listing.stdout


def test_flowmancerconf_errors_name_the_file_and_hook(project):
    project.make_conf(
        "from flowmancer import hookimpl\n\n@hookimpl\ndef flowmancer_task_finsh(job, task, result):\n    pass\n\n"
        "def flowmancer_job_start(job):\n    pass\n"
    )
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR
    conf = project.path / "flowmancerconf.py"
    assert f"{conf}:3: unknown hook 'flowmancer_task_finsh'" in result.stderr
    assert "did you mean 'flowmancer_task_finish'?" in result.stderr
    assert f"{conf}:7: 'flowmancer_job_start' in plugin {conf} is not marked as a hook implementation" in result.stderr
    project.make_conf("def broken(:\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR and f"{conf}:1: syntax error in flowmancerconf.py" in result.stderr


def test_plugin_option_and_config_key(project):
    project.make_conf(
        """
        from flowmancer import hookimpl

        @hookimpl
        def flowmancer_addoption(parser):
            parser.add_argument("--greeting", default="hello")

        @hookimpl
        def flowmancer_addconfig(schema):
            schema.add("audience", str, "world", help="who is greeted")

        @hookimpl
        def flowmancer_job_finish(job, exitcode):
            print(f"{job.config.getoption('greeting')}, {job.jobdef.model.config.audience}!")
        """
    )
    result = project.run_subprocess("--greeting", "hi")
    result.out.fnmatch_lines(["*hi, world!*"])
    project.make_jobdef("config: {audience: everyone}\ntasks:\n  a: {task: Nap}\n")
    assert "hello, everyone!" in project.run_subprocess().stdout
    project.make_jobdef("config: {audience: [1]}\ntasks:\n  a: {task: Nap}\n")
    result = project.run_subprocess()
    assert result.ret == ExitCode.JOBDEF_ERROR and "config.audience" in result.stderr
    project.make_jobdef("config: {audiense: x}\ntasks:\n  a: {task: Nap}\n")
    result = project.run_subprocess()
    assert "unknown key 'audiense'" in result.stderr and "did you mean 'audience'?" in result.stderr
    help_text = project.run_subprocess("--help").stdout
    assert "--greeting" in help_text


def test_trace_config_and_debug_hooks(project):
    result = project.run_subprocess("--trace-config", "--debug-hooks")
    assert result.ret == 0
    assert "plugins:" in result.stdout and re.search(r"^  concurrency +builtin$", result.stdout, re.M)
    assert "flowmancer_task_finish" in result.stderr and "flowmancer_job_start" in result.stderr


@pytest.fixture(scope="module")
def installed_example_plugin(tmp_path_factory):
    """The README's example plugin package, really installed (pip, from its pyproject.toml)."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(EXAMPLE_PLUGIN),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return site


def test_entry_point_plugin_autoloads_and_can_be_blocked(project, installed_example_plugin):
    project.make_jobdef(
        "config: {slow_after: 0.2}\ntasks:\n  quick: {task: Nap}\n  slow: {task: Nap, parameters: {seconds: 0.4}}\n"
    )
    env = {"PYTHONPATH": str(installed_example_plugin)}
    result = project.run_subprocess(env=env)
    assert result.ret == 0, result.stderr
    result.out.fnmatch_lines(["*slowtasks: 1 slow task(s) over 0.2s: slow (0.4*"])
    assert "slowtasks: 1 slow task(s) over 0.1s" in project.run_subprocess("--slow-after", "0.1", env=env).stdout
    listing = project.run_subprocess("--plugins", env=env).stdout
    assert re.search(r"^slowtasks +entry point of flowmancer-slowtasks 1\.0\.0$", listing, re.M)

    for args, extra_env in (
        (["-p", "no:slowtasks"], {}),
        (["--disable-plugin-autoload"], {}),
        ([], {"FLOWMANCER_DISABLE_PLUGIN_AUTOLOAD": "1"}),
    ):
        result = project.run_subprocess(*args, env={**env, **extra_env})
        assert "slowtasks:" not in result.stdout, args
    # Blocked or not autoloaded, `-p` still loads it by its entry-point name.
    result = project.run_subprocess("--disable-plugin-autoload", "-p", "slowtasks", env=env)
    result.out.fnmatch_lines(["*slowtasks: 1 slow task(s)*"])
    # Its config key is only known while it is loaded.
    result = project.run_subprocess("-p", "no:slowtasks", env=env)
    assert result.ret == ExitCode.JOBDEF_ERROR and "unknown key 'slow_after'" in result.stderr


def test_entry_points_found_as_importlib_metadata_finds_them(tmp_path, monkeypatch):
    """Only distributions naming the group are parsed (start-up), with the same answer as the standard
    library's ``entry_points(group=...)``: one distribution per name, the first on ``sys.path``, whatever
    the spelling of its name."""
    from importlib.metadata import entry_points

    from flowmancer.pluginmanager import FlowmancerPluginManager

    def dist(site: str, name: str, module: str, group: str = "flowmancer") -> None:
        info = tmp_path / site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[console_scripts]\nx = y:z\n\n[{group}]\n{module} = {module}\n")

    dist("first", "Flowmancer-Extra", "extra_new")
    dist("second", "flowmancer_extra", "extra_old")  # the same distribution, shadowed
    dist("second", "other", "other_plugin")
    dist("second", "unrelated", "not_ours", group="pytest11")
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))
    ours = [(ep.name, ep.value) for ep in FlowmancerPluginManager()._entry_points()]
    assert ("extra_new", "extra_new") in ours and ("other_plugin", "other_plugin") in ours
    assert ("extra_old", "extra_old") not in ours and ("not_ours", "not_ours") not in ours
    assert sorted(ours) == sorted((ep.name, ep.value) for ep in entry_points(group="flowmancer"))
