"""unseen.engine.privacy.suppression's rules, and the dominance statistics each engine computes for
them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.shards import write_shard
from unseen.engine.data.aggregate import compute_groups, suppression_rules
from unseen.engine.data.source import open_source
from unseen.engine.governance.policy import quickstart_table
from unseen.engine.privacy.suppression import (
    CellFacts,
    Spread,
    SuppressionRules,
    dominance,
    dominated,
    failing_groups,
    first_reasons,
    min_rows,
    needs_second_largest,
    published_quantities,
)
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType

SCHEMA = [("g", "VARCHAR"), ("v", "DOUBLE"), ("n", "BIGINT")]


TABLE = TableInfo(
    "t",
    (
        ColumnInfo("g", SqlType("VARCHAR"), frozenset({"group", "filter"}), ("a", "b")),
        ColumnInfo("v", SqlType("FLOAT"), frozenset({"aggregate", "filter"})),
        ColumnInfo("n", SqlType("INTEGER"), frozenset({"aggregate", "filter"})),
    ),
)


def _plan(sql: str):
    return compile_sql(sql, Catalog("h", (TABLE,))).plan


def spread(values) -> Spread:
    top = [*sorted((abs(v) for v in values), reverse=True), 0.0, 0.0]
    return Spread(float(sum(abs(v) for v in values)), top[0], top[1])


def test_the_p_percent_rule():
    # Ten equal contributions: the other eight hide the largest by far more than 10%.
    assert not dominated(spread([5] * 10), 10)
    # One row is almost everything.
    assert dominated(spread([1e6, 1, 1, 1, 1]), 10)
    # Two rows: the second largest knows the largest exactly.
    assert dominated(spread([3, 4]), 10)
    # The boundary: rest = p% of x1 passes, a hair less fails.
    assert not dominated(Spread(100 + 50 + 5, 100, 50), 5)
    assert dominated(Spread(100 + 50 + 4.99, 100, 50), 5)
    # Raising p tightens: 9% of x1 hidden passes p = 5, fails p = 10.
    assert not dominated(Spread(100 + 50 + 9, 100, 50), 5)
    assert dominated(Spread(100 + 50 + 9, 100, 50), 10)
    # All zero: nothing to disclose.
    assert not dominated(spread([0, 0, 0]), 10)


def test_published_quantities_and_the_row_floor():
    plan = _plan("SELECT g, SUM(v), AVG(v), STDDEV_SAMP(n), COUNT(n), COUNT(*) FROM t GROUP BY g")
    # v: count + sum; n: count + sum + square (COUNT(n) shares n's measure).
    assert published_quantities(plan) == 5
    assert min_rows(plan, SuppressionRules(k=5)) == 10
    assert min_rows(plan, SuppressionRules(k=20)) == 20


def test_failing_groups_names_the_first_rule_that_fails():
    plan = _plan("SELECT g, SUM(v) FROM t GROUP BY g")  # q = 2: at least 4 rows (k = 3 here)
    even = spread([10] * 6)
    cells = {
        0: CellFacts(2, (even,)),  # k
        1: CellFacts(6, (spread([1e9, 1, 1, 1, 1, 1]),)),  # dominance
        2: CellFacts(6, (even,)),  # passes
        3: CellFacts(0, (None,)),  # empty: nothing to suppress
    }
    assert failing_groups(cells, plan, SuppressionRules(k=3)) == {0: "k", 1: "dominance"}
    assert failing_groups({4: CellFacts(3, (even,))}, plan, SuppressionRules(k=3, margin=2)) == {
        4: "moments"
    }
    # Count-only measures have no magnitudes to dominate.
    counts = _plan("SELECT g, COUNT(v) FROM t GROUP BY g")
    assert failing_groups({0: CellFacts(9, (None,))}, counts, SuppressionRules(k=3)) == {}


def test_first_reasons_prefers_the_earliest_rule():
    reported = [{1: "moments", 2: "dominance"}, {1: "k"}, {}]
    assert first_reasons([1, 2, 3], reported) == ("k", "dominance", "")


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite", ".csv"])
def test_each_engine_computes_the_two_largest_contributions(tmp_path, suffix):
    # Group a's largest value is near half its total: only x2 settles the p% rule,
    # so the holder asks the engine for it.
    rows = [("a", -7.5, 1), ("a", 0.5, 2), ("a", None, 3), ("a", 7.25, 4), ("b", 2.0, 5)]
    source = open_source("t", write_shard(tmp_path / f"t{suffix}", SCHEMA, rows))
    table = quickstart_table(source, k=1)
    plan = compile_sql("SELECT g, SUM(v), COUNT(n) FROM t GROUP BY g", Catalog("h", (table,))).plan
    groups = compute_groups(plan, source, table)
    index = {value: i for i, value in enumerate(plan.groups[0].domain)}
    a, b = groups.cells[index["a"]], groups.cells[index["b"]]
    # |x|, x - min and max - x of -7.5, 0.5 and 7.25.
    assert a.rows == 4 and a.spreads[0] == (
        Spread(15.25, 7.5, 7.25),
        Spread(22.75, 14.75, 8.0),
        Spread(21.5, 14.75, 6.75),
    )
    # One value: no second largest, and no distance to itself.
    assert b.spreads[0] == (Spread(2.0, 2.0, 0.0), Spread(0.0, 0.0, 0.0), Spread(0.0, 0.0, 0.0))
    measure_of_n = next(i for i, m in enumerate(plan.measures) if not m.want_sum)
    assert a.spreads[measure_of_n] is None


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_dominance_is_the_rule_as_written(values):
    arr = np.abs(np.array(values))
    top = np.sort(arr)[::-1]
    x1, x2 = top[0], (top[1] if len(top) > 1 else 0.0)
    assert dominated(spread(values), 10) == bool(arr.sum() - x1 - x2 < 0.1 * x1)


def test_ordinary_groups_never_need_the_second_largest():
    plan = _plan("SELECT g, SUM(v) FROM t GROUP BY g")
    rules = SuppressionRules(k=5)
    # Largest value well below half the total: decided without x2.
    ordinary = {0: CellFacts(50, (Spread(500.0, 30.0),))}
    assert not needs_second_largest(ordinary, rules)
    assert failing_groups(ordinary, plan, rules) == {}
    # One value near half the total: x2 decides.
    assert needs_second_largest({0: CellFacts(50, (Spread(100.0, 49.0),))}, rules)
    # ... unless the k rule already suppresses the group.
    assert not needs_second_largest({0: CellFacts(3, (Spread(100.0, 49.0),))}, rules)
    with pytest.raises(ValueError, match="second largest"):
        failing_groups({0: CellFacts(50, (Spread(100.0, 49.0),))}, plan, rules)


@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=30))
def test_deciding_without_the_second_largest_agrees_with_the_full_rule(values):
    full = spread(values)
    partial = Spread(full.total, full.largest)
    verdict = dominance(partial, 10)
    assert verdict is None or verdict == dominated(full, 10)


def test_a_column_policy_can_tighten_p_for_the_measures_reading_it(tmp_path):
    # The rest of the group hides the largest value by 15%: enough for p = 10, not for 20.
    # Eight rows: two measures publish four quantities per group.
    rows = [("a", v, 1) for v in (100.0, 50.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0)]
    source = open_source("t", write_shard(tmp_path / "t.parquet", SCHEMA, rows))
    table = quickstart_table(source, k=1)
    sql = "SELECT g, SUM(v), SUM(n) FROM t GROUP BY g"
    plan = compile_sql(sql, Catalog("h", (table,))).plan
    groups = compute_groups(plan, source, table)
    assert failing_groups(groups.cells, plan, suppression_rules(table, plan)) == {}
    strict_v = tuple(
        dataclasses.replace(c, dominance_p=20.0) if c.name == "v" else c for c in table.columns
    )
    strict = dataclasses.replace(table, columns=strict_v, _index={})
    assert suppression_rules(strict, plan).measure_p == (20.0, 10.0)
    assert failing_groups(groups.cells, plan, suppression_rules(strict, plan)) == {0: "dominance"}
    # The table's own p applies to every measure.
    table_wide = dataclasses.replace(table, dominance_p=20.0, _index={})
    assert suppression_rules(table_wide, plan).measure_p == (20.0, 20.0)
