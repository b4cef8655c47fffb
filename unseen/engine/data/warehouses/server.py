"""A table in a database server the holder reaches over a DB-API connection.

PostgreSQL and MySQL/MariaDB sources share this: one connection per serving
thread (gRPC answers from a thread pool and DB-API connections are not
shared across threads), reopened when the server dropped it; parameters
re-spelled for the driver (:mod:`unseen.engine.data.warehouses.paramstyle`); and engine
errors reported by class and SQLSTATE only, since a driver's message may
quote the data it choked on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from unseen.engine.data.source import Stream, TableSource
from unseen.engine.data.warehouses.location import WarehouseURL
from unseen.engine.data.warehouses.paramstyle import parse, pyformat
from unseen.engine.errors import ConfigError, SourceError
from unseen.engine.query.types import SqlType

__all__ = ["ServerSource", "ServerStream"]

log = logging.getLogger(__name__)


class ServerStream(Stream):
    """A server-side cursor read block by block; owns its connection."""

    def __init__(self, source: ServerSource, connection: Any, cursor: Any):
        self._source = source
        self._connection = connection
        self._cursor = cursor

    def fetch(self, rows: int) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self._cursor.fetchmany(rows)]
        except self._source.driver_errors as exc:
            raise self._source.refused(exc, "while reading") from exc

    def close(self) -> None:
        try:
            self._cursor.close()
        except self._source.driver_errors:
            pass  # the connection is dropped next; nothing left to release
        finally:
            self._connection.close()


class ServerSource(TableSource):
    """Shared behaviour of the PostgreSQL and MySQL sources."""

    label: str  # the engine's name in messages, e.g. "PostgreSQL"
    driver_errors: tuple[type[BaseException], ...]

    def __init__(self, name: str, url: WarehouseURL):
        self.name = name
        self.url = url
        self.sql_name = url.table
        self._local = threading.local()
        self._opened: list[Any] = []  # every thread's connection, for close()
        self._opened_lock = threading.Lock()
        try:
            self._connection()
            self.sql_name = self._resolve_table()
        except self.driver_errors as exc:
            # The driver's message names host, port and user (never a password:
            # the URL holds none) and is what the operator needs to fix it.
            raise ConfigError(
                f"table {name}: cannot open it in {self.label} at {url.redacted()}: "
                f"{str(exc).strip()}"
            ) from exc
        log.info("table %s is served from %s", name, self.describe())

    # -- what each engine provides ----------------------------------------------------
    @abstractmethod
    def connect(self, streaming: bool = False) -> Any:
        """A new connection, read-only where the engine allows; ``streaming`` for
        one that will hold a server-side cursor."""

    @abstractmethod
    def columns(self) -> list[tuple[str, SqlType]]:
        """The served table's columns from the engine's information schema."""

    @abstractmethod
    def table_names(self) -> list[str]:
        """Names of tables and views in the connection's schema matching ``url.table``
        case-insensitively."""

    @abstractmethod
    def open_stream(
        self, connection: Any, sql: str, params: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        """Make ``req`` visible to ``sql``, execute it, return the open cursor."""

    @staticmethod
    def sqlstate(exc: BaseException) -> str | None:
        """The SQLSTATE or error number of a driver error, if it carries one."""
        return None

    # -- TableSource ------------------------------------------------------------------
    def describe(self) -> str:
        return f"{self.label} {self.url.redacted()}"

    def prepare(self, sql: str) -> str:
        """The pushdown's SQL in the driver's parameter style."""
        return pyformat(parse(sql, self.dialect), self.dialect)

    def run(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        text = self.prepare(sql)
        try:
            connection = self._connection()
            with connection.cursor() as cursor:
                cursor.execute(text, params or {})  # always formatted: "%%" in names
                return [tuple(r) for r in cursor.fetchall()]
        except self.driver_errors as exc:
            self._drop()
            raise self.refused(exc) from exc
        except (ValueError, TypeError) as exc:
            # A pyformat driver failing to bind (a stray "%" in the text): report
            # the class only, as for an engine error, never the SQL it choked on.
            self._drop()
            raise self.refused(exc, "while binding its parameters") from exc

    def stream(self, sql: str, params: dict[str, Any], req: dict[str, Any]) -> Stream:
        connection = None
        try:
            connection = self.connect(streaming=True)
            cursor = self.open_stream(connection, sql, params, req)
            return ServerStream(self, connection, cursor)
        except self.driver_errors as exc:
            if connection is not None:
                connection.close()
            raise self.refused(exc) from exc

    def schema(self) -> list[tuple[str, SqlType]]:
        try:
            return self.columns()
        except self.driver_errors as exc:
            self._drop()
            raise self.refused(exc) from exc

    # -- helpers ----------------------------------------------------------------------
    def refused(self, exc: BaseException, when: str = "") -> SourceError:
        """A :class:`SourceError` naming the error's class and code, never its text."""
        code = self.sqlstate(exc)
        detail = type(exc).__name__ + (f", code {code}" if code else "")
        where = f" {when}" if when else ""
        log.warning("table %s: %s refused a query%s (%s)", self.name, self.label, where, detail)
        return SourceError(f"table {self.name}: {self.label} refused the query{where} ({detail})")

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or getattr(connection, "closed", False):
            connection = self.connect()
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(*self.driver_errors):
                connection.close()

    def _drop(self) -> None:
        """Forget this thread's connection after an error; the next call reconnects."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._opened_lock:
                if connection in self._opened:
                    self._opened.remove(connection)
            with contextlib.suppress(*self.driver_errors):  # already broken
                connection.close()

    def _resolve_table(self) -> str:
        names = self.table_names()
        if self.url.table in names:
            return self.url.table
        folded = [n for n in names if n.lower() == self.url.table.lower()]
        if len(folded) == 1:
            return folded[0]
        where = f"database {self.url.database}" if self.url.database else "the database"
        if not folded:
            raise ConfigError(f"table {self.name}: {where} has no table {self.url.table}")
        raise ConfigError(
            f"table {self.name}: {where} has several tables named {self.url.table} in "
            "different cases; give ?table= exactly"
        )
