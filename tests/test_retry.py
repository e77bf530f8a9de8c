"""The retry policy: max_attempts, backoff with its cap and jitter, retry_on and no_retry_on, task_defaults."""

from __future__ import annotations

import pytest
from tasklib import ROBUST_TASKS, marks

from flowmancer.retry import retry_delay


@pytest.fixture
def project(fmtester):
    fmtester.make_tasks(ROBUST_TASKS)
    return fmtester


def test_exponential_backoff_with_cap(project):
    project.make_jobdef(
        "tasks:\n  r: {task: Raise, max_attempts: 5, backoff: 0.1, backoff_factor: 2, backoff_max: 0.3}\n"
    )
    result = project.run()
    assert result.ret == 1
    times = [float(m.split()[-1]) for m in marks(project)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    for gap, expected in zip(gaps, [0.1, 0.2, 0.3, 0.3], strict=True):
        assert expected <= gap < expected + 0.25, gaps
    assert [round(h.retry_delay, 3) for h in result.job.tasks["r"].history[:-1]] == [0.1, 0.2, 0.3, 0.3]


def test_retry_delay_formula_and_jitter():
    assert [retry_delay(n, 1.0, 3.0, None, 0) for n in (1, 2, 3)] == [1.0, 3.0, 9.0]
    assert retry_delay(4, 1.0, 3.0, 10.0, 0) == 10.0
    samples = [retry_delay(1, 2.0, 1.0, None, 0.5) for _ in range(200)]
    assert all(1.0 <= s <= 3.0 for s in samples) and len(set(samples)) > 100


@pytest.mark.parametrize(
    ("settings", "task", "attempts"),
    [
        ("retry_on: [ValueError]", "Raise", 3),
        ("retry_on: [LookupError]", "Raise, parameters: {exc: KeyError}", 3),  # a base class matches
        ("retry_on: [builtins.KeyError]", "Raise, parameters: {exc: KeyError}", 3),
        ("retry_on: [ValueError]", "Raise, parameters: {exc: KeyError}", 1),
        ("no_retry_on: [KeyError]", "Raise, parameters: {exc: KeyError}", 1),
        ("no_retry_on: [crash]", "Crash", 1),
        ("retry_on: [crash]", "Crash", 3),
        ("retry_on: [timeout]", "Raise", 1),
    ],
)
def test_retry_on_and_no_retry_on(project, settings, task, attempts):
    project.make_jobdef(f"tasks:\n  t: {{task: {task}, max_attempts: 3, {settings}}}\n")
    result = project.run()
    assert result.ret == 1
    assert result.job.tasks["t"].attempt == attempts


def test_task_defaults_apply_and_tasks_override(project):
    project.make_jobdef(
        "config:\n  task_defaults: {max_attempts: 3}\ntasks:\n  a: {task: Raise}\n  b: {task: Raise, max_attempts: 1}\n"
    )
    result = project.run()
    assert result.job.tasks["a"].attempt == 3 and result.job.tasks["b"].attempt == 1


def test_waiting_for_a_retry_holds_no_concurrency_slot(project):
    project.make_jobdef(
        "config: {max_concurrency: 1}\n"
        "tasks:\n  flaky: {task: Raise, max_attempts: 2, backoff: 1.0}\n  other: {task: Mark}\n"
    )
    result = project.run()
    lines = marks(project)
    assert lines.index("other ran") == 1  # ran while flaky waited for its second attempt
    assert result.job.tasks["flaky"].attempt == 2
