"""Column types as unseen sees them: a small, engine-neutral vocabulary.

Holders run DuckDB or SQLite; both report types in their own words. The
catalog speaks only these kinds so that shards of one table on different
engines can be compared, and so that the client can choose an exact encoding
for each sum (integers and decimals exactly, floats on a fine binary grid).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SqlType", "from_duckdb", "from_sqlite", "normalize_value", "widen"]

_KINDS = ("INTEGER", "DECIMAL", "FLOAT", "VARCHAR", "BOOLEAN", "DATE", "TIMESTAMP", "OTHER")
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class SqlType:
    """A normalised column type; ``DECIMAL`` carries precision and scale."""

    kind: str
    precision: int = 0
    scale: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown column type {self.kind!r}")

    def __str__(self) -> str:
        if self.kind == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        return self.kind

    @property
    def numeric(self) -> bool:
        return self.kind in ("INTEGER", "DECIMAL", "FLOAT")

    @classmethod
    def parse(cls, text: str) -> SqlType:
        """Parse the catalog spelling produced by ``str()``."""
        text = text.strip().upper()
        match = _DECIMAL.match(text)
        if match:
            return cls("DECIMAL", int(match.group(1)), int(match.group(2)))
        return cls(text)


INTEGER = SqlType("INTEGER")
FLOAT = SqlType("FLOAT")
VARCHAR = SqlType("VARCHAR")

_DUCK_INTEGERS = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}


def from_duckdb(type_name: str) -> SqlType:
    """Map a DuckDB type name (as ``DESCRIBE`` prints it) to a :class:`SqlType`."""
    name = type_name.strip().upper()
    if name in _DUCK_INTEGERS:
        return INTEGER
    if name in ("DOUBLE", "FLOAT", "REAL"):
        return FLOAT
    match = _DECIMAL.match(name)
    if match:
        return SqlType("DECIMAL", int(match.group(1)), int(match.group(2)))
    if name == "VARCHAR" or name.startswith(("VARCHAR(", "ENUM(")):
        return VARCHAR
    if name == "BOOLEAN":
        return SqlType("BOOLEAN")
    if name == "DATE":
        return SqlType("DATE")
    if name.startswith("TIMESTAMP") and "TIME ZONE" not in name:
        return SqlType("TIMESTAMP")
    return SqlType("OTHER")


def from_sqlite(declared: str) -> SqlType:
    """Map a SQLite declared type, by SQLite's affinity rules (section 3.1) where they decide.

    SQLite has no date or boolean storage; columns *declared* DATE, DATETIME,
    TIMESTAMP or BOOLEAN hold ISO text and 0/1, and are presented with the
    declared meaning (see :func:`normalize_value`).
    """
    name = declared.strip().upper()
    if name == "DATE":
        return SqlType("DATE")
    if name in ("DATETIME", "TIMESTAMP"):
        return SqlType("TIMESTAMP")
    if "INT" in name:
        return INTEGER
    if any(word in name for word in ("CHAR", "CLOB", "TEXT")):
        return VARCHAR
    if any(word in name for word in ("REAL", "FLOA", "DOUB")):
        return FLOAT
    if name.startswith("BOOL"):
        return SqlType("BOOLEAN")
    if name in ("", "BLOB"):
        return SqlType("OTHER")
    # NUMERIC affinity: values are stored as integers or reals as they come.
    return FLOAT


def widen(a: SqlType, b: SqlType) -> SqlType | None:
    """The common type of one column hosted as ``a`` and ``b``; None if none exists.

    CSV shards of one table often disagree (a shard whose amounts happen to be
    whole numbers reads as INTEGER), so numeric kinds widen towards FLOAT the
    way a database would widen a UNION of the shards.
    """
    if a == b:
        return a
    if a.numeric and b.numeric:
        if "FLOAT" in (a.kind, b.kind):
            return FLOAT
        if a.kind == "DECIMAL" or b.kind == "DECIMAL":
            scale = max(a.scale, b.scale)
            digits = max(
                a.precision - a.scale if a.kind == "DECIMAL" else 19,
                b.precision - b.scale if b.kind == "DECIMAL" else 19,
            )
            return SqlType("DECIMAL", min(38, digits + scale), scale)
    if {a.kind, b.kind} == {"DATE", "TIMESTAMP"}:
        return SqlType("TIMESTAMP")
    return None


def normalize_value(value: Any, sql_type: SqlType) -> Any:
    """An engine's value in the Python type the catalog's type promises.

    SQLite returns dates as ISO text and booleans as 0/1; DuckDB returns real
    ``date``/``bool`` objects. Group keys and domains from both must compare
    equal, so they are normalised here.
    """
    if value is None:
        return None
    kind = sql_type.kind
    if kind == "DATE" and isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    if kind == "TIMESTAMP" and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if kind == "TIMESTAMP" and isinstance(value, dt.datetime) and value.tzinfo is not None:
        # A zoned engine value (PostgreSQL timestamptz): its wall-clock time is the key.
        return value.replace(tzinfo=None)
    if kind == "DATE" and isinstance(value, dt.datetime):
        return value.date()
    if kind == "TIMESTAMP" and type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    if kind == "BOOLEAN" and isinstance(value, int) and not isinstance(value, bool):
        return bool(value)
    if kind == "FLOAT" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
