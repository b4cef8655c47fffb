"""A SQLAlchemy dialect for unseen: ``create_engine("unseen://127.0.0.1:7000?key=DIR")``.

Registered as the ``unseen`` dialect through the ``sqlalchemy.dialects``
entry point (``pip install 'unseen[sqlalchemy]'``). It drives
:mod:`unseen.dbapi`, so ``unseen.engine.connect().execute(text(...))`` and
``pandas.read_sql(sql, engine)`` answer SELECTs over the federation, and it
reflects the merged catalog — tables, columns, their types, and each
column's permitted uses and published domain size as its comment — so that
BI tools listing tables and columns through ``inspect(engine)`` see what an
analyst may ask. There are no keys, indexes, views or schemas to reflect.

URL query options mirror ``unseen query``'s flags: ``key`` (key directory),
``voucher`` (repeatable), ``tls_cert``/``tls_key``/``tls_ca`` and ``timeout``
(seconds per call).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import types as sqltypes
from sqlalchemy.engine import default

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection
    from sqlalchemy.engine.interfaces import IsolationLevel

    from unseen.engine.query.catalog import ColumnInfo, TableInfo

__all__ = ["UnseenDialect"]

_TLS_OPTIONS = ("tls_cert", "tls_key", "tls_ca")


def _sql_type(column: ColumnInfo) -> sqltypes.TypeEngine[Any]:
    kind = column.type.kind
    if kind == "DECIMAL":
        return sqltypes.Numeric(column.type.precision, column.type.scale)
    simple: dict[str, sqltypes.TypeEngine[Any]] = {
        "INTEGER": sqltypes.BigInteger(),
        "FLOAT": sqltypes.Float(),
        "VARCHAR": sqltypes.String(),
        "BOOLEAN": sqltypes.Boolean(),
        "DATE": sqltypes.Date(),
        "TIMESTAMP": sqltypes.DateTime(),
    }
    return simple.get(kind, sqltypes.NullType())


def _comment(column: ColumnInfo) -> str:
    uses = ", ".join(sorted(column.uses)) or "none"
    domain = "" if column.domain is None else f"; domain: {len(column.domain)} values"
    return f"uses: {uses}{domain}"


class UnseenDialect(default.DefaultDialect):
    """SQLAlchemy dialect over the unseen DB-API driver (read-only, reflection from the catalog)."""

    name = "unseen"
    driver = "unseen"
    paramstyle = "qmark"
    default_paramstyle = "qmark"
    supports_statement_cache = True
    supports_native_decimal = True
    supports_native_boolean = True
    supports_alter = False
    supports_sequences = False
    supports_default_values = False
    supports_empty_insert = False
    supports_multivalues_insert = False
    postfetch_lastrowid = False
    returns_native_bytes = False

    @classmethod
    def import_dbapi(cls) -> ModuleType:
        from unseen import dbapi

        return dbapi

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        if not url.host or url.port is None:
            raise ValueError("an unseen URL names the coordinator: unseen://HOST:PORT")
        query = dict(url.query)
        kwargs: dict[str, Any] = {}
        if "key" in query:
            kwargs["key"] = query.pop("key")
        if "voucher" in query:
            vouchers = query.pop("voucher")
            kwargs["vouchers"] = [vouchers] if isinstance(vouchers, str) else list(vouchers)
        tls = {name: query.pop(name) for name in _TLS_OPTIONS if name in query}
        if tls:
            kwargs["tls"] = (tls.get("tls_cert"), tls.get("tls_key"), tls.get("tls_ca"))
        if "timeout" in query:
            kwargs["timeout"] = float(query.pop("timeout"))  # type: ignore[arg-type]
        if query:
            raise ValueError(f"unknown unseen URL option(s): {', '.join(sorted(query))}")
        return [f"{url.host}:{url.port}"], kwargs

    # -- connection life -----------------------------------------------------------
    def do_ping(self, dbapi_connection: Any) -> bool:
        # The federation answers aggregates only (no ``SELECT 1``): its catalog is the ping.
        dbapi_connection.client.catalog()
        return True

    def get_isolation_level(self, dbapi_connection: Any) -> IsolationLevel:
        return "AUTOCOMMIT"  # every statement is a read; there are no transactions

    def get_isolation_level_values(self, dbapi_connection: Any) -> list[IsolationLevel]:
        return ["AUTOCOMMIT"]

    def set_isolation_level(self, dbapi_connection: Any, level: IsolationLevel) -> None:
        if level != "AUTOCOMMIT":
            raise NotImplementedError(f"unseen has no transactions (asked for {level})")

    def _get_server_version_info(self, connection: Connection) -> tuple[int, ...]:
        return (1,)  # the wire contract's version, unseen.v1

    # -- reflection from the catalog -------------------------------------------------
    def _tables(self, connection: Connection) -> tuple[TableInfo, ...]:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        return dbapi_connection.catalog().tables  # type: ignore[attr-defined,no-any-return]

    def _table(self, connection: Connection, name: str) -> TableInfo:
        from sqlalchemy.exc import NoSuchTableError

        for table in self._tables(connection):
            if table.name.lower() == name.lower():
                return table
        raise NoSuchTableError(name)

    def get_schema_names(self, connection: Connection, **kw: Any) -> list[str]:
        return []

    def get_table_names(
        self, connection: Connection, schema: str | None = None, **kw: Any
    ) -> list[str]:
        return [table.name for table in self._tables(connection)]

    def get_view_names(
        self, connection: Connection, schema: str | None = None, **kw: Any
    ) -> list[str]:
        return []

    def has_table(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        return any(t.name.lower() == table_name.lower() for t in self._tables(connection))

    def get_columns(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        return [
            {
                "name": column.name,
                "type": _sql_type(column),
                "nullable": True,
                "default": None,
                "autoincrement": False,
                "comment": _comment(column),
            }
            for column in self._table(connection, table_name).columns
        ]

    def get_pk_constraint(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> Any:
        self._table(connection, table_name)
        return {"constrained_columns": [], "name": None}

    def get_foreign_keys(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._table(connection, table_name)
        return []

    def get_indexes(
        self, connection: Connection, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._table(connection, table_name)
        return []
