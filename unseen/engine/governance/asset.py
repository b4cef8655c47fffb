"""Data asset registrations: a served table as the exchange registered and signed it.

A holder registers each table it serves with the exchange: owner, description,
columns with their types and classification grades (:mod:`unseen.engine.governance.grades`),
update frequency and the digest of the schema. The exchange signs the record
with its Ed25519 key (one of the keys holders trust as voucher issuers). The
holder loads the registration its config names for the table and refuses to
serve the table when the registration is missing (in governed mode), not signed
by a trusted issuer, retired, for another holder or table, or does not match
the table's actual schema (:func:`schema_digest`).

Renewal is a new registration of the same asset id with a higher ``serial``;
retirement is one with ``status = "retired"``. Holders log each registration
they load in their ledger (kind ``asset``), so both are ledgered.

Token: ``unseen-asset-v1.<payload>.<signature>`` (see :mod:`unseen.engine.governance.tokens`),
payload::

    {"type": "unseen.asset", "version": 1, "id": "asset-…", "serial": 1,
     "status": "active" | "retired", "holder": "grid", "table": "power",
     "owner": "…", "description": "…", "update_frequency": "monthly",
     "columns": [{"name": "uscc", "type": "VARCHAR", "grade": "internal"}, …],
     "schema_digest": HEX, "issuer": KEY_ID, "issued_at": TIME}
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.fields import one_line, utc_now
from unseen.engine.governance.grades import GRADES
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    canonical_json,
    parse_utc,
    utc_text,
)
from unseen.engine.governance.tokens import Token, seal
from unseen.engine.query.types import SqlType

__all__ = [
    "PREFIX",
    "STATUSES",
    "Registration",
    "asset_id",
    "register",
    "schema_digest",
    "verify_registration",
]

PREFIX = "unseen-asset-v1"
STATUSES = ("active", "retired")
_TAG = b"unseen.asset.v1\n"
_KEYS = {
    "type",
    "version",
    "id",
    "serial",
    "status",
    "holder",
    "table",
    "owner",
    "description",
    "update_frequency",
    "columns",
    "schema_digest",
    "issuer",
    "issued_at",
}


def schema_digest(schema: Sequence[tuple[str, SqlType | str]]) -> str:
    """Hex SHA-256 of a table's columns (lower-cased names and types, in order)."""
    return hashlib.sha256(
        canonical_json([[name.lower(), str(kind)] for name, kind in schema])
    ).hexdigest()


