"""Local SQL is built from ASTs with bound parameters: the injection suite."""

from __future__ import annotations

import sqlite3
from fractions import Fraction

import pytest
import sqlglot
from sqlglot import exp

from tests.shards import write_shard
from unseen.engine.data.aggregate import compute_moments
from unseen.engine.data.pushdown import aggregate_query, build_aggregate_query
from unseen.engine.data.source import open_source
from unseen.engine.governance.policy import quickstart_table
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.suppression import SPREAD_STATS
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.expr import Column
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure, SlotCodec
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType

HOSTILE = [
    "x'); DROP TABLE t; --",
    "' OR '1'='1",
    'a"b',
    "\\'; SELECT 1; --",
    "\u202e\u0000 nul and bidi",
    "$p1",
    ":p1",
    "?",
]
SCHEMA = [('we"ird col', "VARCHAR"), ("v", "BIGINT")]


@pytest.fixture(params=[".duckdb", ".sqlite", ".csv"])
def source(request, tmp_path):
    rows = [(h, i) for i, h in enumerate(HOSTILE)] + [("plain", 100)]
    path = write_shard(tmp_path / f"t{request.param}", SCHEMA, rows, table='tab"le')
    return open_source('tab"le', path), path


def test_hostile_literals_are_only_ever_values(source):
    src, path = source
    table = quickstart_table(src, k=1)
    catalog = Catalog("h", (table,))
    for text in HOSTILE:
        escaped = text.replace("'", "''")
        q = compile_sql(
            f'SELECT SUM(v), COUNT(*) FROM "tab""le" WHERE "we""ird col" = \'{escaped}\'', catalog
        )
        local = build_aggregate_query(q.plan, table, src.dialect, src.sql_name)
        # The value is a bound parameter: the SQL text holds no string literal at all.
        assert "'" not in local.sql
        assert text in local.params.values()
        moments = compute_moments(q.plan, src, table)
        (group,) = moments.values()
        assert group.rows == 1 and group.measures[0].total == HOSTILE.index(text)
    # The table is intact after all of it.
    assert (
        sum(
            m.rows
            for m in compute_moments(
                compile_sql('SELECT COUNT(*) FROM "tab""le"', catalog).plan, src, table
            ).values()
        )
        == 9
    )
    if path.suffix == ".sqlite":
        with sqlite3.connect(path) as con:
            assert con.execute('SELECT COUNT(*) FROM "tab""le"').fetchone()[0] == 9


def test_hostile_group_domain_values_are_parameters(source):
    src, _ = source
    table = quickstart_table(src, k=1)
    plan = AggregatePlan(
        'tab"le',
        None,
        (GroupColumn('we"ird col', (*tuple(HOSTILE), "plain")),),
        (Measure(Column("v"), Encoding.INTEGER),),
        SlotCodec(),
    )
    moments = compute_moments(plan, src, table)
    assert {i: m.measures[0].total for i, m in moments.items()} == {
        i: (i if i < len(HOSTILE) else 100) for i in range(len(HOSTILE) + 1)
    }


def test_identifiers_are_quoted_by_sqlglot(source):
    src, _ = source
    table = quickstart_table(src, k=1)
    q = compile_sql(
        'SELECT "we""ird col", COUNT(*) FROM "tab""le" WHERE "we""ird col" IN '
        "('plain') GROUP BY 1",
        Catalog("h", (table,)),
    )
    local = build_aggregate_query(q.plan, table, src.dialect, src.sql_name)
    assert '"we""ird col"' in local.sql
    assert exp.to_identifier(src.sql_name, quoted=True).sql(src.dialect) in local.sql


def _table(dp: DpPolicy | None = None) -> TableInfo:
    columns = (
        ColumnInfo("u", SqlType.parse("VARCHAR"), frozenset({"filter"})),
        ColumnInfo("v", SqlType.parse("INTEGER"), frozenset({"aggregate"})),
    )
    return TableInfo("t", columns, dp=dp)


_SUM_V = AggregatePlan("t", None, (), (Measure(Column("v"), Encoding.INTEGER),))


@pytest.mark.parametrize("dialect", ["postgres", "mysql", "spark"])
def test_warehouses_ask_for_the_largest_value_in_place_of_the_second(dialect):
    # No portable top-2 aggregate: MAX stands in for the second largest, which can only
    # make the p% rule stricter (x2 <= x1). DuckDB's max(x, 2) would fail in these engines.
    query = build_aggregate_query(_SUM_V, _table(), dialect, second_largest=True)
    assert "LIST_EXTRACT" not in query.sql.upper()
    (spread,) = query.spread_columns
    assert spread is not None and None not in spread
    selects = sqlglot.parse_one(query.sql, read=dialect).expressions
    stat = dict(zip(SPREAD_STATS, (selects[i] for i in spread), strict=True))
    assert isinstance(stat["abs_second"], exp.Max) and stat["abs_second"] == stat["abs_max"]
    assert isinstance(stat["second_max"], exp.Max) and stat["second_max"] == stat["max"]


def test_a_dp_table_asks_for_no_dominance_statistics():
    policy = DpPolicy(
        unit="u", max_rows=1, rho=Fraction(1), bounds={"v": (Fraction(0), Fraction(9))}
    )
    assert build_aggregate_query(_SUM_V, _table(), "duckdb").spread_columns != (None,)
    assert build_aggregate_query(_SUM_V, _table(policy), "duckdb").spread_columns == (None,)


def test_remembered_sql_is_the_sql_that_would_be_built(source):
    # The holder remembers a plan's SQL (issue 9, performance): the same plan and
    # policy give the text build_aggregate_query gives, with the caller's own
    # parameters; another literal or another policy is built afresh.
    src, _ = source
    table = quickstart_table(src, k=1)
    catalog = Catalog("h", (table,))
    for text in HOSTILE[:3]:
        escaped = text.replace("'", "''")
        plan = compile_sql(
            f'SELECT SUM(v), COUNT(*) FROM "tab""le" WHERE "we""ird col" = \'{escaped}\'', catalog
        ).plan
        built = build_aggregate_query(plan, table, src.dialect, src.sql_name)
        first = aggregate_query(plan, table, src.dialect, src.sql_name)
        first.params.clear()  # a caller's change stays its own
        again = aggregate_query(plan, table, src.dialect, src.sql_name)
        assert (again.sql, again.params) == (built.sql, built.params)
        assert text in again.params.values()
    policy = DpPolicy(
        unit="u", max_rows=1, rho=Fraction(1), bounds={"v": (Fraction(0), Fraction(9))}
    )
    plain, dp = _table(), _table(policy)
    assert aggregate_query(_SUM_V, plain, "duckdb").sql == (
        build_aggregate_query(_SUM_V, plain, "duckdb").sql
    )
    assert aggregate_query(_SUM_V, dp, "duckdb").sql == (
        build_aggregate_query(_SUM_V, dp, "duckdb").sql
    )
    assert aggregate_query(_SUM_V, dp, "duckdb").sql != aggregate_query(_SUM_V, plain, "duckdb").sql
