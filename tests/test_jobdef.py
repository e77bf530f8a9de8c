"""Job definition features: include merging, substitution, complex parameters, collection."""

from __future__ import annotations

import pytest

from flowmancer.exitcode import ExitCode

DO_TASKS = """
from flowmancer.task import Task, task

@task
class DoSomething(Task):
    some_required_param: str
    added_optional_param: int = 0

    def run(self):
        print(f"params: {self.some_required_param!r} {self.added_optional_param!r}")

@task
class Cleanup(Task):
    def run(self):
        print("cleaning")
"""

TEMPLATE = """
config:
  name: generic-template

tasks:
  do-something:
    task: DoSomething
    parameters:
      some_required_param: I am a required string parameter
"""


def _params_line(result):
    return [ln for ln in result.stdout.splitlines() if "params:" in ln][0]


@pytest.fixture
def include_project(fmtester):
    fmtester.make_tasks(DO_TASKS)
    fmtester.makefile("jobdefs/template.yaml", TEMPLATE)
    return fmtester


def test_readme_include_nested_form(include_project):
    """README: complete.yaml includes cleanup_addon.yaml, which includes template.yaml."""
    include_project.makefile(
        "jobdefs/cleanup_addon.yaml",
        """
        include:
          - ./jobdefs/template.yaml

        tasks:
          cleanup:
            task: Cleanup
            dependencies:
              - do-something
        """,
    )
    include_project.makefile(
        "jobdefs/complete.yaml",
        """
        config:
          name: complete-job

        include:
          - ./jobdefs/cleanup_addon.yaml

        tasks:
          do-something:
            task: DoSomething
            parameters:
              added_optional_param: 99
        """,
    )
    result = include_project.run("-s", jobdef="jobdefs/complete.yaml")
    assert result.ret == 0, result.stdout + result.stderr
    assert result.job.name == "complete-job"
    assert list(result.job.tasks) == ["do-something", "cleanup"]
    assert result.job.tasks["cleanup"].dependencies == ["do-something"]
    assert "params: 'I am a required string parameter' 99" in _params_line(result)


def test_readme_include_flat_form(include_project):
    include_project.makefile(
        "jobdefs/cleanup_addon.yaml",
        "tasks:\n  cleanup:\n    task: Cleanup\n    dependencies:\n      - do-something\n",
    )
    include_project.makefile(
        "jobdefs/complete.yaml",
        """
        config:
          name: complete-job

        # As with most paths in Job Definition, paths to `include` YAML files are relative to `.py` file where the
        # `.start()` method for Flowmancer is invoked.
        include:
          - ./jobdefs/template.yaml
          - ./jobdefs/cleanup_addon.yaml

        tasks:
          do-something:
            task: DoSomething
            parameters:
              added_optional_param: 99
        """,
    )
    result = include_project.run("-s", jobdef="jobdefs/complete.yaml")
    assert result.ret == 0, result.stderr
    assert result.job.name == "complete-job"
    assert set(result.job.tasks) == {"do-something", "cleanup"}
    assert "99" in _params_line(result)


def test_include_lists_are_replaced_and_diamonds_work(include_project):
    include_project.makefile("base.yaml", TEMPLATE + "    dependencies: []\n")
    include_project.makefile(
        "left.yaml",
        "include: [base.yaml]\ntasks:\n  c1: {task: Cleanup}\n  do-something:\n    dependencies: [c1]\n",
    )
    include_project.makefile(
        "right.yaml",
        "include: [base.yaml]\ntasks:\n  c2: {task: Cleanup}\n  do-something:\n    dependencies: [c2]\n",
    )
    include_project.make_jobdef("include: [left.yaml, right.yaml]\nconfig: {name: diamond}\n")
    result = include_project.run()
    assert result.ret == 0, result.stderr
    # right.yaml came last: its list replaced left's, the dict keys merged.
    assert result.job.tasks["do-something"].dependencies == ["c2"]
    assert set(result.job.tasks) == {"do-something", "c1", "c2"}


def test_include_path_relative_to_including_file_as_fallback(include_project):
    include_project.makefile("sub/inner.yaml", "tasks:\n  c: {task: Cleanup}\n")
    include_project.makefile("sub/outer.yaml", "include: [inner.yaml]\n")
    result = include_project.run(jobdef="sub/outer.yaml")
    assert result.ret == 0, result.stderr
    assert list(result.job.tasks) == ["c"]


def test_substitution_env_var_sys_and_defaults(fmtester, monkeypatch):
    fmtester.make_tasks(
        """
        from flowmancer.task import Task, task

        @task
        class Show(Task):
            text: str
            number: int
            def run(self):
                print(f"show: {self.text} / {self.number}")
        """
    )
    fmtester.make_jobdef(
        """
        config:
          name: "job-$VAR{suffix}"
        tasks:
          s:
            task: Show
            parameters:
              text: "env=$ENV{FM_TEST_VALUE} var=$VAR{who} default=$ENV{FM_NOT_SET:fallback} root=$SYS{APP_ROOT_DIR}"
              number: $VAR{n:7}
        """
    )
    monkeypatch.setenv("FM_TEST_VALUE", "from-env")
    result = fmtester.run("-s", "--var", "who=me=you", "--var", "suffix=x")
    assert result.ret == 0, result.stderr
    assert f"show: env=from-env var=me=you default=fallback root={fmtester.path} / 7" in result.stdout
    assert result.job.name == "job-x"


