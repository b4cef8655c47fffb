"""PostgreSQL tables through psycopg 3.

Connections are read-only at the server (``default_transaction_read_only``),
bind parameters server-side, and never carry a password from the URL: libpq
finds it in ``PGPASSWORD``, ``~/.pgpass`` / ``?passfile=`` or a service
file. Scoring streams its per-entity features through a named (server-side)
cursor, with the requested ids passed as two bound arrays unnested into the
``req`` relation, so the request needs no temporary table and no write.
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlglot import exp

from unseen.engine.data.warehouses.location import WarehouseURL
from unseen.engine.data.warehouses.paramstyle import parse, pyformat
from unseen.engine.data.warehouses.server import ServerSource
from unseen.engine.query.types import SqlType

__all__ = ["PostgresSource", "from_postgres"]

_INTEGERS = {"smallint", "integer", "bigint"}
_TEXT = {"text", "character varying", "character", "name", "citext"}

# The request relation: ids and their integer readings as two bound arrays,
# numbered in request order (WITH ORDINALITY counts from 1).
_REQ = parse(
    "SELECT u.pos - 1 AS pos, u.id, u.id_int FROM UNNEST(CAST(:unseen_req_id AS TEXT[]), "
    "CAST(:unseen_req_int AS BIGINT[])) WITH ORDINALITY AS u(id, id_int, pos)",
    "postgres",
)

_COLUMNS = (
    "SELECT column_name, data_type, numeric_precision, numeric_scale "
    "FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = %(table)s "
    "ORDER BY ordinal_position"
)
_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND lower(table_name) = lower(%(table)s)"
)


def from_postgres(data_type: str, precision: int | None, scale: int | None) -> SqlType:
    """Map an ``information_schema.columns`` type to a :class:`SqlType`."""
    name = data_type.lower()
    if name in _INTEGERS:
        return SqlType("INTEGER")
    if name == "numeric":
        if precision is None or precision > 38:
            # Unconstrained or wider than the codec's decimals: summed as floats.
            return SqlType("FLOAT")
        return SqlType("DECIMAL", precision, scale or 0)
    if name in ("real", "double precision"):
        return SqlType("FLOAT")
    if name in _TEXT:
        return SqlType("VARCHAR")
    if name == "boolean":
        return SqlType("BOOLEAN")
    if name == "date":
        return SqlType("DATE")
    if name == "timestamp without time zone":
        return SqlType("TIMESTAMP")
    return SqlType("OTHER")


class PostgresSource(ServerSource):
    """A PostgreSQL table or view."""

    label = "PostgreSQL"
    dialect = "postgres"
    driver_errors = (psycopg.Error,)

    def __init__(self, name: str, url: WarehouseURL):
        super().__init__(name, url)

    def connect(self, streaming: bool = False) -> Any:
        url = self.url
        kwargs: dict[str, Any] = {
            key: value
            for key, value in {
                "host": url.host,
                "port": url.port,
                "user": url.user,
                "dbname": url.database,
            }.items()
            if value is not None
        }
        kwargs.update(url.options)
        kwargs.setdefault("application_name", "unseen-holder")
        kwargs.setdefault("connect_timeout", "10")
        # Read-only at the server: a bug or an injection could not write.
        kwargs["options"] = "-c default_transaction_read_only=on"
        # A named cursor lives in a transaction; plain queries run one statement each.
        return psycopg.connect(autocommit=not streaming, **kwargs)

    @staticmethod
    def sqlstate(exc: BaseException) -> str | None:
        return getattr(exc, "sqlstate", None)

    def columns(self) -> list[tuple[str, SqlType]]:
        rows = self.run_fixed(_COLUMNS, {"table": self.sql_name})
        return [(str(r[0]), from_postgres(str(r[1]), r[2], r[3])) for r in rows]

    def table_names(self) -> list[str]:
        return [str(r[0]) for r in self.run_fixed(_TABLES, {"table": self.url.table})]

    def run_fixed(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one of this module's catalog queries (already in psycopg's style)."""
        with self._connection().cursor() as cursor:
            cursor.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()]

    def open_stream(
        self, connection: Any, sql: str, params: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        tree = parse(sql, self.dialect)
        assert isinstance(tree, exp.Select)
        tree = tree.with_("req", as_=_REQ.copy())
        bound = dict(params)
        bound["unseen_req_id"] = [str(v) for v in req["id"]]
        bound["unseen_req_int"] = [None if v is None else int(v) for v in req["id_int"]]
        cursor = connection.cursor(name="unseen_features")
        cursor.execute(pyformat(tree, self.dialect), bound)
        return cursor
