"""Write test tables in every source format from one schema and list of rows, and keep
their plaintext twin in DuckDB to check encrypted answers against."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from sqlglot import exp

from unseen.oracle.plaintext import Verdict, check_answer

if TYPE_CHECKING:
    from unseen.engine.client import Client
    from unseen.engine.query.result import Result

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
        # One statement with one list per column: executemany runs one INSERT per
        # row, which takes minutes for a few thousand rows of TPC-H's width.
        columns = ", ".join(f"unnest(${i + 1}::{kind}[])" for i, (_, kind) in enumerate(schema))
        target = exp.table_(table, quoted=True).sql("duckdb")
        con.execute(
            f"INSERT INTO {target} SELECT {columns}",
            [[r[i] for r in rows] for i in range(len(schema))],
        )


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


@dataclass
class Reference:
    """The plaintext twin of a horizontally split table: each holder's rows as
    ``<table>@<holder>`` (the ``shards``) and all of them pooled as ``<table>``."""

    con: duckdb.DuckDBPyConnection
    shards: list[str]

    def check(self, client: Client, sql: str, k: int) -> tuple[Result, list[Any], Verdict]:
        """Run ``sql`` encrypted through ``client`` and here: the encrypted answer, the
        plaintext rows and :func:`unseen.oracle.plaintext.check_answer`'s verdict."""
        compiled = client.compile(sql)
        result = client.query(sql)
        cursor = self.con.cursor()  # a connection of its own: callers check from many threads
        theirs, verdict = check_answer(
            compiled, result, lambda q: cursor.sql(q).fetchall(), self.shards, k
        )
        return result, theirs, verdict


def write_shards(
    schema: Schema,
    shards: Mapping[str, tuple[Path, Sequence[Sequence[Any]]]],
    table: str = "t",
) -> tuple[dict[str, dict[str, Path]], Reference]:
    """Write each holder's rows of ``table`` (``{holder: (path, rows)}``) and their reference.

    Returns the holders' ``{table: path}`` maps, as the federations take them, and the
    :class:`Reference`.
    """
    con = duckdb.connect()
    holders: dict[str, dict[str, Path]] = {}
    pooled: list[Sequence[Any]] = []
    for holder, (path, rows) in shards.items():
        holders[holder] = {table: write_shard(path, schema, rows, table)}
        load_duckdb(con, schema, rows, f"{table}@{holder}")
        pooled += rows
    load_duckdb(con, schema, pooled, table)
    return holders, Reference(con, [f"{table}@{holder}" for holder in shards])
