"""The SQL front end against a fixed catalog (no servers involved)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from unseen.engine.errors import PlanError, PolicyError, SqlSyntaxError, UnsupportedError
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.compiled import AggCall
from unseen.engine.query.expr import (
    AggRef,
    Binary,
    BinaryOp,
    Column,
    GroupRef,
    InList,
    Like,
    Literal,
    OutputRef,
)
from unseen.engine.query.plan import Encoding
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType

ALL = frozenset({"filter", "aggregate", "group", "entity"})
CATALOG = Catalog(
    "",
    (
        TableInfo(
            "loans",
            (
                ColumnInfo("City", SqlType("VARCHAR"), ALL, ("A", "B", "C")),
                ColumnInfo("month", SqlType("VARCHAR"), ALL, ("2022-01", "2022-02")),
                ColumnInfo("payee", SqlType("VARCHAR"), ALL, None),
                ColumnInfo("day", SqlType("DATE"), ALL - {"group"}),
                ColumnInfo("amount", SqlType("INTEGER"), ALL),
                ColumnInfo("price", SqlType("DECIMAL", 12, 2), ALL),
                ColumnInfo("rate", SqlType("FLOAT"), ALL - {"group"}),
                ColumnInfo("secret", SqlType("FLOAT"), frozenset({"aggregate"})),
            ),
        ),
    ),
    conflicts=(("broken", "table broken: column x is INTEGER at a but VARCHAR at b"),),
)


def test_columns_resolve_case_insensitively_and_aggregates_are_shared():
    q = compile_sql(
        "SELECT city, SUM(amount), AVG(amount), STDDEV(amount) FROM loans GROUP BY CITY", CATALOG
    )
    assert q.plan.groups[0].column == "City"
    assert len(q.plan.measures) == 1  # one measure feeds SUM, AVG and STDDEV
    measure = q.plan.measures[0]
    assert measure.encoding is Encoding.INTEGER and measure.want_sum and measure.want_square
    assert q.aggregates == (AggCall("sum", 0), AggCall("avg", 0), AggCall("stddev_samp", 0))
    assert q.outputs[0] == GroupRef(0)


def test_encodings_follow_column_types():
    q = compile_sql(
        "SELECT SUM(price), SUM(rate), SUM(amount * 2), SUM(amount / 2), COUNT(payee) FROM loans",
        CATALOG,
    )
    kinds = [(m.encoding, m.decimal_scale, m.want_sum) for m in q.plan.measures]
    assert kinds == [
        (Encoding.DECIMAL, 2, True),
        (Encoding.FLOAT, 0, True),
        (Encoding.INTEGER, 0, True),
        (Encoding.FLOAT, 0, True),
        (Encoding.INTEGER, 0, False),
    ]


def test_group_domain_comes_from_in_list_or_equality_before_the_catalog():
    q = compile_sql(
        "SELECT payee, COUNT(*) FROM loans WHERE payee IN ('x', 'y', 'x') AND "
        "amount > 5 GROUP BY payee",
        CATALOG,
    )
    assert q.plan.groups[0].domain == ("x", "y")
    q = compile_sql(
        "SELECT city, month, COUNT(*) FROM loans WHERE 'B' = city GROUP BY 1, 2", CATALOG
    )
    assert q.plan.groups[0].domain == ("B",)
    assert q.plan.groups[1].domain == ("2022-01", "2022-02")


def test_group_without_domain_is_refused_with_advice():
    with pytest.raises(
        PlanError, match=r"no published group domain; restrict it with WHERE payee IN"
    ):
        compile_sql("SELECT payee, COUNT(*) FROM loans GROUP BY payee", CATALOG)


def test_literals_are_typed_and_coerced_like_duckdb():
    q = compile_sql(
        "SELECT COUNT(*) FROM loans WHERE day >= '2022-03-01' AND price > 1.50 "
        "AND amount = '7' AND rate < 1e-3 AND month NOT LIKE '2022%'",
        CATALOG,
    )
    f = q.plan.filter
    literals = [n.value for n in _walk(f) if isinstance(n, Literal)]
    assert literals == [dt.date(2022, 3, 1), Decimal("1.50"), 7, 0.001]
    likes = [n for n in _walk(f) if isinstance(n, Like)]
    assert likes[0].negated


def _walk(node):
    from unseen.engine.query.expr import walk

    return list(walk(node))


def test_order_by_alias_position_and_expression():
    q = compile_sql(
        "SELECT city AS c, SUM(amount) AS total FROM loans GROUP BY c "
        "ORDER BY total DESC, 1, COUNT(*) NULLS FIRST LIMIT 3 OFFSET 1",
        CATALOG,
    )
    assert [k.expr for k in q.order] == [OutputRef(1), OutputRef(0), AggRef(1)]
    assert [k.descending for k in q.order] == [True, False, False]
    assert q.order[2].nulls_first
    assert (q.limit, q.offset) == (3, 1)


def test_policy_is_checked_before_anything_runs():
    with pytest.raises(PolicyError, match="may not be used to filter"):
        compile_sql("SELECT COUNT(*) FROM loans WHERE secret > 1", CATALOG)
    with pytest.raises(PolicyError, match="may not be used to group"):
        compile_sql("SELECT rate, COUNT(*) FROM loans GROUP BY rate", CATALOG)


@pytest.mark.parametrize(
    "sql, construct, column",
    [
        ("SELECT MIN(amount) FROM loans", "MIN", 8),
        ("SELECT COUNT(*),\n  MAX(amount) FROM loans", "MAX", 3),
        ("SELECT COUNT(*) FROM loans WHERE day > CURRENT_DATE", "function CURRENT_DATE", 40),
        (
            "SELECT COUNT(*) FROM loans WHERE CAST(amount AS VARCHAR) = '1'",
            "CAST of a column to VARCHAR",
            34,
        ),
        ("SELECT MEDIAN(amount) FROM loans", "MEDIAN", 8),
        ("SELECT COUNT(DISTINCT amount) FROM loans", "COUNT(DISTINCT", 8),
        ("SELECT SELECT", None, None),
    ],
)
def test_refusals_point_at_the_construct(sql, construct, column):
    if construct is None:
        with pytest.raises(SqlSyntaxError):
            compile_sql(sql, CATALOG)
        return
    with pytest.raises(UnsupportedError) as info:
        compile_sql(sql, CATALOG)
    assert construct in str(info.value)
    assert info.value.position is not None and info.value.position[1] == column


def test_conflicting_table_reports_the_conflict():
    with pytest.raises(PlanError, match="INTEGER at a but VARCHAR at b"):
        compile_sql("SELECT COUNT(*) FROM broken", CATALOG)


def test_unknown_names_are_reported_with_position():
    with pytest.raises(PlanError, match=r"no column nope \(line 1, column 12\)"):
        compile_sql("SELECT SUM(nope) FROM loans", CATALOG)
    with pytest.raises(PlanError, match="tables: loans"):
        compile_sql("SELECT COUNT(*) FROM elsewhere", CATALOG)


def test_filter_tree_keeps_sql_structure():
    q = compile_sql("SELECT COUNT(*) FROM loans WHERE city IN ('A') OR NOT amount < 3", CATALOG)
    assert isinstance(q.plan.filter, Binary) and q.plan.filter.op is BinaryOp.OR
    assert q.plan.filter.left == InList(Column("City"), ("A",))


def test_long_and_chains_compile_to_shallow_trees():
    from unseen.engine.query.expr import depth

    # 240 conditions of 3 nodes and 239 ANDs: within Limits.max_nodes (1 000).
    sql = "SELECT COUNT(*) FROM loans WHERE " + " AND ".join(f"amount > {i}" for i in range(240))
    q = compile_sql(sql, CATALOG)
    assert depth(q.plan.filter) <= 10  # balanced: log2(240) + the comparison's own levels
    sql = "SELECT COUNT(*) FROM loans WHERE " + " OR ".join(f"month = '{i}'" for i in range(240))
    assert depth(compile_sql(sql, CATALOG).plan.filter) <= 10
    # 1000 conditions are shallow too, but too large to send (a holder's cost grows with size).
    sql = "SELECT COUNT(*) FROM loans WHERE " + " AND ".join(f"amount > {i}" for i in range(1000))
    with pytest.raises(PlanError, match="3999 nodes, more than 1000"):
        compile_sql(sql, CATALOG)


@pytest.mark.parametrize("depth", [60, 3000])
def test_deeply_nested_sql_is_a_syntax_error_not_a_crash(depth):
    parens = "SELECT SUM(" + "(" * depth + "amount" + ")" * depth + ") FROM loans"
    with pytest.raises(SqlSyntaxError, match="nested too deeply"):
        compile_sql(parens, CATALOG)
    nots = "SELECT COUNT(*) FROM loans WHERE " + "NOT " * depth + "amount > 1"
    with pytest.raises((SqlSyntaxError, PlanError), match=r"nested (too deeply|deeper than 40)"):
        compile_sql(nots, CATALOG)
