"""Finishing aggregates and SQL's last steps after decryption."""

from __future__ import annotations

import math
from fractions import Fraction

from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.finish import finish
from unseen.engine.query.layout import GroupMoments, MeasureMoments
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType

ALL = frozenset({"filter", "aggregate", "group"})
CATALOG = Catalog(
    "",
    (
        TableInfo(
            "t",
            (
                ColumnInfo("g", SqlType("VARCHAR"), ALL, ("a", "b", "c")),
                ColumnInfo("x", SqlType("INTEGER"), ALL),
                ColumnInfo("p", SqlType("DECIMAL", 10, 2), ALL),
            ),
        ),
    ),
)


def _mm(rows, count, total, m2=None):
    return GroupMoments(
        rows, (MeasureMoments(count, Fraction(total), None if m2 is None else Fraction(m2)),)
    )


def test_sql_null_rules_for_empty_and_single_value_groups():
    q = compile_sql(
        "SELECT g, COUNT(*), COUNT(x), SUM(x), AVG(x), VAR_SAMP(x), VAR_POP(x) "
        "FROM t GROUP BY g ORDER BY g",
        CATALOG,
    )
    result = finish(q, [_mm(3, 0, 0, 0), _mm(1, 1, 5, 0), _mm(0, 0, 0, 0)], set(), {})
    assert result.rows == [
        ["a", 3, 0, None, None, None, None],
        ["b", 1, 1, 5, 5.0, None, 0.0],
    ]  # group c exists nowhere


def test_division_follows_duckdb_ieee_semantics():
    q = compile_sql(
        "SELECT SUM(x) / COUNT(*), SUM(x) / (COUNT(*) - COUNT(*)), (SUM(x) - SUM(x)) / 0 FROM t",
        CATALOG,
    )
    row = finish(q, [_mm(4, 4, 10)], set(), {}).rows[0]
    assert row[0] == 2.5 and row[1] == math.inf and math.isnan(row[2])


def test_round_is_half_away_from_zero_like_duckdb():
    q = compile_sql(
        "SELECT ROUND(SUM(x) / 8.0, 2), ROUND(-SUM(x) / 8.0), ROUND(SUM(p), 1) FROM t", CATALOG
    )
    moments = GroupMoments(
        1, (MeasureMoments(1, Fraction(1)), MeasureMoments(1, Fraction(125, 100)))
    )
    row = finish(q, [moments], set(), {}).rows[0]
    assert row[0] == 0.13 and row[1] == -0.0 and str(row[2]) == "1.3"


def test_having_order_limit_and_suppression():
    q = compile_sql(
        "SELECT g, SUM(x) AS s FROM t GROUP BY g HAVING SUM(x) > 1 ORDER BY s DESC LIMIT 2", CATALOG
    )
    moments = [_mm(9, 9, 1), _mm(9, 9, 50), _mm(9, 9, 20)]
    result = finish(q, moments, {1}, {"holders": ["h"]})
    # b is suppressed: shown with NULL cells, kept despite HAVING, sorted last.
    assert result.rows == [["c", 20], ["b", None]]
    assert result.meta["suppressed"] == [{"group": {"g": "b"}}]


def test_suppressed_groups_say_why():
    q = compile_sql("SELECT g, SUM(x) FROM t GROUP BY g ORDER BY g", CATALOG)
    moments = [_mm(9, 9, 1), _mm(9, 9, 50), _mm(9, 9, 20)]
    result = finish(q, moments, {0, 1}, {}, reasons={0: "k", 1: "dominance"})
    assert result.meta["suppressed"] == [
        {"group": {"g": "a"}, "reason": "k"},
        {"group": {"g": "b"}, "reason": "dominance"},
    ]
    assert "(2 group(s) suppressed; rules: dominance, k)" in result.to_table()


def test_three_valued_logic_in_having():
    q = compile_sql("SELECT g FROM t GROUP BY g HAVING AVG(x) > 1 OR COUNT(*) > 5", CATALOG)
    result = finish(q, [_mm(9, 0, 0), _mm(2, 0, 0), _mm(3, 3, 9)], set(), {})
    assert result.rows == [["a"], ["c"]]
