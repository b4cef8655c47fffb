"""Write test tables in every source format from one schema and list of rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

Schema = Sequence[tuple[str, str]]  # (column, DuckDB type)

_SQLITE_TYPES = {
    "BIGINT": "INTEGER",
    "INTEGER": "INTEGER",
    "DOUBLE": "REAL",
    "VARCHAR": "TEXT",
    "DATE": "DATE",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMP",
}


def _create(schema: Schema, table: str, dialect: str) -> str:
    if dialect == "sqlite":
        # Declared types verbatim: sqlglot would rewrite BOOLEAN/DATE to SQLite's storage types.
        defs = ", ".join(
            f"{exp.to_identifier(name, quoted=True).sql('sqlite')} "
            f"{_SQLITE_TYPES.get(kind, 'REAL' if kind.startswith('DECIMAL') else kind)}"
            for name, kind in schema
        )
        return f"CREATE TABLE {exp.to_identifier(table, quoted=True).sql('sqlite')} ({defs})"
    defs_ = [
        exp.ColumnDef(
            this=exp.to_identifier(name, quoted=True),
            kind=exp.DataType.build(kind, dialect="duckdb"),
        )
        for name, kind in schema
    ]
    return exp.Create(
        this=exp.Schema(this=exp.table_(table, quoted=True), expressions=defs_), kind="TABLE"
    ).sql(dialect)


def _insert(schema: Schema, table: str, dialect: str) -> str:
    return exp.insert(
        exp.values([tuple(exp.Placeholder() for _ in schema)]),
        exp.table_(table, quoted=True),
        columns=[n for n, _ in schema],
    ).sql(dialect)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def load_duckdb(
    con: duckdb.DuckDBPyConnection, schema: Schema, rows: Sequence[Sequence[Any]], table: str
) -> None:
    con.execute(_create(schema, table, "duckdb"))
    if rows:
        con.executemany(_insert(schema, table, "duckdb"), [list(r) for r in rows])


def write_shard(
    path: Path, schema: Schema, rows: Sequence[Sequence[Any]], table: str = "t"
) -> Path:
    """Write ``rows`` to ``path``; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if path.suffix == ".sqlite":
        with sqlite3.connect(path) as con:
            con.execute(_create(schema, table, "sqlite"))
            clean = [[_sqlite_value(v) for v in r] for r in rows]
            con.executemany(_insert(schema, table, "sqlite"), clean)
        con.close()
        return path
    if path.suffix == ".duckdb":
        con = duckdb.connect(str(path))
        load_duckdb(con, schema, rows, table)
        con.close()
        return path
    con = duckdb.connect()
    load_duckdb(con, schema, rows, table)
    relation = con.table(table)
    if path.suffix == ".parquet":
        relation.write_parquet(str(path))
    else:
        relation.write_csv(str(path))
    con.close()
    return path
