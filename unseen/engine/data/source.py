"""A holder's tables and the engines that run its local SQL.

Every served table is a :class:`TableSource`: an engine that runs the SQL
sqlglot wrote in its dialect, with parameters bound, and describes its
columns. ``--table NAME=SOURCE`` picks the engine. A URL
(``postgresql://``, ``mysql://``, ``spark://`` ...) is a table in a warehouse
the holder already runs (see :mod:`unseen.engine.data.warehouses`). A path picks the
engine from the file: CSV (loaded once into
an in-memory DuckDB table, so repeated queries do not re-parse it), Parquet
(a DuckDB view, scanned lazily), a DuckDB database file or a SQLite database
file (recognised by their magic bytes; the table of the same name is served,
read-only). SQLite tables run in SQLite itself, with SQL that sqlglot writes
in SQLite's dialect, so data never round-trips through another engine.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sqlite3
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from unseen.engine.data.pushdown import SQLITE_SECOND_LARGEST, SQLITE_VAR_POP
from unseen.engine.data.warehouses.location import Location, is_url
from unseen.engine.errors import ConfigError, SourceError
from unseen.engine.query.types import SqlType, from_duckdb, from_sqlite
from unseen.engine.transport.cancellation import interruptible

__all__ = ["FileSource", "Stream", "TableSource", "open_source"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_INTERNAL = "served"  # name of a CSV/Parquet table inside its private DuckDB
_DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of a DuckDB database file


class _WelfordVarPop:
    """VAR_POP for SQLite, numerically stable (Welford), NULLs skipped."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def step(self, value: float | None) -> None:
        if value is None:
            return
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def finalize(self) -> float | None:
        return self.m2 / self.n if self.n else None


class _SecondLargest:
    """The second largest value for SQLite (0 with fewer than two), NULLs skipped;
    beside MAX it gives the p% dominance rule its two largest contributions."""

    def __init__(self) -> None:
        self.top: list[float] = []

    def step(self, value: float | None) -> None:
        if value is None:
            return
        self.top = sorted([*self.top, value], reverse=True)[:2]

    def finalize(self) -> float | None:
        return self.top[1] if len(self.top) > 1 else None


class Stream(ABC):
    """An open result read in order, block by block (scoring's feature rows)."""

    @abstractmethod
    def fetch(self, rows: int) -> list[tuple[Any, ...]]:
        """Up to ``rows`` more rows; fewer only at the end."""

    @abstractmethod
    def close(self) -> None:
        """Release the cursor or connection behind the stream."""


