"""-k and -m expressions: words with and, or, not and parentheses."""

from __future__ import annotations

import re

import pytest

from flowmancer.errors import UsageError
from flowmancer.expression import Expression


@pytest.mark.parametrize(
    ("expr", "names", "expected"),
    [
        ("a", {"a"}, True),
        ("not a", {"a"}, False),
        ("a and b or c", {"c"}, True),  # and binds tighter than or
        ("a and (b or c)", {"c"}, False),
        ("not a and b", {"b"}, True),  # not binds tightest
        ("not (a and b)", {"a", "b"}, False),
        ("(a or b) and not (c or d)", {"b", "d"}, False),
    ],
)
def test_expression_precedence(expr, names, expected):
    assert Expression(expr).evaluate(lambda w: w in names) is expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("a and", "unexpected end"),
        ("(a or b", "missing ')'"),
        ("a b", "unexpected 'b'"),
        ("", "empty expression"),
        ("and a", "expected a name"),
    ],
)
def test_expression_errors(expr, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        Expression(expr)
