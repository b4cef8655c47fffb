"""Calendar arithmetic the way DuckDB does it: intervals, EXTRACT, date_trunc, casts.

The analyst's side needs these three times: to fold constant date arithmetic
(``DATE '1998-12-01' - INTERVAL '90' DAY``) into one literal before a plan
travels, to derive a calendar GROUP BY key's domain from a column's published
bounds, and to evaluate output expressions after decryption. Holders compute
the same functions in their own engine (``unseen.engine.data.pushdown``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from unseen.engine.errors import PlanError, QueryError
from unseen.engine.query.types import SqlType

__all__ = [
    "INTERVAL_UNITS",
    "add_interval",
    "calendar_domain",
    "cast_value",
    "extract_part",
    "truncate",
]

# Interval units and how each is carried: (months, days, seconds) per unit.
INTERVAL_UNITS: dict[str, tuple[int, int, int]] = {
    "year": (12, 0, 0),
    "quarter": (3, 0, 0),
    "month": (1, 0, 0),
    "week": (0, 7, 0),
    "day": (0, 1, 0),
    "hour": (0, 0, 3600),
    "minute": (0, 0, 60),
    "second": (0, 0, 1),
}


def add_interval(
    value: dt.date, months: int = 0, days: int = 0, seconds: int = 0
) -> dt.date | dt.datetime:
    """``value + interval``; months clamp to the month's last day (Jan 31 + 1 month = Feb 28/29).

    A DATE moved by whole days or months stays a DATE (DuckDB would print a
    TIMESTAMP at midnight; every comparison with a DATE column is the same and
    SQLite holders compare dates as text); any time part makes it a TIMESTAMP.
    """
    if months:
        total = value.year * 12 + (value.month - 1) + months
        year, month = divmod(total, 12)
        if not 1 <= year <= 9999:
            raise QueryError("date arithmetic leaves the years 1..9999")
        day = min(value.day, calendar.monthrange(year, month + 1)[1])
        value = value.replace(year=year, month=month + 1, day=day)
    try:
        if seconds and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        return value + dt.timedelta(days=days, seconds=seconds)
    except OverflowError as exc:
        raise QueryError("date arithmetic leaves the years 1..9999") from exc


def extract_part(part: str, value: Any) -> int | None:
    """``EXTRACT(part FROM value)`` for the parts in ``unseen.engine.query.expr.EXTRACT_PARTS``."""
    if value is None:
        return None
    if not isinstance(value, dt.date):
        raise QueryError(f"EXTRACT needs a date or timestamp, not {type(value).__name__}")
    if part == "year":
        return value.year
    if part == "quarter":
        return (value.month + 2) // 3
    if part == "month":
        return value.month
    if part == "day":
        return value.day
    if part == "dow":
        return value.isoweekday() % 7  # Sunday is 0, as DuckDB and SQLite's %w
    if part == "doy":
        return value.timetuple().tm_yday
    if isinstance(value, dt.datetime) and part in ("hour", "minute"):
        return value.hour if part == "hour" else value.minute
    raise QueryError(f"EXTRACT({part.upper()} ...) is not supported here")


def truncate(unit: str, value: Any) -> dt.datetime | None:
    """``date_trunc(unit, value)``: a TIMESTAMP at the start of the unit."""
    if value is None:
        return None
    if not isinstance(value, dt.date):
        raise QueryError(f"date_trunc needs a date or timestamp, not {type(value).__name__}")
    month = value.month
    if unit == "year":
        month = 1
    elif unit == "quarter":
        month = 3 * ((value.month - 1) // 3) + 1
    day = value.day if unit == "day" else 1
    if unit not in ("year", "quarter", "month", "day"):
        raise QueryError(f"date_trunc('{unit}', ...) is not supported")
    return dt.datetime(value.year, month, day)


def calendar_domain(
    key: str, unit: str, low: dt.date, high: dt.date, limit: int = 16_384
) -> tuple[Any, ...]:
    """Every value a calendar key takes between two published bounds, in order.

    ``key`` is ``"extract"`` or ``"date_trunc"``; ``unit`` its part or unit.
    Parts that cycle (month, day, dow ...) take their whole cycle. More than
    ``limit`` values (the plan's group limit) is refused before they are built.
    """
    if key != "extract" or unit == "year":
        span = {"year": 1, "quarter": 4, "month": 12, "day": 366}.get(unit, 366)
        if (high.year - low.year + 1) * span > limit * 2:
            raise PlanError(
                f"{key}({unit}) over {low.year}..{high.year} has more than {limit} groups; "
                "narrow it with WHERE ... IN (...) or a coarser unit"
            )
    if key == "extract":
        cycles = {
            "quarter": range(1, 5),
            "month": range(1, 13),
            "day": range(1, 32),
            "dow": range(7),
            "doy": range(1, 367),
            "hour": range(24),
            "minute": range(60),
        }
        if unit == "year":
            return tuple(range(low.year, high.year + 1))
        return tuple(cycles[unit])
    start, end = truncate(unit, low), truncate(unit, high)
    assert start is not None and end is not None
    step = {"year": (12, 0), "quarter": (3, 0), "month": (1, 0), "day": (0, 1)}[unit]
    out: list[dt.datetime] = []
    current = start
    while current <= end:
        if len(out) >= limit:
            raise PlanError(
                f"date_trunc('{unit}') has more than {limit} groups; use a coarser unit"
            )
        out.append(current)
        moved = add_interval(current, months=step[0], days=step[1])
        assert isinstance(moved, dt.datetime)
        current = moved
    return tuple(out)


def cast_value(value: Any, target: SqlType) -> Any:
    """``CAST(value AS target)`` for the casts a plan allows, DuckDB's rounding rules."""
    if value is None:
        return None
    kind = target.kind
    try:
        if kind == "INTEGER":
            if isinstance(value, (float, Decimal)):
                return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            return int(value)
        if kind == "DECIMAL":
            quantum = Decimal(1).scaleb(-target.scale)
            return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
        if kind == "FLOAT":
            return float(value)
        if kind == "VARCHAR":
            return str(value)
        if kind == "BOOLEAN":
            return bool(value)
        if kind == "DATE":
            if isinstance(value, dt.datetime):
                return value.date()
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if kind == "TIMESTAMP":
            if isinstance(value, dt.datetime):
                return value
            if isinstance(value, dt.date):
                return dt.datetime(value.year, value.month, value.day)
            return dt.datetime.fromisoformat(str(value))
    except (ValueError, ArithmeticError) as exc:
        raise QueryError(f"cannot CAST a {type(value).__name__} value to {target}") from exc
    raise QueryError(f"cannot CAST to {target}")
