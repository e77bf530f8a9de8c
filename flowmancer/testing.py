"""``fmtester``: a pytest fixture to write a job project in a temp folder and run it (pytester's twin).

Opt in with ``pytest_plugins = ["flowmancer.testing"]`` in your root ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import pytest
import yaml

from .cli import run as cli_run
from .config import Config
from .job import Job
from .markers import hookimpl
from .states import ExecutionState

_SUMMARY = re.compile(r"(\d+) (completed|up to date|failed|defaulted|aborted|skipped|not run)")


@dataclass
class HookCall:
    name: str
    kwargs: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.kwargs[key]
        except KeyError:
            raise AttributeError(key) from None


class HookRecorder:
    """A plugin that records every hook call made after ``flowmancer_configure``."""

    def __init__(self) -> None:
        self.calls: list[HookCall] = []

    @hookimpl(tryfirst=True)
    def flowmancer_configure(self, config: Config) -> None:
        def before(name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            self.calls.append(HookCall(name, dict(kwargs)))

        def after(outcome: Any, name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            pass

        config.pluginmanager.add_hookcall_monitoring(before, after)

    @hookimpl
    def flowmancer_task_log(self, job: Any, task: Any, record: Any) -> None:
        """Implemented so that the scheduler makes its per-line calls (recorded like the rest)."""

    def getcalls(self, name: str) -> list[HookCall]:
        return [c for c in self.calls if c.name == name]


class LineMatcher:
    """Lines of output to match against ``fnmatch`` patterns (``*``, ``?``, ``[seq]``), after pytest's
    ``LineMatcher``: ``result.out.fnmatch_lines(["*COMPLETED*a*", "=== 2 completed*"])`` asserts the patterns
    match lines in that order (other lines may come between); a failure shows what was looked for and where."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def fnmatch_lines(self, patterns: Sequence[str]) -> None:
        log: list[str] = []
        pos = 0
        for pattern in patterns:
            for i in range(pos, len(self.lines)):
                if fnmatch.fnmatchcase(self.lines[i], pattern):
                    log.append(f"matched {pattern!r}: {self.lines[i]!r}")
                    pos = i + 1
                    break
            else:
                log.append(f"no line after the last match fits {pattern!r}")
                raise AssertionError("\n".join([*log, "in:", *self.lines]))

    def no_fnmatch_line(self, pattern: str) -> None:
        for line in self.lines:
            assert not fnmatch.fnmatchcase(line, pattern), f"{pattern!r} matches {line!r}"

    def re_match_lines(self, patterns: Sequence[str]) -> None:
        """Like ``fnmatch_lines`` with regular expressions (``re.search`` in each line)."""
        pos = 0
        for pattern in patterns:
            for i in range(pos, len(self.lines)):
                if re.search(pattern, self.lines[i]):
                    pos = i + 1
                    break
            else:
                raise AssertionError(f"no line after the last match fits {pattern!r} in:\n{self}")


@dataclass
class RunResult:
    ret: int
    stdout: str
    stderr: str
    duration: float
    job: Optional[Job] = None
    config: Optional[Config] = None
    recorder: Optional[HookRecorder] = None
    outlines: list[str] = field(default_factory=list)
    out: LineMatcher = field(init=False)
    err: LineMatcher = field(init=False)

    def __post_init__(self) -> None:
        self.outlines = self.stdout.splitlines()
        #: ``stdout`` and ``stderr`` as ``LineMatcher`` s: ``result.out.fnmatch_lines([...])``
        self.out = LineMatcher(self.outlines)
        self.err = LineMatcher(self.stderr.splitlines())

    def state(self, task: str) -> ExecutionState:
        assert self.job is not None, "state() needs an in-process run()"
        return self.job.tasks[task].state

    def states(self) -> dict[str, str]:
        assert self.job is not None, "states() needs an in-process run()"
        return {t.name: t.state.value for t in self.job}

    def parseoutcomes(self) -> dict[str, int]:
        for line in reversed(self.outlines):
            if line.startswith("===") or " in " in line:
                found = {k.replace(" ", "_"): int(n) for n, k in _SUMMARY.findall(line)}
                if found:
                    return found
        raise ValueError(f"no summary line in output:\n{self.stdout}")

    def assert_outcomes(self, **expected: int) -> None:
        got = self.parseoutcomes()
        wanted = {k: v for k, v in expected.items() if v}
        assert got == wanted, f"outcomes {got} != {wanted}\n{self.stdout}\n{self.stderr}"


class FMTester:
    """Build a throw-away job project under ``path`` and run it."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self._monkeypatch = monkeypatch
        monkeypatch.chdir(path)
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.delenv("FORCE_COLOR", raising=False)

    def makefile(self, relpath: str, content: str) -> Path:
        p = self.path / relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        return p

    def make_tasks(self, source: str, name: str = "mytasks", folder: str = "tasks", package: bool = True) -> Path:
        """Write a task module ``<folder>/<name>.py`` (a package unless ``package=False``)."""
        if package:
            init = self.path / folder / "__init__.py"
            if not init.exists():
                self.makefile(f"{folder}/__init__.py", "")
        return self.makefile(f"{folder}/{name}.py", source)

    def make_jobdef(self, content: Union[str, dict[str, Any]], name: str = "job.yaml") -> Path:
        text = yaml.safe_dump(content, sort_keys=False) if isinstance(content, dict) else content
        return self.makefile(name, text)

    def make_conf(self, source: str, folder: str = ".") -> Path:
        return self.makefile(f"{folder}/flowmancerconf.py", source)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """Undo the imports a run made, so the next run in this process collects afresh."""
        from .collect import forget_siblings

        modules = set(sys.modules)
        path = list(sys.path)
        meta_path = list(sys.meta_path)
        try:
            yield
        finally:
            for name in set(sys.modules) - modules:
                del sys.modules[name]
            sys.path[:] = path
            sys.meta_path[:] = meta_path
            forget_siblings()

    def run(self, *args: str, jobdef: str = "job.yaml", plugins: tuple[object, ...] = ()) -> RunResult:
        """Run in this process (fast; the result holds the ``Job``). Tasks still run in child processes."""
        argv = list(args)
        if jobdef and "-j" not in argv and "--jobdef" not in argv:
            argv = ["-j", jobdef, *argv]
        recorder = HookRecorder()
        out, err = io.StringIO(), io.StringIO()
        start = time.perf_counter()
        with self.isolated(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code, config = cli_run(argv, plugins=(recorder, *plugins))
        return RunResult(
            code,
            out.getvalue(),
            err.getvalue(),
            time.perf_counter() - start,
            job=config.job if config else None,
            config=config,
            recorder=recorder,
        )

    def run_subprocess(
        self, *args: str, jobdef: Optional[str] = "job.yaml", timeout: float = 120, env: Optional[dict[str, str]] = None
    ) -> RunResult:
        """Run ``python -m flowmancer`` as a real process."""
        argv = list(args)
        if jobdef and "-j" not in argv and "--jobdef" not in argv:
            argv = ["-j", jobdef, *argv]
        return self.run_python("-m", "flowmancer", *argv, timeout=timeout, env=env)

    def run_python(self, *args: str, timeout: float = 120, env: Optional[dict[str, str]] = None) -> RunResult:
        base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
        full_env = {**base, **(env or {})}
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, *args], cwd=self.path, capture_output=True, text=True, timeout=timeout, env=full_env
        )
        return RunResult(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)


@pytest.fixture
def fmtester(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FMTester:
    return FMTester(tmp_path, monkeypatch)