def asset_id(holder: str, table: str) -> str:
    """The default, stable asset id of ``holder``'s table: renewals keep it."""
    return "asset-" + hashlib.sha256(f"{holder}\n{table.lower()}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Registration:
    """A decoded registration (signature not yet checked: see :func:`verify_registration`)."""

    token: Token

    @property
    def data(self) -> dict[str, Any]:
        return self.token.data

    @property
    def asset_id(self) -> str:
        return str(self.data["id"])

    @property
    def table(self) -> str:
        return str(self.data["table"])

    @property
    def holder(self) -> str:
        return str(self.data["holder"])

    @property
    def serial(self) -> int:
        return int(self.data["serial"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def issuer(self) -> str:
        return str(self.data["issuer"])

    @property
    def digest(self) -> str:
        return self.token.digest

    @property
    def grades(self) -> dict[str, str]:
        """Column (lower-case) -> grade."""
        return {c["name"].lower(): c["grade"] for c in self.data["columns"]}

    @property
    def schema(self) -> list[tuple[str, str]]:
        return [(c["name"], c["type"]) for c in self.data["columns"]]

    def encode(self) -> str:
        return self.token.encode()

    def save(self, path: Path | str) -> None:
        Path(path).write_text(self.encode() + "\n", encoding="ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> Registration:
        token = Token.decode(text, PREFIX)
        _check_fields(token.data)
        return cls(token)

    @classmethod
    def load(cls, path: Path | str) -> Registration:
        token = Token.load(path, PREFIX)
        try:
            _check_fields(token.data)
        except PolicyError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return cls(token)


def _check_fields(data: Mapping[str, Any]) -> None:
    if data.get("type") != "unseen.asset" or data.get("version") != 1:
        raise PolicyError("not a version 1 asset registration")
    if set(data) != _KEYS:
        raise PolicyError("the asset registration has missing or unknown fields")
    if data["status"] not in STATUSES:
        raise PolicyError(f"unknown registration status {data['status']!r}")
    if not isinstance(data["serial"], int) or data["serial"] < 1:
        raise PolicyError("a registration's serial is a positive integer")
    columns = data["columns"]
    if not isinstance(columns, list) or not columns:
        raise PolicyError("a registration lists the table's columns")
    for col in columns:
        if not isinstance(col, dict) or set(col) != {"name", "type", "grade"}:
            raise PolicyError("a registered column is {name, type, grade}")
        if col["grade"] not in GRADES:
            raise PolicyError(f"unknown grade {col['grade']!r} (grades: {', '.join(GRADES)})")
    if schema_digest([(c["name"], c["type"]) for c in columns]) != data["schema_digest"]:
        raise PolicyError("the registration's schema digest does not match its columns")
    try:
        parse_utc(data["issued_at"])
    except ValueError as exc:
        raise PolicyError(f"registration issued_at: {exc}") from exc


def register(
    key: SigningKey,
    *,
    holder: str,
    table: str,
    schema: Sequence[tuple[str, SqlType | str]],
    grades: Mapping[str, str],
    owner: str,
    description: str = "",
    update_frequency: str = "unspecified",
    default_grade: str | None = None,
    serial: int = 1,
    status: str = "active",
    asset: str | None = None,
    now: dt.datetime | None = None,
) -> Registration:
    """The exchange signs a registration of ``holder``'s ``table`` with this ``schema``.

    Every column needs a grade: from ``grades`` (keyed by name, any case) or
    ``default_grade``. Raises :class:`ConfigError` naming what is missing.
    """
    by_name = {k.lower(): v for k, v in grades.items()}
    known = {name.lower() for name, _ in schema}
    for name in by_name:
        if name not in known:
            raise ConfigError(f"table {table} has no column {name} to grade")
    columns = []
    for name, kind in schema:
        grade = by_name.get(name.lower(), default_grade)
        if grade is None:
            raise ConfigError(f"column {name} has no grade (give one or a default grade)")
        if grade not in GRADES:
            raise ConfigError(f"unknown grade {grade!r} (grades: {', '.join(GRADES)})")
        columns.append({"name": name, "type": str(kind), "grade": grade})
    if status not in STATUSES:
        raise ConfigError(f"status must be one of {', '.join(STATUSES)}")
    data = {
        "type": "unseen.asset",
        "version": 1,
        "id": one_line(asset or asset_id(holder, table), "asset id", 128),
        "serial": serial,
        "status": status,
        "holder": one_line(holder, "holder", 256),
        "table": one_line(table, "table", 256).lower(),
        "owner": one_line(owner, "owner", 1024),
        "description": description.strip(),
        "update_frequency": one_line(update_frequency, "update frequency", 128),
        "columns": columns,
        "schema_digest": schema_digest(schema),
        "issuer": key.key_id,
        "issued_at": utc_text(utc_now(now)),
    }
    return Registration(seal(key, PREFIX, _TAG, data))


def verify_registration(
    registration: Registration,
    trusted: Mapping[str, PublicKey],
    *,
    holder: str | None = None,
    table: str | None = None,
    schema: Sequence[tuple[str, SqlType | str]] | None = None,
) -> None:
    """Check signature, status and (when given) holder, table and actual schema.

    Raises:
        PolicyError: naming the first problem, e.g. ``asset asset-… does not
            match table power's schema (a column was added, removed or retyped)``.
    """
    aid = registration.asset_id
    key = trusted.get(registration.issuer)
    if key is None:
        raise PolicyError(
            f"asset {aid} was registered by key {registration.issuer[:16]}, "
            "which this holder does not trust"
        )
    if not registration.token.signature_valid(key, _TAG):
        raise PolicyError(
            f"asset {aid}'s registration has an invalid signature (forged or altered)"
        )
    if registration.status != "active":
        raise PolicyError(f"asset {aid} is {registration.status}")
    if holder is not None and registration.holder != holder:
        raise PolicyError(
            f"asset {aid} is registered for holder {registration.holder}, not {holder}"
        )
    if table is not None and registration.table != table.lower():
        raise PolicyError(f"asset {aid} registers table {registration.table}, not {table}")
    if schema is not None and schema_digest(schema) != registration.data["schema_digest"]:
        raise PolicyError(
            f"asset {aid} does not match table {registration.table}'s schema "
            "(a column was added, removed or retyped since it was registered)"
        )
