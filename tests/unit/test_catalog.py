"""Merging holders' catalogs."""

from __future__ import annotations

from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo, merge
from unseen.engine.query.types import SqlType, widen


def _table(kind: str, uses=("filter", "aggregate"), domain=None, k=5, extra=()):
    cols = (ColumnInfo("x", SqlType.parse(kind), frozenset(uses), domain), *extra)
    return TableInfo("t", cols, k)


def test_types_widen_and_uses_intersect():
    merged = merge(
        [
            Catalog("a", (_table("INTEGER", ("filter", "aggregate", "group"), (1, 2), k=3),)),
            Catalog("b", (_table("FLOAT", ("filter", "aggregate"), (2, 3), k=7),)),
        ]
    )
    table = merged.table("T")
    assert table is not None and table.holders == ("a", "b")
    col = table.column("X")
    assert str(col.type) == "FLOAT"
    assert col.uses == {"filter", "aggregate"}
    assert col.domain == (1, 2, 3)
    assert table.min_group_size == 7


def test_domain_is_unpublished_if_any_holder_withholds_it():
    merged = merge(
        [Catalog("a", (_table("VARCHAR", domain=("p",)),)), Catalog("b", (_table("VARCHAR"),))]
    )
    assert merged.table("t").column("x").domain is None


def test_schema_conflicts_are_kept_per_table_not_fatal():
    merged = merge(
        [
            Catalog(
                "a", (_table("VARCHAR"), TableInfo("ok", (ColumnInfo("y", SqlType("INTEGER")),)))
            ),
            Catalog("b", (_table("DATE"),)),
        ]
    )
    assert merged.table("t") is None
    assert "VARCHAR at holder a but DATE at holder b" in merged.conflict("t")
    assert merged.table("ok") is not None


def test_missing_column_is_a_conflict():
    extra = (ColumnInfo("z", SqlType("INTEGER")),)
    merged = merge(
        [Catalog("a", (_table("INTEGER", extra=extra),)), Catalog("b", (_table("INTEGER"),))]
    )
    assert "holder b has no column z" in merged.conflict("t")


def test_widen_rules():
    assert widen(SqlType("DECIMAL", 10, 2), SqlType("INTEGER")) == SqlType("DECIMAL", 21, 2)
    assert widen(SqlType("DATE"), SqlType("TIMESTAMP")) == SqlType("TIMESTAMP")
    assert widen(SqlType("VARCHAR"), SqlType("INTEGER")) is None
