"""Checks on the text, id and time fields of governance records (vouchers, revocations).

A module of its own because both :mod:`unseen.engine.governance.voucher` and
:mod:`unseen.engine.governance.revocation`
need them, and the voucher check consults revocations, so neither can import the
other's helpers.
"""

from __future__ import annotations

import datetime as dt
import re

from unseen.engine.errors import ConfigError

__all__ = ["aware_utc", "is_voucher_id", "one_line", "utc_now"]

_VOUCHER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def is_voucher_id(text: object) -> bool:
    """Whether ``text`` is spelled like a voucher id.

    That is 1-128 characters of letters, digits and ``. _ : -``, starting with a
    letter or digit.
    """
    return isinstance(text, str) and _VOUCHER_ID.fullmatch(text) is not None


def one_line(value: object, what: str, limit: int = 1024) -> str:
    """``value``, checked to be one line of text of at most ``limit`` characters.

    Raises :class:`ConfigError` naming ``what`` when it is not a string, is
    empty or too long, holds control characters or is not valid Unicode.
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise ConfigError(f"{what} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{what} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{what} is not valid Unicode text") from exc
    return value


def aware_utc(moment: dt.datetime, what: str) -> dt.datetime:
    """``moment`` converted to UTC; raises :class:`ConfigError` naming ``what``
    unless it is a timezone-aware datetime."""
    if not isinstance(moment, dt.datetime):
        raise ConfigError(f"{what} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(f"{what} must be timezone-aware (UTC)")
    return moment.astimezone(dt.UTC)


def utc_now(now: dt.datetime | None) -> dt.datetime:
    """``now`` in UTC (checked as :func:`aware_utc` does), or the clock's time when None."""
    return aware_utc(now, "now") if now is not None else dt.datetime.now(dt.UTC)
