"""The one expression tree: every back end covers every node, and the new SQL constructs
compile to the nodes, types, scales and refusals the docs promise."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from decimal import Decimal

import pytest

from unseen.engine.data import pushdown
from unseen.engine.errors import PlanError, PolicyError, UnsupportedError
from unseen.engine.governance.voucher import plan_reads
from unseen.engine.query import expr as expr_module
from unseen.engine.query import finish, plan
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo, merge
from unseen.engine.query.expr import (
    AggRef,
    Binary,
    BinaryOp,
    Case,
    Column,
    DateTrunc,
    Extract,
    Func,
    GroupRef,
    Literal,
    OutputRef,
    column_roles,
)
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure, arithmetic_type
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType
from unseen.engine.transport import serde

ALL = frozenset({"filter", "aggregate", "group"})
LINEITEM = TableInfo(
    "lineitem",
    (
        ColumnInfo("flag", SqlType("VARCHAR"), ALL, ("A", "N", "R")),
        ColumnInfo("qty", SqlType("DECIMAL", 15, 2), ALL),
        ColumnInfo("price", SqlType("DECIMAL", 15, 2), ALL),
        ColumnInfo("disc", SqlType("DECIMAL", 15, 2), ALL),
        ColumnInfo("rate", SqlType("DECIMAL", 18, 6), ALL),
        ColumnInfo("n", SqlType("INTEGER"), ALL),
        ColumnInfo("x", SqlType("FLOAT"), ALL - {"group"}),
        ColumnInfo(
            "ship",
            SqlType("DATE"),
            ALL - {"group"},
            bounds=(dt.date(1992, 1, 1), dt.date(1998, 12, 31)),
        ),
        ColumnInfo("paid", SqlType("DATE"), ALL - {"group"}),
        ColumnInfo("secret", SqlType("INTEGER"), frozenset({"aggregate"})),
    ),
)
CATALOG = Catalog("", (LINEITEM,))

ROW_NODES = [
    n
    for n in expr_module.__all__
    if inspect.isclass(getattr(expr_module, n))
    and issubclass(getattr(expr_module, n), expr_module._Node)
    and n not in ("AggRef", "GroupRef", "OutputRef")
]


@pytest.mark.parametrize(
    "visitor",
    [plan._TypeChecker, pushdown._SqlWriter, serde._ExprWriter, finish._Evaluator],
    ids=lambda v: v.__module__,
)
def test_every_back_end_has_a_method_for_every_node(visitor):
    """A new node class without its visit_ method in each back end fails here."""
    missing = [n for n in ROW_NODES if not hasattr(visitor, f"visit_{n}")]
    if visitor is finish._Evaluator:  # finish never sees a table column
        missing = [n for n in missing if n != "Column"]
        missing += [
            n for n in ("AggRef", "GroupRef", "OutputRef") if not hasattr(visitor, f"visit_{n}")
        ]
    assert missing == []


def test_output_leaves_are_refused_inside_a_plan():
    bad = AggregatePlan("lineitem", None, (), (Measure(AggRef(0), Encoding.INTEGER),))
    with pytest.raises(PlanError, match="AggRef cannot appear"):
        plan.check_plan(bad, LINEITEM)


def test_interval_arithmetic_on_literals_folds_to_one_date():
    q = compile_sql(
        "SELECT COUNT(*) FROM lineitem WHERE ship <= date '1998-12-01' - interval '90' day "
        "AND ship < DATE '1994-01-31' + INTERVAL '1' MONTH "
        "AND paid > '1995-01-01'::DATE - INTERVAL '2 years'",
        CATALOG,
    )
    literals = {n.value for n in expr_module.walk(q.plan.filter) if isinstance(n, Literal)}
    assert {dt.date(1998, 9, 2), dt.date(1994, 2, 28), dt.date(1993, 1, 1)} <= literals


def test_interval_on_a_column_is_refused_with_the_rewrite():
    with pytest.raises(UnsupportedError) as info:
        compile_sql(
            "SELECT COUNT(*) FROM lineitem WHERE ship + INTERVAL '1' DAY < DATE '1995-01-01'",
            CATALOG,
        )
    message = str(info.value)
    assert "INTERVAL arithmetic on a column" in message and "line 1, column 37" in message
    assert "instead, move the interval to the constant side" in message


def test_decimal_products_carry_the_sum_of_scales():
    q = compile_sql(
        "SELECT SUM(price * (1 - disc)), SUM(price * (1 - disc) * (1 + disc)), SUM(rate * qty), "
        "SUM(qty + rate) FROM lineitem",
        CATALOG,
    )
    scales = [(m.encoding, m.decimal_scale) for m in q.plan.measures]
    assert scales == [
        (Encoding.DECIMAL, 4),
        (Encoding.DECIMAL, 6),
        (Encoding.DECIMAL, 8),
        (Encoding.DECIMAL, 6),
    ]


def test_a_product_beyond_scale_38_is_refused_with_a_fix():
    wide = SqlType("DECIMAL", 38, 20)
    with pytest.raises(PlanError, match="CAST a factor"):
        arithmetic_type(BinaryOp.MUL, wide, wide)


def test_filter_and_case_compile_to_one_row_expression_per_measure():
    q = compile_sql(
        "SELECT COUNT(*) FILTER (WHERE n > 3), SUM(qty) FILTER (WHERE flag = 'A'), "
        "SUM(CASE WHEN flag = 'R' THEN price ELSE 0 END), AVG(COALESCE(x, 0)), "
        "COUNT(NULLIF(n, 0)) FROM lineitem",
        CATALOG,
    )
    exprs = [m.expr for m in q.plan.measures]
    assert exprs[0] == Case(((Binary(BinaryOp.GT, Column("n"), Literal(3)), Literal(1)),))
    assert isinstance(exprs[1], Case) and exprs[1].default is None
    assert isinstance(exprs[2], Case) and exprs[2].default == Literal(0)
    assert exprs[3] == Func("coalesce", (Column("x"), Literal(0)))
    assert exprs[4] == Func("nullif", (Column("n"), Literal(0)))
    assert [a.function for a in q.aggregates] == ["count", "sum", "sum", "avg", "count"]


def test_group_by_derived_keys_takes_domains_from_published_information():
    q = compile_sql(
        "SELECT EXTRACT(year FROM ship) AS y, date_trunc('quarter', ship), "
        "CASE WHEN n < 10 THEN 'small' WHEN n < 100 THEN 'mid' END AS size, COUNT(*) "
        "FROM lineitem GROUP BY 1, 2, size ORDER BY y",
        CATALOG,
    )
    years, quarters, sizes = (g.domain for g in q.plan.groups)
    assert years == tuple(range(1992, 1999))
    assert quarters[0] == dt.datetime(1992, 1, 1) and len(quarters) == 28
    assert sizes == ("small", "mid", None)
    assert isinstance(q.plan.groups[0].expr, Extract)
    assert isinstance(q.plan.groups[1].expr, DateTrunc)
    assert q.outputs[:3] == (GroupRef(0), GroupRef(1), GroupRef(2))
    assert q.order[0].expr == OutputRef(0)


def test_group_by_a_date_without_published_range_says_what_to_do():
    with pytest.raises(PlanError, match="publishes no date range"):
        compile_sql("SELECT EXTRACT(year FROM paid), COUNT(*) FROM lineitem GROUP BY 1", CATALOG)


def test_group_by_case_with_column_results_is_refused():
    with pytest.raises(UnsupportedError, match="make every THEN and ELSE a literal label"):
        compile_sql(
            "SELECT CASE WHEN n > 1 THEN flag END, COUNT(*) FROM lineitem GROUP BY 1", CATALOG
        )


@pytest.mark.parametrize(
    "sql, construct, why, instead",
    [
        ("SELECT MIN(n) FROM lineitem", "MIN", "one row's value", "COUNT(*) ... WHERE"),
        ("SELECT MAX(n) FROM lineitem", "MAX", "one row's value", "histogram"),
        ("SELECT MEDIAN(n) FROM lineitem", "MEDIAN", "one row's value", "histogram"),
        (
            "SELECT quantile_cont(n, 0.9) FROM lineitem",
            "PERCENTILE_CONT",
            "one row's value",
            "histogram",
        ),
        ("SELECT COUNT(DISTINCT flag) FROM lineitem", "COUNT(DISTINCT", "not additive", "GROUP BY"),
        ("SELECT SUM(DISTINCT n) FROM lineitem", "SUM(DISTINCT", "not additive", "GROUP BY"),
        ("SELECT COUNT(*) FROM lineitem WHERE upper(flag) = 'A'", "function UPPER", "", "CASE"),
    ],
)
def test_refusals_say_what_why_where_and_what_instead(sql, construct, why, instead):
    with pytest.raises(UnsupportedError) as info:
        compile_sql(sql, CATALOG)
    error = info.value
    assert construct in error.construct and error.position is not None
    assert why in error.why and instead in error.instead
    assert f"line {error.position[0]}, column {error.position[1]}" in str(error)


def test_condition_columns_are_filter_reads():
    values, conditions = column_roles(
        Case(((Binary(BinaryOp.GT, Column("secret"), Literal(1)), Column("n")),))
    )
    assert values == {"n"} and conditions == {"secret"}
    assert column_roles(Func("nullif", (Column("n"), Literal(0)))) == ({"n"}, {"n"})
    q = compile_sql("SELECT SUM(n) FILTER (WHERE flag = 'A') FROM lineitem", CATALOG)
    reads = plan_reads(q.plan)["lineitem"]
    assert reads["n"] == frozenset({"aggregate"}) and reads["flag"] == frozenset({"filter"})


def test_an_aggregate_only_column_cannot_hide_in_a_condition():
    for sql in (
        "SELECT SUM(n) FILTER (WHERE secret > 5) FROM lineitem",
        "SELECT SUM(CASE WHEN secret > 5 THEN 1 ELSE 0 END) FROM lineitem",
        "SELECT COUNT(NULLIF(secret, 5)) FROM lineitem",
    ):
        with pytest.raises(PolicyError, match="secret may not be used to filter"):
            compile_sql(sql, CATALOG)
    compile_sql("SELECT SUM(secret) FROM lineitem", CATALOG)  # aggregating stays allowed


def test_group_domain_of_a_case_key_reads_columns_as_filters():
    key = Case(((Binary(BinaryOp.GT, Column("x"), Literal(1)), Literal("hi")),), Literal("lo"))
    group = GroupColumn("bucket", ("hi", "lo"), key)
    # x may not be grouped but may be filtered: a CASE with literal labels is as many WHEREs.
    plan.check_plan(AggregatePlan("lineitem", None, (group,), ()), LINEITEM)
    leaky = GroupColumn("raw", (1.0,), Func("abs", (Column("x"),)))
    with pytest.raises((PlanError, PolicyError)):
        plan.check_plan(AggregatePlan("lineitem", None, (leaky,), ()), LINEITEM)


def test_catalog_merge_widens_date_bounds_and_drops_them_when_a_host_is_silent():
    def host(name, bounds):
        col = ColumnInfo("d", SqlType("DATE"), ALL, None, bounds)
        return Catalog(name, (TableInfo("t", (col,)),))

    a = host("a", (dt.date(1992, 1, 1), dt.date(1995, 12, 31)))
    b = host("b", (dt.date(1990, 1, 1), dt.date(1993, 12, 31)))
    merged = merge([a, b]).tables[0].columns[0]
    assert merged.bounds == (dt.date(1990, 1, 1), dt.date(1995, 12, 31))
    assert merge([a, host("c", None)]).tables[0].columns[0].bounds is None
    assert serde.catalog_from_proto(serde.catalog_to_proto(merge([a, b]))) == merge([a, b])


def test_output_expressions_evaluate_case_extract_and_cast():
    row = finish.Row((dt.date(2021, 5, 17),), [Decimal("2.50"), None], [], False)
    case = Case(((Binary(BinaryOp.GT, AggRef(0), Literal(2)), Literal("big")),), Literal("small"))
    assert finish.evaluate(case, row) == "big"
    assert finish.evaluate(Extract("quarter", GroupRef(0)), row) == 2
    assert finish.evaluate(DateTrunc("month", GroupRef(0)), row) == dt.datetime(2021, 5, 1)
    assert finish.evaluate(Func("coalesce", (AggRef(1), Literal(0))), row) == 0
    assert finish.evaluate(Func("nullif", (AggRef(0), Literal(Decimal("2.5")))), row) is None
    assert finish.evaluate(expr_module.Cast(AggRef(0), "INTEGER"), row) == 3
    like = expr_module.Like(Literal("Port O'Hara"), "port%", case_insensitive=True)
    assert finish.evaluate(like, row) is True


def test_calendar_functions_of_a_group_column_are_finished_by_the_analyst():
    catalog = Catalog(
        "", (TableInfo("t", (ColumnInfo("d", SqlType("DATE"), ALL, (dt.date(2021, 3, 4),)),)),)
    )
    q = compile_sql(
        "SELECT EXTRACT(year FROM d), date_trunc('month', d) FROM t GROUP BY d", catalog
    )
    assert q.outputs == (Extract("year", GroupRef(0)), DateTrunc("month", GroupRef(0)))
    row = finish.Row((dt.date(2021, 3, 4),), [], [], False)
    assert [finish.evaluate(o, row) for o in q.outputs] == [2021, dt.datetime(2021, 3, 1)]


def test_where_on_a_derived_key_narrows_its_domain_or_stands_in_for_a_range():
    q = compile_sql(
        "SELECT EXTRACT(year FROM paid) AS y, date_trunc('month', ship) AS m, COUNT(*) "
        "FROM lineitem WHERE EXTRACT(year FROM paid) IN (1994, 1995) "
        "AND date_trunc('month', ship) IN (DATE '1995-01-01', DATE '1995-02-01') GROUP BY 1, 2",
        CATALOG,
    )
    years, months = (g.domain for g in q.plan.groups)
    assert years == (1994, 1995)  # paid publishes no range: the WHERE lists the groups
    assert months == (dt.datetime(1995, 1, 1), dt.datetime(1995, 2, 1))
    plan.check_plan(q.plan, LINEITEM)  # the holder derives the same domain from the WHERE
    narrower = dataclasses.replace(q.plan.groups[0], domain=(1994,))
    crafted = dataclasses.replace(q.plan, groups=(narrower, q.plan.groups[1]))
    with pytest.raises(PlanError, match="leaves out values"):
        plan.check_plan(crafted, LINEITEM)


def test_a_daily_calendar_beyond_the_group_limit_is_refused_unless_the_where_lists_days():
    wide = TableInfo(
        "t",
        (
            ColumnInfo(
                "d", SqlType("DATE"), ALL, None, (dt.date(1900, 1, 1), dt.date(2099, 12, 31))
            ),
        ),
    )
    catalog = Catalog("", (wide,))
    with pytest.raises(PlanError, match="more than 16384 groups"):
        compile_sql("SELECT date_trunc('day', d), COUNT(*) FROM t GROUP BY 1", catalog)
    q = compile_sql(
        "SELECT date_trunc('day', d) AS day, COUNT(*) FROM t "
        "WHERE date_trunc('day', d) IN (DATE '2020-02-29', DATE '2101-01-01') GROUP BY day",
        catalog,
    )
    assert q.plan.groups[0].domain == (dt.datetime(2020, 2, 29),)  # 2101 is outside the range
    plan.check_plan(q.plan, wide)
