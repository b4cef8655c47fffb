"""docs/sql.md cannot drift: every example of its dialect table compiles or is refused as stated."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.tpch import LINEITEM
from unseen.engine.errors import PlanError, PolicyError, UnsupportedError
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType, from_duckdb

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
USES = frozenset({"filter", "aggregate"})
DOMAINS = {"l_returnflag": ("A", "N", "R"), "l_linestatus": ("F", "O")}


def _catalog() -> Catalog:
    columns = []
    for name, kind in LINEITEM:
        sql_type = from_duckdb(kind) if kind != "INTEGER" else SqlType("INTEGER")
        domain = DOMAINS.get(name)
        uses = USES | {"group"} if domain else USES
        dated = sql_type.kind == "DATE" and name != "l_commitdate"  # one date without a range
        bounds = (dt.date(1992, 1, 1), dt.date(1998, 12, 31)) if dated else None
        columns.append(ColumnInfo(name, sql_type, uses, domain, bounds))
    return Catalog("", (TableInfo("lineitem", tuple(columns)),))


def _rows() -> list[tuple[str, str, str, str, str]]:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1] in ("yes", "no"):
            example = re.fullmatch(r"`(.*)`", cells[4])
            assert example, f"the example of {cells[0]!r} must be one `SQL` span"
            rows.append((cells[0], cells[1], cells[2], cells[3], example.group(1)))
    return rows


ROWS = _rows()


def test_the_table_is_there_and_covers_both_verdicts():
    assert len(ROWS) >= 25
    assert {r[1] for r in ROWS} == {"yes", "no"}
    for construct, verdict, why, instead, _ in ROWS:
        if verdict == "no":
            assert why and instead, f"{construct}: a refusal row says why and what instead"


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_each_example_compiles_or_is_refused_as_documented(row):
    _, verdict, _, _, sql = row
    if verdict == "yes":
        compile_sql(sql, _catalog())
        return
    with pytest.raises((UnsupportedError, PlanError, PolicyError)):
        compile_sql(sql, _catalog())
