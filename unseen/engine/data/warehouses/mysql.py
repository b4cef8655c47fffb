"""MySQL and MariaDB tables through PyMySQL.

Parameters are bound by the driver (PyMySQL escapes them client-side; the
text sqlglot writes never holds a literal). The password comes from
``MYSQL_PWD`` or an option file (``~/.my.cnf`` or ``?option_file=``), never
from the URL. Scoring loads the requested ids into a session-private
``TEMPORARY`` table (the holder's account needs ``CREATE TEMPORARY TABLES``
besides ``SELECT``) and streams the features through an unbuffered cursor.

Text comparison and grouping follow the column's collation: under the
default case-insensitive collations ``'North' = 'north'``. Serve text
columns with a binary (``_bin``) collation to get DuckDB's exact semantics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
from sqlglot import exp

from unseen.engine.data.warehouses.location import WarehouseURL
from unseen.engine.data.warehouses.server import ServerSource
from unseen.engine.query.types import SqlType

__all__ = ["MySQLSource", "from_mysql"]

_INTEGERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"}

_COLUMNS = (
    "SELECT COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_TYPE "
    "FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %(table)s "
    "ORDER BY ORDINAL_POSITION"
)
_TABLES = (
    "SELECT TABLE_NAME FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND LOWER(TABLE_NAME) = LOWER(%(table)s)"
)
# Batch size for loading a scoring request's ids.
_INSERT_BATCH = 10_000


def from_mysql(
    data_type: str, precision: int | None, scale: int | None, column_type: str
) -> SqlType:
    """Map an ``information_schema.COLUMNS`` type to a :class:`SqlType`."""
    name = data_type.lower()
    if column_type.lower().startswith("tinyint(1)") or name in ("bool", "boolean"):
        return SqlType("BOOLEAN")  # MySQL's BOOLEAN is TINYINT(1)
    if name in _INTEGERS:
        return SqlType("INTEGER")
    if name == "decimal":
        if precision is None or precision > 38:
            return SqlType("FLOAT")
        return SqlType("DECIMAL", int(precision), int(scale or 0))
    if name in ("float", "double", "real"):
        return SqlType("FLOAT")
    if name in _TEXT:
        return SqlType("VARCHAR")
    if name == "date":
        return SqlType("DATE")
    if name in ("datetime", "timestamp"):
        return SqlType("TIMESTAMP")
    return SqlType("OTHER")


class MySQLSource(ServerSource):
    """A MySQL or MariaDB table or view."""

    label = "MySQL"
    dialect = "mysql"
    driver_errors = (pymysql.Error,)

    def __init__(self, name: str, url: WarehouseURL):
        super().__init__(name, url)

    def connect(self, streaming: bool = False) -> Any:
        url = self.url
        kwargs: dict[str, Any] = {
            "host": url.host or "localhost",
            "port": url.port or 3306,
            "database": url.database,
            "charset": "utf8mb4",
            "connect_timeout": int(url.options.get("connect_timeout", "10")),
            "autocommit": True,
        }
        if url.user:
            kwargs["user"] = url.user
        option_file = url.options.get("option_file")
        default_file = Path("~/.my.cnf").expanduser()
        if option_file:
            kwargs["read_default_file"] = option_file
        elif default_file.exists():
            kwargs["read_default_file"] = str(default_file)
        password = os.environ.get("MYSQL_PWD")
        if password is not None:
            kwargs["password"] = password
        ssl = {k[4:]: v for k, v in url.options.items() if k.startswith("ssl_")}
        if ssl:
            kwargs["ssl"] = ssl
        if streaming:
            kwargs["cursorclass"] = pymysql.cursors.SSCursor
        connection = pymysql.connect(**kwargs)
        if not streaming:
            # Read-only sessions for aggregates. MariaDB refuses even temporary
            # tables in them, so a scoring stream (which loads its ids into one)
            # relies on the account's grants: SELECT and CREATE TEMPORARY TABLES.
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
        return connection

    @staticmethod
    def sqlstate(exc: BaseException) -> str | None:
        args = getattr(exc, "args", ())
        return str(args[0]) if args and isinstance(args[0], int) else None

    def columns(self) -> list[tuple[str, SqlType]]:
        rows = self.run_fixed(_COLUMNS, {"table": self.sql_name})
        return [(str(r[0]), from_mysql(str(r[1]), r[2], r[3], str(r[4]))) for r in rows]

    def table_names(self) -> list[str]:
        return [str(r[0]) for r in self.run_fixed(_TABLES, {"table": self.url.table})]

    def run_fixed(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one of this module's catalog queries (already in PyMySQL's style)."""
        with self._connection().cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()]

    def open_stream(
        self, connection: Any, sql: str, params: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        names = ("pos", "id", "id_int")
        create = exp.Create(
            this=exp.Schema(
                this=exp.table_("req", quoted=True),
                expressions=[
                    exp.ColumnDef(
                        this=exp.to_identifier(n, quoted=True), kind=exp.DataType.build(t)
                    )
                    for n, t in zip(names, ("BIGINT", "VARCHAR(255)", "BIGINT"), strict=True)
                ],
            ),
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        ).sql("mysql")
        # PyMySQL's positional style; executemany() sends it as multi-row INSERTs.
        insert = exp.insert(
            exp.values([tuple(exp.var("%s") for _ in names)]),
            exp.table_("req", quoted=True),
            columns=list(names),
        ).sql("mysql")
        rows = [
            (int(pos), str(ident), None if number is None else int(number))
            for pos, ident, number in zip(req["pos"], req["id"], req["id_int"], strict=True)
        ]
        with connection.cursor(pymysql.cursors.Cursor) as cursor:
            cursor.execute(create)
            for start in range(0, len(rows), _INSERT_BATCH):
                cursor.executemany(insert, rows[start : start + _INSERT_BATCH])
        cursor = connection.cursor()
        cursor.execute(self.prepare(sql), params or {})
        return cursor