class TableSource(ABC):
    """One served table in the engine that runs its SQL.

    Attributes:
        name: the table's served (catalog) name.
        dialect: the sqlglot dialect its SQL is written in.
        sql_name: the table's name inside its engine.
    """

    name: str
    dialect: str
    sql_name: str

    @abstractmethod
    def run(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute read-only SQL; engine errors become :class:`SourceError`."""

    @abstractmethod
    def stream(self, sql: str, params: dict[str, Any], req: dict[str, Any]) -> Stream:
        """Run ``sql`` with the request relation ``req`` (columns ``pos``, ``id``,
        ``id_int`` of equal length) available as table ``req``, and read the
        result in order, block by block.
        """

    @abstractmethod
    def schema(self) -> list[tuple[str, SqlType]]:
        """The table's columns in the engine's order, types normalised."""

    def describe(self) -> str:
        """Where the table lives, safe to log (never a password)."""
        return self.dialect

    def close(self) -> None:  # noqa: B027  (most sources hold nothing to release)
        """Release connections to the engine (warehouse sources hold one per thread)."""

    def distinct_values(self, column: str, limit: int) -> list[Any] | None:
        """The column's distinct values, or None when there are more than ``limit``."""
        query = (
            exp.select(exp.column(column, quoted=True))
            .distinct()
            .from_(exp.table_(self.sql_name, quoted=True))
            .limit(limit + 1)
        )
        rows = self.run(query.sql(self.dialect))
        if len(rows) > limit:
            return None
        return [_clean(r[0]) for r in rows]

    def min_max(self, column: str) -> tuple[Any, Any]:
        """The smallest and largest value of a column (NULLs ignored)."""
        col = exp.column(column, quoted=True)
        query = exp.select(exp.Min(this=col), exp.Max(this=col.copy())).from_(
            exp.table_(self.sql_name, quoted=True)
        )
        low, high = self.run(query.sql(self.dialect))[0]
        return _clean(low), _clean(high)

    def max_abs(self, column: str) -> float | None:
        """The largest magnitude in a numeric column (None when all NULL)."""
        col = exp.column(column, quoted=True)
        query = exp.select(exp.Max(this=exp.Abs(this=exp.cast(col, "DOUBLE")))).from_(
            exp.table_(self.sql_name, quoted=True)
        )
        value = self.run(query.sql(self.dialect))[0][0]
        return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class FileSource(TableSource):
    """A table in a file the holder reads: CSV, Parquet, DuckDB or SQLite."""

    name: str
    path: Path
    dialect: str  # "duckdb" or "sqlite"
    _duck: duckdb.DuckDBPyConnection | None = None
    _local: threading.local | None = None
    # The table's name inside its engine: the served name for database files,
    # a fixed internal name for CSV and Parquet loaded into a private DuckDB.
    sql_name: str = ""

    def __post_init__(self) -> None:
        self.sql_name = self.sql_name or self.name

    # -- running SQL ---------------------------------------------------------
    def run(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute read-only SQL; engine errors become :class:`SourceError`.

        Inside a served call the query is interrupted when the call ends
        (``unseen.engine.transport.cancellation``), which raises CallCancelled instead.
        """
        try:
            if self._duck is not None:
                cursor = self._duck.cursor()
                try:
                    with interruptible(cursor.interrupt):
                        return cursor.execute(sql, params).fetchall()
                finally:
                    cursor.close()
            con = self._sqlite()
            with interruptible(con.interrupt):
                return con.execute(sql, params).fetchall()
        except (duckdb.Error, sqlite3.Error) as exc:
            # The engine's message may quote the data (an overflowing product,
            # a value that does not convert): only its class leaves the holder.
            raise SourceError(
                f"table {self.name}: the local engine failed on the query ({type(exc).__name__})"
            ) from exc

    def stream(self, sql: str, params: dict[str, Any], req: dict[str, Any]) -> Stream:
        try:
            if self._duck is not None:
                cursor = self._duck.cursor()
                cursor.register("req", req)
                with interruptible(cursor.interrupt):
                    return _Stream(cursor, cursor.execute(sql, params))
            con = self._connect_sqlite()
            names = list(req)
            con.execute(
                exp.Create(
                    this=exp.Schema(
                        this=exp.table_("req", quoted=True),
                        expressions=[exp.to_identifier(n, quoted=True) for n in names],
                    ),
                    kind="TABLE",
                    properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                ).sql("sqlite")
            )
            insert = exp.insert(
                exp.values([tuple(exp.Placeholder() for _ in names)]),
                exp.table_("req", quoted=True),
                columns=names,
            ).sql("sqlite")
            with interruptible(con.interrupt):
                con.executemany(insert, zip(*(_plain_list(req[n]) for n in names), strict=True))
                return _Stream(con, con.execute(sql, params))
        except (duckdb.Error, sqlite3.Error) as exc:
            # The engine's message may quote the data (an overflowing product,
            # a value that does not convert): only its class leaves the holder.
            raise SourceError(
                f"table {self.name}: the local engine failed on the query ({type(exc).__name__})"
            ) from exc

    def _connect_sqlite(self) -> sqlite3.Connection:
        con = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        con.create_aggregate(SQLITE_VAR_POP, 1, _WelfordVarPop)  # type: ignore[arg-type]
        con.create_aggregate(SQLITE_SECOND_LARGEST, 1, _SecondLargest)  # type: ignore[arg-type]
        # DuckDB's LIKE is case-sensitive; make SQLite's agree.
        con.execute("PRAGMA case_sensitive_like = ON")
        return con

    def _sqlite(self) -> sqlite3.Connection:
        # sqlite3 connections are per thread; gRPC serves from a thread pool.
        assert self._local is not None
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect_sqlite()
            self._local.con = con
        return con

    # -- schema --------------------------------------------------------------
    def schema(self) -> list[tuple[str, SqlType]]:
        if self._duck is not None:
            rows = self.run(exp.Describe(this=exp.table_(self.sql_name, quoted=True)).sql("duckdb"))
            return [(str(r[0]), from_duckdb(str(r[1]))) for r in rows]
        pragma = exp.Pragma(
            this=exp.Anonymous(
                this="table_info", expressions=[exp.to_identifier(self.sql_name, quoted=True)]
            )
        )
        rows = self.run(pragma.sql("sqlite"))
        return [(str(r[1]), from_sqlite(str(r[2] or ""))) for r in rows]

    def describe(self) -> str:
        return f"{self.dialect} file {self.path.name}"


class _Stream(Stream):
    """An open DuckDB or SQLite result; owns its cursor or connection."""

    def __init__(self, owner: Any, result: Any):
        self._owner = owner
        self._result = result

    def fetch(self, rows: int) -> list[tuple[Any, ...]]:
        try:
            with interruptible(self._owner.interrupt):
                return list(self._result.fetchmany(rows))
        except (duckdb.Error, sqlite3.Error) as exc:
            raise SourceError(
                f"the local engine failed while reading ({type(exc).__name__})"
            ) from exc

    def close(self) -> None:
        self._owner.close()


def _plain_list(values: Any) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values]


def _clean(value: Any) -> Any:
    # NaN cannot be a group key that compares equal to itself; treat as NULL.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _duckdb(database: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to disk beyond a memory limit.

    A score request for a million entities joins and sorts its features in
    DuckDB; with a limit and a spill folder that work stays within the limit
    (and measured faster) instead of growing with the request. The limit is
    ``UNSEEN_DUCKDB_MEMORY_LIMIT`` (default 512MB) per served table.
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": os.environ.get("UNSEEN_DUCKDB_MEMORY_LIMIT", "512MB"),
        "temp_directory": str(_spill_folder()),
    }
    return duckdb.connect(database, read_only=read_only, config=config)


_SPILL: list[Path] = []


def _spill_folder() -> Path:
    """One private spill folder per process, removed at exit."""
    if not _SPILL:
        folder = Path(tempfile.mkdtemp(prefix="unseen-spill-"))
        os.chmod(folder, 0o700)
        atexit.register(shutil.rmtree, folder, True)
        _SPILL.append(folder)
    return _SPILL[0]


def _magic(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(16)


def open_source(name: str, location: Location) -> TableSource:
    """Open ``location`` as the source of table ``name``; refuses unknown formats clearly.

    Args:
        name: the served table name.
        location: a warehouse URL (see :func:`unseen.engine.data.warehouses.open_warehouse`)
            or the path of a file.
    """
    if is_url(location):
        # Imported here: a holder serving files needs no warehouse driver installed.
        from unseen.engine.data.warehouses import open_warehouse

        return open_warehouse(name, str(location))
    path = Path(location)
    if not path.exists():
        raise ConfigError(f"table {name}: source {path} does not exist")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".csv", ".csv.gz", ".tsv")):
            con = _duckdb(":memory:")
            con.read_csv(str(path)).to_table(_INTERNAL)
            return FileSource(name, path, "duckdb", _duck=con, sql_name=_INTERNAL)
        if suffix.endswith(".parquet"):
            con = _duckdb(":memory:")
            con.read_parquet(str(path)).to_view(_INTERNAL)
            return FileSource(name, path, "duckdb", _duck=con, sql_name=_INTERNAL)
        header = _magic(path)
        if header.startswith(_SQLITE_MAGIC):
            source = FileSource(name, path, "sqlite", _local=threading.local())
            if not source.schema():
                raise ConfigError(f"table {name}: SQLite file {path} has no table named {name}")
            return source
        if header[8:12] == _DUCKDB_MAGIC:
            con = _duckdb(str(path), read_only=True)
            source = FileSource(name, path, "duckdb", _duck=con)
            tables = {str(r[0]).lower(): str(r[0]) for r in source.run("SHOW TABLES")}
            if name.lower() not in tables:
                raise ConfigError(f"table {name}: DuckDB file {path} has no table named {name}")
            source.sql_name = tables[name.lower()]
            return source
    except duckdb.Error as exc:
        raise ConfigError(f"table {name}: cannot read {path}: {exc}") from exc
    raise ConfigError(f"table {name}: {path} is not a .csv, .parquet, DuckDB or SQLite file")
