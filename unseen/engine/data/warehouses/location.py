"""Warehouse URLs: which engine, where, which table, and never a password.

``--table NAME=SOURCE`` takes a file path or a URL. A URL names a table in
a warehouse the holder already runs::

    postgresql://USER@HOST:PORT/DB[?table=T&sslmode=...]   PostgreSQL (psycopg 3)
    mysql://USER@HOST:PORT/DB[?table=T&ssl_ca=...]         MySQL / MariaDB (PyMySQL)
    spark://HOST:PORT/[DB][?table=T]                       Spark SQL, standalone master
    spark+local:///[DB][?table=T&cores=N]                  Spark SQL, local mode

The table is ``?table=`` when given, else the served name. A password in the
URL is refused: command lines end up in shell histories, process listings
and logs. Each driver reads its engine's own secret stores instead
(``PGPASSWORD``, ``~/.pgpass``, a libpq service; ``MYSQL_PWD`` or an option
file). Only :meth:`WarehouseURL.redacted` is ever logged or quoted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, unquote, urlsplit

from unseen.engine.errors import ConfigError

__all__ = ["Location", "WarehouseURL", "is_url", "parse_url"]

Location = str | os.PathLike[str]
"""A ``--table`` source: a warehouse URL or a file path."""

_SCHEMES = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "spark": "spark",
    "spark+local": "spark",
}

# Query parameters each engine accepts besides ``table``; anything else is a
# typo or an attempt to smuggle driver options, and is refused.
_OPTIONS = {
    "postgresql": {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "service",
        "passfile",
        "connect_timeout",
        "application_name",
    },
    "mysql": {"ssl_ca", "ssl_cert", "ssl_key", "option_file", "connect_timeout"},
    "spark": {"cores"},
}

_PASSWORD_HELP = {
    "postgresql": "PGPASSWORD, ~/.pgpass (or ?passfile=) or a libpq service (?service=)",
    "mysql": "MYSQL_PWD or an option file (~/.my.cnf or ?option_file=)",
    "spark": "the cluster's own authentication (spark-defaults.conf)",
}


def is_url(location: Location) -> bool:
    """Whether a ``--table`` source names a warehouse (``scheme://...``) rather than a file."""
    return isinstance(location, str) and "://" in location


@dataclass(frozen=True)
class WarehouseURL:
    """A parsed warehouse URL (no password: :func:`parse_url` refuses one)."""

    engine: str  # "postgresql", "mysql" or "spark"
    scheme: str  # as written, e.g. "spark+local"
    user: str | None
    host: str | None
    port: int | None
    database: str | None
    table: str
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def redacted(self) -> str:
        """The URL as it may be logged: no password could be in it, and no option values."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        where = f"{user}{self.host or ''}{port}/{self.database or ''}"
        return f"{self.scheme}://{where}?table={self.table}"


def parse_url(text: str, served: str) -> WarehouseURL:
    """Parse a warehouse URL for the served table ``served``.

    Raises:
        ConfigError: an unknown scheme or option, a bad port, or a password in the URL.
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(f"table {served}: the source URL has an invalid host or port") from None
    engine = _SCHEMES.get(parts.scheme.lower())
    if engine is None:
        known = ", ".join(sorted(_SCHEMES))
        raise ConfigError(
            f"table {served}: unknown source scheme {parts.scheme!r} (known: {known})"
        )
    if parts.password is not None:
        # Never echo the URL: it holds the secret.
        raise ConfigError(
            f"table {served}: do not put a password in the source URL (it would show in "
            f"process listings and logs); use {_PASSWORD_HELP[engine]}"
        )
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "table" and key not in _OPTIONS[engine]:
            allowed = ", ".join(sorted({"table", *_OPTIONS[engine]}))
            raise ConfigError(
                f"table {served}: unknown option {key!r} in the source URL (allowed: {allowed})"
            )
        options[key] = value
    table = options.pop("table", "") or served
    database = unquote(parts.path.lstrip("/")) or None
    return WarehouseURL(
        engine=engine,
        scheme=parts.scheme.lower(),
        user=unquote(parts.username) if parts.username else None,
        host=parts.hostname,
        port=port,
        database=database,
        table=table,
        options=MappingProxyType(options),
    )
