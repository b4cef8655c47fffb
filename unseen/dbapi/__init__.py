"""unseen's PEP 249 (DB-API 2.0) driver: ``pandas.read_sql(sql, unseen.connect(...))``.

>>> import unseen
>>> conn = unseen.connect("127.0.0.1:7000", key="~/.config/unseen/keys/default")
>>> conn.execute("SELECT city, COUNT(*) FROM loans WHERE month >= ? GROUP BY city",
...              ["2022-03"]).fetchall()

Every statement is one SELECT that unseen answers over encrypted aggregates
(see docs/architecture.md); the connection is read-only, so ``commit`` and
``rollback`` do nothing. Parameters are bound as SQL literals in the parsed
statement (:mod:`unseen.dbapi.params`), never pasted into the text.
``cursor.meta`` (and ``df.attrs["unseen"]``) carries what the CLI prints in
``meta``: suppressed groups, holders and receipts. Errors are PEP 249's
classes, subclasses of :class:`unseen.engine.errors.UnseenError`
(:mod:`unseen.dbapi.errors` argues the mapping).
"""

from __future__ import annotations

from unseen.dbapi.connection import Connection, connect
from unseen.dbapi.cursor import Cursor
from unseen.dbapi.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from unseen.dbapi.types import (
    BINARY,
    BOOLEAN,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)

__all__ = [
    "BINARY",
    "BOOLEAN",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]

apilevel = "2.0"
# Threads may share the module, not connections: a connection caches its catalog
# and key registration state without locks.
threadsafety = 1
# ``?`` placeholders; ``:name`` with a mapping is accepted too (unseen.dbapi.params).
paramstyle = "qmark"
