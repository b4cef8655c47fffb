"""PEP 249 type objects and constructors, and the type codes in ``cursor.description``.

A type code is the name of one of unseen's column kinds (``unseen.engine.query.types``):
``"INTEGER"``, ``"DECIMAL"``, ``"FLOAT"``, ``"VARCHAR"``, ``"BOOLEAN"``,
``"DATE"``, ``"TIMESTAMP"``. A result does not carry its column types over
the wire — the analyst finishes every value itself — so the driver reads the
kind from the finished values (an exact integer SUM is an ``int``, a decimal
SUM a ``Decimal``, AVG a ``float``); a column whose every cell is NULL (all
groups suppressed) has type code ``None``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

__all__ = [
    "BINARY",
    "BOOLEAN",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "DBAPITypeObject",
    "Date",
    "DateFromTicks",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "column_type",
    "decimal_scale",
]


class DBAPITypeObject:
    """Compares equal to every type code of one PEP 249 category (``NUMBER == "FLOAT"``)."""

    def __init__(self, *codes: str):
        self.codes = frozenset(codes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self.codes == other.codes
        return other in self.codes

    def __hash__(self) -> int:
        return hash(self.codes)

    def __repr__(self) -> str:
        return f"DBAPITypeObject{tuple(sorted(self.codes))}"


STRING = DBAPITypeObject("VARCHAR")
BINARY = DBAPITypeObject("BLOB")
NUMBER = DBAPITypeObject("INTEGER", "DECIMAL", "FLOAT")
DATETIME = DBAPITypeObject("DATE", "TIMESTAMP", "TIME")
ROWID = DBAPITypeObject("ROWID")  # results have no row ids: nothing compares equal in practice
BOOLEAN = DBAPITypeObject("BOOLEAN")  # beyond PEP 249, as several drivers offer

Date = dt.date
Time = dt.time
Timestamp = dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> dt.date:
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> dt.time:
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> dt.datetime:
    return Timestamp(*time.localtime(ticks)[:6])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, Decimal):
        return "DECIMAL"
    if isinstance(value, float):
        return "FLOAT"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    if isinstance(value, bytes):
        return "BLOB"
    return "VARCHAR"


def column_type(values: Iterable[Any]) -> str | None:
    """The type code of a result column from its values (numbers widen as SQL's do)."""
    kinds = {_kind(v) for v in values if v is not None}
    if not kinds:
        return None
    if len(kinds) == 1:
        return kinds.pop()
    if kinds <= {"INTEGER", "DECIMAL"}:
        return "DECIMAL"
    if kinds <= {"INTEGER", "DECIMAL", "FLOAT"}:
        return "FLOAT"
    return "VARCHAR"


def decimal_scale(values: Iterable[Any]) -> int | None:
    """The largest number of decimals among a DECIMAL column's values."""
    scales = [
        max(0, -int(v.as_tuple().exponent))
        for v in values
        if isinstance(v, Decimal) and v.is_finite()
    ]
    return max(scales) if scales else None
