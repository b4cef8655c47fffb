"""Attack: SQL injection through a DB-API parameter.

Attacker: an outsider who controls a parameter value an analyst's application
binds (a dashboard's city filter, a notebook widget), not the SQL template.
Sends: strings built to escape their literal — quotes, doubled quotes,
backslashes, comment markers, statement separators, placeholders, newlines —
and, through hypothesis, any text at all.
Must learn: nothing beyond the answer to the template's question with the
value as a literal. The bound statement must parse to exactly the template's
tree with the placeholder replaced by one string literal equal to the value:
no extra condition, no second statement, no comment swallowing the rest.
(The same value against a real federation: tests/integration/test_dbapi.py,
``test_a_quoted_parameter_stays_a_value``.)
"""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from unseen.dbapi.params import bind

TEMPLATE = "SELECT city, COUNT(*) FROM loans WHERE city = ? AND month >= ? GROUP BY city"

HOSTILE = [
    "Hangzhou' OR city <> '",
    "Hangzhou' OR '1'='1",
    "x'; DROP TABLE loans; --",
    "x' -- ",
    "x' /* ",
    "x\\' OR 1=1 --",
    "x''",
    "'",
    "?",
    ":month",
    "$1",
    "x'\nOR city <> '",
    "x' UNION SELECT MAX(amount) FROM loans --",
    "\u02bc OR 1=1 --",  # a modifier letter apostrophe, not a quote
]


def _expected(city: str, month: str) -> exp.Expr:
    tree = sqlglot.parse_one(TEMPLATE, read="duckdb")
    values = iter([city, month])
    return tree.transform(
        lambda node: exp.Literal.string(next(values)) if isinstance(node, exp.Placeholder) else node
    )


def _assert_only_literals(bound: str, city: str, month: str) -> None:
    statements = sqlglot.parse(bound, read="duckdb")
    assert len(statements) == 1, bound
    assert statements[0] == _expected(city, month), bound
    literals = [lit.this for lit in statements[0].find_all(exp.Literal) if lit.is_string]
    assert sorted(literals) == sorted([city, month])


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_string_literal(value):
    _assert_only_literals(bind(TEMPLATE, [value, "2022-03"]), value, "2022-03")
    _assert_only_literals(bind(TEMPLATE, ["Ningbo", value]), "Ningbo", value)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_under_a_name_stays_one_string_literal(value):
    named = TEMPLATE.replace("city = ?", "city = :city").replace(">= ?", ">= :since")
    _assert_only_literals(bind(named, {"city": value, "since": "2022-03"}), value, "2022-03")


@given(st.text(), st.text())
def test_any_text_stays_one_string_literal(city, month):
    _assert_only_literals(bind(TEMPLATE, [city, month]), city, month)
