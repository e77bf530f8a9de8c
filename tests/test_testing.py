"""flowmancer.testing's own helpers: the LineMatcher used for terminal assertions."""

from __future__ import annotations

import pytest

from flowmancer.testing import LineMatcher


def test_fnmatch_lines_in_order_with_lines_between():
    m = LineMatcher(["header", "  COMPLETED  a  0.01s", "noise", "=== 1 completed in 0.02s ==="])
    m.fnmatch_lines(["*COMPLETED*a*", "=== 1 completed in *"])
    with pytest.raises(AssertionError, match="no line after the last match fits"):
        m.fnmatch_lines(["=== 1 completed*", "*COMPLETED*a*"])  # wrong order
    m.no_fnmatch_line("*FAILED*")
    with pytest.raises(AssertionError):
        m.no_fnmatch_line("*COMPLETED*")
    m.re_match_lines([r"COMPLETED\s+a", r"^=== \d completed"])


def test_run_result_offers_matchers(fmtester):
    fmtester.make_tasks("from flowmancer.task import Task, task\n\n@task\nclass Hi(Task):\n    def run(self): pass\n")
    fmtester.make_jobdef("tasks:\n  a: {task: Hi}\n")
    result = fmtester.run_subprocess()
    result.out.fnmatch_lines(["*COMPLETED*a*", "=== 1 completed in *"])
    assert result.err.lines == []
