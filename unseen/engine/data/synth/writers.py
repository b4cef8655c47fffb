"""Writing tables: as DuckDB relations and as CSV, Parquet, DuckDB or SQLite files.

Latent ``_`` columns are never written and NaN becomes NULL. Lazy string columns
are turned into strings by DuckDB while it writes, in the SQL it runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import numpy as np
from sqlglot import exp

from unseen.engine.data.synth.columns import Column, Columns, Digits, Lookup, Text, materialise

__all__ = ["public_relation", "write_columns", "write_table"]


def public_relation(
    con: duckdb.DuckDBPyConnection, table: Mapping[str, Column], view: str
) -> duckdb.DuckDBPyRelation:
    """Register ``table``'s arrays as ``view`` and select its public columns as SQL types.

    Latent ``_`` columns are left out. Floats: NaN becomes NULL. Numpy strings
    (DuckDB reads them as ENUMs) become VARCHAR. ``datetime64[D]`` becomes DATE,
    other datetimes TIMESTAMP. Lazy string columns are concatenated from their
    parts by DuckDB.
    """
    arrays: dict[str, np.ndarray] = {}

    def source(values: np.ndarray) -> exp.Expression:
        name = f"c{len(arrays)}"
        arrays[name] = values
        return exp.column(name, quoted=True)

    items = []
    for name, values in table.items():
        if name.startswith("_"):
            continue
        column: exp.Expression
        if isinstance(values, Text):
            column = _text_sql(values, source)
        elif values.dtype.kind == "f":
            ref = source(values)
            column = exp.If(this=exp.func("isnan", ref.copy()), true=exp.Null(), false=ref)
        elif values.dtype.kind in "US":
            column = exp.cast(source(values), "VARCHAR")
        elif values.dtype.kind == "M":
            unit = np.datetime_data(values.dtype)[0]
            column = exp.cast(
                source(values.astype("datetime64[s]")), "DATE" if unit in "YMWD" else "TIMESTAMP"
            )
        else:
            column = source(values)
        items.append(exp.alias_(column, name, quoted=True))
    con.register(view, arrays)
    return con.sql(exp.select(*items).from_(exp.to_identifier(view, quoted=True)).sql("duckdb"))


def _text_sql(text: Text, source: Callable[[np.ndarray], exp.Expression]) -> exp.Expression:
    pieces: list[exp.Expression] = []
    for part in text.parts:
        if isinstance(part, Lookup):
            labels = exp.Array(expressions=[exp.Literal.string(s) for s in part.labels])
            index = exp.Add(this=source(part.codes), expression=exp.Literal.number(1))
            pieces.append(exp.Anonymous(this="list_extract", expressions=[labels, index]))
        elif isinstance(part, Digits):
            digits = exp.cast(source(part.values), "VARCHAR")
            width, zero = exp.Literal.number(part.width), exp.Literal.string("0")
            pieces.append(exp.Anonymous(this="lpad", expressions=[digits, width, zero]))
        else:
            pieces.append(exp.Literal.string(part))
    result = pieces[0]
    for piece in pieces[1:]:
        result = exp.DPipe(this=result, expression=piece)
    return exp.cast(result, "VARCHAR")


def write_table(columns: Columns, path: Path, table: str | None = None) -> Path:
    """Write a table as .csv, .parquet, a DuckDB file or a SQLite file (by suffix).

    Database files get one table named ``table`` (default: the file's stem).
    Latent ``_`` columns are never written; NaN becomes NULL.
    """
    return write_columns(columns, path, table)


def write_columns(table: Mapping[str, Column], path: Path, name: str | None = None) -> Path:
    """:func:`write_table` for a table whose string columns may be lazy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    name = name or path.stem
    if path.suffix in (".sqlite", ".sqlite3"):
        _write_sqlite(materialise(table), path, name)
        return path
    if path.suffix in (".duckdb", ".db"):
        path.unlink(missing_ok=True)
        con = duckdb.connect(str(path))
        try:
            public_relation(con, table, "columns_view").create(name)
        finally:
            con.close()
        return path
    con = duckdb.connect()
    try:
        relation = public_relation(con, table, "columns_view")
        if path.suffix == ".parquet":
            relation.write_parquet(str(path))
        else:
            relation.write_csv(str(path))
    finally:
        con.close()
    return path


def _write_sqlite(columns: Columns, path: Path, table: str) -> None:
    public = {k: v for k, v in columns.items() if not k.startswith("_")}
    kinds = {"i": "INTEGER", "u": "INTEGER", "f": "REAL", "b": "INTEGER"}

    def kind(values: np.ndarray) -> str:
        if values.dtype.kind == "M":
            return "DATE" if np.datetime_data(values.dtype)[0] in "YMWD" else "TIMESTAMP"
        return kinds.get(values.dtype.kind, "TEXT")

    defs = [
        exp.ColumnDef(this=exp.to_identifier(k, quoted=True), kind=exp.DataType.build(kind(v)))
        for k, v in public.items()
    ]
    create = exp.Create(
        this=exp.Schema(this=exp.table_(table, quoted=True), expressions=defs), kind="TABLE"
    )
    insert = exp.insert(
        exp.values([tuple(exp.Placeholder() for _ in public)]),
        exp.table_(table, quoted=True),
        columns=list(public),
    )
    rows = zip(*[_python_values(v) for v in public.values()], strict=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(create.sql("sqlite"))
        con.executemany(insert.sql("sqlite"), rows)


def _python_values(values: np.ndarray) -> list[object]:
    if values.dtype.kind == "f":
        return [None if np.isnan(v) else float(v) for v in values]
    if values.dtype.kind in "iub":
        return [int(v) for v in values]
    if values.dtype.kind == "M":
        # ISO text, as SQLite stores dates; a space separates date and time.
        return [str(v).replace("T", " ") for v in np.datetime_as_string(values)]
    return [str(v) for v in values]