def test_bad_var_syntax_is_a_usage_error(fmtester):
    fmtester.make_jobdef("tasks: {}\n")
    result = fmtester.run("--var", "novalue")
    assert result.ret == ExitCode.USAGE_ERROR
    assert "expected KEY=VALUE" in result.stderr


COMPLEX_TASKS = """
from enum import Enum
from flowmancer.task import Task, task
from pydantic import BaseModel
from typing import Dict, List, Optional

class Protocol(Enum):
    HTTP = 'HTTP'
    HTTPS = 'HTTPS'

class APIDetails(BaseModel):
    protocol: Protocol = Protocol.HTTPS
    base_url: str
    endpoint: str

@task
class DownloadDataFromRestApi(Task):
    api_details: APIDetails
    target_dir: str
    target_filename: str = 'data.json'
    retries: int = 1
    tags: List[str] = []
    headers: Dict[str, str] = {}
    proxy: Optional[str] = None

    def run(self) -> None:
        url = f'{self.api_details.protocol.value}://{self.api_details.base_url}/{self.api_details.endpoint}'
        print(f"url={url} file={self.target_filename} retries={self.retries!r} tags={self.tags} "
              f"headers={self.headers} proxy={self.proxy}")
"""


def test_readme_complex_parameters(fmtester):
    fmtester.make_tasks(COMPLEX_TASKS)
    fmtester.make_jobdef(
        """
        tasks:
          download-file-one:
            task: DownloadDataFromRestApi
            parameters:
              api_details:
                # We leave out `protocol` because we want to just use the default `HTTPS` value.
                base_url: www.some_data_api.com
                endpoint: /v1/data/weather/today
              target_dir: /data/todays_weather
              # Override the default `target_filename` value given in the class implementation.
              target_filename: weather.json
              retries: "3"
              tags: [a, b]
              headers: {X-Key: v}
        """
    )
    result = fmtester.run("-s")
    assert result.ret == 0, result.stderr
    assert (
        "url=HTTPS://www.some_data_api.com//v1/data/weather/today file=weather.json retries=3 tags=['a', 'b'] "
        "headers={'X-Key': 'v'} proxy=None" in result.stdout
    )


def test_nested_parameter_error_path(fmtester):
    fmtester.make_tasks(COMPLEX_TASKS)
    fmtester.make_jobdef(
        "tasks:\n  d:\n    task: DownloadDataFromRestApi\n    parameters:\n      target_dir: x\n"
        "      api_details:\n        protocol: FTP\n        base_url: b\n"
    )
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    err = result.stderr
    assert "job.yaml:7: tasks.d.parameters.api_details.protocol" in err and "'HTTP' or 'HTTPS'" in err
    assert "tasks.d.parameters.api_details.endpoint: missing required parameter 'endpoint'" in err


def test_collection_without_init_and_extension_directories(fmtester):
    fmtester.makefile(
        "tasks/plain/module_a.py",
        "from flowmancer.task import Task, task\n@task\nclass PlainA(Task):\n    def run(self):\n        print('A')\n",
    )
    fmtester.makefile(
        "more/deep/module_b.py",
        "from flowmancer.task import Task, task\n@task\nclass ExtraB(Task):\n    def run(self):\n        print('B')\n",
    )
    fmtester.make_jobdef(
        "config:\n  extension_directories: [./more]\n"
        "tasks:\n  a: {task: PlainA}\n  b: {task: ExtraB, dependencies: [a]}\n"
    )
    result = fmtester.run()
    assert result.ret == 0, result.stderr
    assert result.states() == {"a": "COMPLETED", "b": "COMPLETED"}


def test_extension_packages(fmtester):
    fmtester.makefile("site/mypkg/__init__.py", "")
    fmtester.makefile(
        "site/mypkg/sub/__init__.py",
        "from flowmancer.task import Task, task\n@task\nclass FromPkg(Task):\n    def run(self):\n        pass\n",
    )
    fmtester.make_jobdef("config:\n  extension_packages: [mypkg]\ntasks:\n  a: {task: FromPkg}\n")
    import sys

    sys.path.insert(0, str(fmtester.path / "site"))
    try:
        result = fmtester.run()
    finally:
        sys.path.remove(str(fmtester.path / "site"))
    assert result.ret == 0, result.stderr

    fmtester.make_jobdef("config:\n  extension_packages: [not_installed_pkg]\ntasks:\n  a: {task: FromPkg}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "package 'not_installed_pkg' is not installed" in result.stderr


def test_missing_extension_directory(fmtester):
    fmtester.make_jobdef("config:\n  extension_directories: [./nowhere]\ntasks:\n  a: {task: X}\n")
    result = fmtester.run()
    assert result.ret == ExitCode.JOBDEF_ERROR
    assert "extension directory not found" in result.stderr and "config.extension_directories[0]" in result.stderr


def test_yaml_anchors_in_aliases_block(fmtester):
    fmtester.make_tasks(DO_TASKS)
    fmtester.make_jobdef(
        """
        aliases:
          common: &common
            task: DoSomething
            max_attempts: 2
        tasks:
          one:
            <<: *common
            parameters: {some_required_param: one}
          two:
            <<: *common
            parameters: {some_required_param: two}
        """
    )
    result = fmtester.run()
    assert result.ret == 0, result.stderr
    assert all(t.max_attempts == 2 for t in result.job)
