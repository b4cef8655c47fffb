"""Spark SQL tables: the holder is a Spark driver and runs its SQL in Spark.

``spark://HOST:PORT/DB?table=T`` joins a standalone cluster;
``spark+local:///DB?table=T&cores=N`` runs Spark inside the holder (tests,
small deployments). The table is looked up in the session's catalog, so a
Hive metastore configured in ``SPARK_CONF_DIR`` serves its tables as they
are. When the process already has a Spark session (an embedding
application, the tests) that session's context is reused: Spark allows one
per JVM. Parameters are bound by ``spark.sql(sql, args=...)`` (named
``:pN``, as sqlglot writes them for Spark). Each source works in a session
of its own (``newSession``: its own current database and temporary views,
the shared context and catalog), and each scoring request in another, whose
``req`` view no other request can see. Features stream back partition by
partition (``toLocalIterator``), in order.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from py4j.protocol import Py4JError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from unseen.engine.data.source import Stream, TableSource
from unseen.engine.data.warehouses.location import WarehouseURL
from unseen.engine.errors import ConfigError, SourceError
from unseen.engine.query.types import SqlType

__all__ = ["SparkSource", "from_spark"]

log = logging.getLogger(__name__)

_ERRORS = (PySparkException, Py4JError)
_INTEGERS = {"tinyint", "smallint", "int", "bigint"}
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


def from_spark(type_name: str) -> SqlType:
    """Map a Spark ``simpleString`` type to a :class:`SqlType`."""
    name = type_name.lower().replace(" ", "")
    if name in _INTEGERS:
        return SqlType("INTEGER")
    match = _DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        return SqlType("DECIMAL", precision, scale) if precision <= 38 else SqlType("FLOAT")
    if name in ("float", "double"):
        return SqlType("FLOAT")
    if name == "string" or name.startswith(("varchar(", "char(")):
        return SqlType("VARCHAR")
    if name == "boolean":
        return SqlType("BOOLEAN")
    if name == "date":
        return SqlType("DATE")
    if name in ("timestamp", "timestamp_ntz"):
        return SqlType("TIMESTAMP")
    return SqlType("OTHER")


def _session(url: WarehouseURL) -> SparkSession:
    if url.scheme == "spark+local":
        cores = url.options.get("cores", "1")
        if not (cores == "*" or cores.isdigit()):
            raise ConfigError("the Spark source's ?cores= must be a number or *")
        master = f"local[{cores}]"
    else:
        if not url.host or not url.port:
            raise ConfigError("a spark:// source needs the master's HOST:PORT")
        master = f"spark://{url.host}:{url.port}"
    builder = SparkSession.builder.master(master).appName("unseen-holder")
    # No web UI: a holder opens no port the operator did not ask for.
    session = builder.config("spark.ui.enabled", "false").getOrCreate()
    # Spark's error reports quote the failing SQL and, for a bad cast, the value;
    # holder logs never hold data, so its query-context logger is silenced and the
    # JVM logs only fatal errors (raise it in log4j2.properties to debug).
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL + 1)
    session.sparkContext.setLogLevel("FATAL")
    return session


class _SparkStream(Stream):
    def __init__(self, rows: Iterator[Any], session: SparkSession):
        self._rows = rows
        self._session = session

    def fetch(self, rows: int) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in itertools.islice(self._rows, rows)]
        except _ERRORS as exc:
            raise SourceError(
                f"Spark failed while reading features ({type(exc).__name__})"
            ) from exc

    def close(self) -> None:
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()
        self._session.catalog.dropTempView("req")


class SparkSource(TableSource):
    """A table in a Spark session's catalog."""

    dialect = "spark"

    def __init__(self, name: str, url: WarehouseURL):
        self.name = name
        self.url = url
        self.sql_name = url.table
        try:
            self._spark = self._new_session(_session(url))
            if not self._spark.catalog.tableExists(url.table):
                where = f"database {url.database}" if url.database else "the current database"
                raise ConfigError(f"table {name}: Spark has no table {url.table} in {where}")
        except _ERRORS as exc:
            raise ConfigError(
                f"table {name}: cannot open it in Spark: {type(exc).__name__}"
            ) from exc
        log.info("table %s is served from %s", name, self.describe())

    def _new_session(self, parent: SparkSession) -> SparkSession:
        session = parent.newSession()
        if self.url.database:
            session.catalog.setCurrentDatabase(self.url.database)
        return session

    def describe(self) -> str:
        return f"Spark {self.url.redacted()}"

    def _refused(self, exc: BaseException) -> SourceError:
        condition = getattr(exc, "getCondition", lambda: None)()
        detail = type(exc).__name__ + (f", {condition}" if condition else "")
        log.warning("table %s: Spark refused a query (%s)", self.name, detail)
        return SourceError(f"table {self.name}: Spark refused the query ({detail})")

    def run(self, sql: str, params: dict[str, Any] | Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        args = dict(params) if isinstance(params, dict) else None
        try:
            return [tuple(r) for r in self._spark.sql(sql, args=args or None).collect()]
        except _ERRORS as exc:
            raise self._refused(exc) from exc

    def stream(self, sql: str, params: dict[str, Any], req: dict[str, Any]) -> Stream:
        try:
            session = self._new_session(self._spark)
            rows = [
                (int(pos), str(ident), None if number is None else int(number))
                for pos, ident, number in zip(req["pos"], req["id"], req["id_int"], strict=True)
            ]
            frame = session.createDataFrame(rows, "pos BIGINT, id STRING, id_int BIGINT")
            frame.createOrReplaceTempView("req")
            result = session.sql(sql, args=dict(params) or None)
            return _SparkStream(result.toLocalIterator(), session)
        except _ERRORS as exc:
            raise self._refused(exc) from exc

    def schema(self) -> list[tuple[str, SqlType]]:
        try:
            fields = self._spark.table(self.sql_name).schema.fields
        except _ERRORS as exc:
            raise self._refused(exc) from exc
        return [(f.name, from_spark(f.dataType.simpleString())) for f in fields]
