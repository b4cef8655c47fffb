"""Data asset vouchers: signed, scoped, time-boxed grants that let an analyst use a holder's data.

An *issuer* (the data owner, or the exchange acting for it) signs a
:class:`Voucher` granting one analyst key the right to read named columns of
named tables at one holder, for named operations, for a purpose, optionally
only for named entities, within a validity window and a query quota. The
analyst attaches the signed voucher to its requests; the coordinator forwards
it untouched; the holder checks it (:func:`verify`, then :func:`authorize`)
before touching data, and logs the outcome (:mod:`unseen.engine.governance.ledger`).

Signed form. The voucher's fields become one canonical JSON byte string (the
*payload*, :func:`unseen.engine.governance.signing.canonical_json`); the issuer signs
``b"unseen.voucher.v1\\n" + payload`` with Ed25519. The portable text form is::

    unseen-voucher-v1.<base64url(payload)>.<base64url(signature)>

one ASCII line, the same in a file (with a trailing newline), on a command
line, and on the wire (``SignedVoucher.to_bytes()``). Decoding is strict: the
payload must be exactly the canonical encoding of the voucher it describes, so
a signature covers exactly one byte string and one meaning.

Payload schema (every key always present; unknown keys are refused)::

    {"type": "unseen.voucher", "version": 1, "id": "v-…",
     "issuer": KEY_ID, "grantee": {"key_id": KEY_ID, "subject": null | "CN=…"},
     "holder": "tax", "purpose": "…",
     "scope": {"table": {"column": ["aggregate", "filter"]}},
     "entities": null | {"ids": ["…", …]} | {"sha256": HEX},
     "not_before": TIME, "not_after": TIME, "issued_at": TIME, "quota": null | N,
     "model": {"link": "logistic", "features": [HEX, …]}}   # only when a model is approved

``model`` (optional, the one key that may be absent) is the issuer's approval
of a scoring model (:class:`unseen.engine.governance.approval.ModelApproval`): a score under this
voucher may use only weight ciphertexts whose feature digests it names, and a
score under a voucher without it is refused.

plus, only when the issuer names them, ``"federation": ["bank-a", "bank-b", …]``:
the holders that must take part, exactly, in every masked aggregate this
voucher admits (see :mod:`unseen.engine.privacy.participants`). Vouchers without it keep
their payload, so older vouchers stay valid.

``KEY_ID`` is a hex SHA-256 (an analyst's CKKS public context, or an issuer's
raw Ed25519 key); ``TIME`` is :func:`unseen.engine.governance.signing.utc_text`. Table and column
names are lower-cased (SQL identifiers match case-insensitively); lists are
sorted and duplicate-free.

Entity scope, two forms. ``{"ids": [...]}`` lists the entities the grant
covers; a request may name any subset of them. ``{"sha256": H}`` commits to one
exact set without listing it (a large batch, or ids the issuer prefers not to
spell out in a token that travels): the request's set of entity ids must hash
to ``H`` under :func:`entity_set_digest`. Either way, a voucher with an entity
scope refuses requests that name no entities (e.g. an aggregate over all rows).
Entity ids are compared as text (see :func:`entity_ids`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unseen.engine.errors import ConfigError, PlanError, PolicyError, SignatureError
from unseen.engine.governance.approval import ModelApproval
from unseen.engine.governance.fields import aware_utc, is_voucher_id, one_line, utc_now
from unseen.engine.governance.revocation import Revocation
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
    is_hex_digest,
    is_key_id,
    parse_utc,
    utc_text,
)
from unseen.engine.query.catalog import USES
from unseen.engine.query.expr import column_names, column_roles
from unseen.engine.query.plan import AggregatePlan, derived_group_use

__all__ = [
    "MAX_VOUCHER_BYTES",
    "OPERATIONS",
    "TOKEN_PREFIX",
    "VERSION",
    "AccessRequest",
    "Scope",
    "SignedVoucher",
    "Voucher",
    "VoucherPolicy",
    "authorize",
    "entity_ids",
    "entity_set_digest",
    "issue",
    "normalize_scope",
    "plan_reads",
    "verify",
]

VERSION = 1
TOKEN_PREFIX = "unseen-voucher-v1"  # noqa: S105 - a format tag, not a secret
OPERATIONS = USES
# Large entity lists belong in the sha256 form; this bounds what a holder parses.
MAX_VOUCHER_BYTES = 16 << 20
_SIGNING_TAG = b"unseen.voucher.v1\n"
_TYPE = "unseen.voucher"
_PAYLOAD_KEYS = frozenset(
    {
        "type",
        "version",
        "id",
        "issuer",
        "grantee",
        "holder",
        "purpose",
        "scope",
        "entities",
        "not_before",
        "not_after",
        "issued_at",
        "quota",
    }
)
# consent (issue 16): present only when set, so vouchers without them keep their payload.
# Optional lists of names, absent from the payload when unset (``model`` is a record).
_OPTIONAL_KEYS = frozenset({"assets", "consents", "federation"})

Scope = Mapping[str, Mapping[str, frozenset[str]]]
"""Tables → columns → operations; names lower-case; read-only once normalised."""


def _short(kid: str) -> str:
    return kid[:16]


def normalize_scope(scope: Mapping[str, Mapping[str, Iterable[str]]]) -> Scope:
    """A read-only copy of ``scope`` with lower-case names; refuses unknown operations.

    A table may map to no columns: that grants (or, in a request, reads) the
    table only, as ``COUNT(*)`` does. Raises :class:`ConfigError`.
    """
    if not isinstance(scope, Mapping):
        raise ConfigError("scope must map tables to columns to operations")
    tables: dict[str, Mapping[str, frozenset[str]]] = {}
    for table, columns in scope.items():
        tname = one_line(table, "scope table name", 256).lower()
        if tname in tables:
            raise ConfigError(f"scope names table {tname} twice")
        if not isinstance(columns, Mapping):
            raise ConfigError(f"scope of table {tname} must map columns to operations")
        cols: dict[str, frozenset[str]] = {}
        for column, ops in columns.items():
            cname = one_line(column, f"scope column name in {tname}", 256).lower()
            if cname in cols:
                raise ConfigError(f"scope names column {tname}.{cname} twice")
            if isinstance(ops, str) or not isinstance(ops, Iterable):
                raise ConfigError(f"operations of {tname}.{cname} must be a list")
            opset = frozenset(ops)
            unknown = sorted(str(o) for o in opset - set(OPERATIONS))
            if unknown:
                raise ConfigError(
                    f"scope {tname}.{cname}: unknown operation {unknown[0]!r} "
                    f"(allowed: {', '.join(OPERATIONS)})"
                )
            if not opset:
                raise ConfigError(f"scope {tname}.{cname} lists no operations")
            cols[cname] = opset
        tables[tname] = MappingProxyType(cols)
    return MappingProxyType(tables)


def entity_ids(values: Iterable[object]) -> frozenset[str]:
    """Entity ids as vouchers compare them: text as is, integers in decimal.

    ``WHERE account IN (1001, 1002)`` and an entities file holding ``1001``
    must name the same entity; other kinds (floats, dates, booleans) are not
    entity ids and are refused with :class:`PlanError`.
    """
    if isinstance(values, (list, tuple)) and all(type(v) is str for v in values):
        return frozenset(values)  # a score's entity list: a million ids, 3x faster this way
    out: set[str] = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise PlanError(f"an entity id must be text or an integer, not {type(value).__name__}")
        out.add(str(value))
    return frozenset(out)


def entity_set_digest(ids: Iterable[str]) -> str:
    """The hex SHA-256 naming one set of entity ids: of the canonical JSON of the sorted set."""
    return hashlib.sha256(canonical_json(sorted(set(ids)))).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Voucher:
    """The content of a grant; construct it with :func:`issue`, read it from :class:`SignedVoucher`.

    Fields are validated and normalised on construction (names lower-cased,
    times converted to UTC), so two equal vouchers always have one payload.
    Raises :class:`ConfigError` on invalid fields.
    """

    voucher_id: str
    issuer: str
    grantee: str
    holder: str
    scope: Scope
    purpose: str
    not_before: dt.datetime
    not_after: dt.datetime
    issued_at: dt.datetime
    quota: int | None = None
    grantee_subject: str | None = None
    entity_ids: frozenset[str] | None = None
    entity_digest: str | None = None
    model: ModelApproval | None = None
    # The holders that must all take part in a masked aggregate
    # (unseen.engine.privacy.participants).
    federation: frozenset[str] | None = None
    # Issue 16: the asset registrations the grant is for (valid only for the
    # tables they register) and the digests of the subjects' consents it relies on.
    assets: frozenset[str] | None = None
    consents: frozenset[str] | None = None
    # -- dp: the zCDP budget rho each holder charges dp queries to (unseen.engine.privacy.budget) --
    privacy_rho: Fraction | None = None
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ConfigError(f"unsupported voucher version {self.version!r}")
        if not is_voucher_id(self.voucher_id):
            raise ConfigError(
                "voucher id must be 1-128 characters of letters, digits and . _ : - "
                "starting with a letter or digit"
            )
        for what, kid in (("issuer", self.issuer), ("grantee", self.grantee)):
            if not is_key_id(kid):
                raise ConfigError(f"voucher {what} must be a key id (64 lowercase hex digits)")
        one_line(self.holder, "voucher holder", 256)
        one_line(self.purpose, "voucher purpose", 4096)
        if self.grantee_subject is not None:
            one_line(self.grantee_subject, "voucher grantee subject")
        object.__setattr__(self, "scope", normalize_scope(self.scope))
        if not self.scope:
            raise ConfigError("voucher scope names no table")
        for name in ("not_before", "not_after", "issued_at"):
            object.__setattr__(self, name, aware_utc(getattr(self, name), f"voucher {name}"))
        if self.not_after <= self.not_before:
            raise ConfigError("voucher not_after must be later than not_before")
        if self.quota is not None and (
            isinstance(self.quota, bool) or not isinstance(self.quota, int) or self.quota < 1
        ):
            raise ConfigError("voucher quota must be a positive integer or absent")
        if self.entity_ids is not None and self.entity_digest is not None:
            raise ConfigError("a voucher's entity scope is either a list of ids or a digest")
        if self.entity_ids is not None:
            ids = frozenset(self.entity_ids)
            if not ids:
                raise ConfigError("voucher entity list is empty")
            for entity in ids:
                one_line(entity, "entity id", 1024)
            object.__setattr__(self, "entity_ids", ids)
        if self.federation is not None:
            names = frozenset(self.federation)
            if len(names) < 2:
                raise ConfigError("a voucher's federation names at least two holders")
            for name in names:
                one_line(name, "federation holder", 256)
            object.__setattr__(self, "federation", names)
        if self.privacy_rho is not None:
            rho = Fraction(self.privacy_rho)
            if rho <= 0:
                raise ConfigError("a voucher's privacy budget rho must be positive")
            object.__setattr__(self, "privacy_rho", rho)
        if self.entity_digest is not None and not (is_hex_digest(self.entity_digest)):
            raise ConfigError("voucher entity digest must be 64 lowercase hex digits")
        for name in ("assets", "consents"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not value:
                raise ConfigError(f"voucher {name} must be a non-empty list or absent")
            value = frozenset(value)
            for item in value:
                one_line(item, f"voucher {name} entry", 128)
                if name == "consents" and not is_hex_digest(item):
                    raise ConfigError("a voucher's consents are 64-hex-digit digests")
            object.__setattr__(self, name, value)

    def payload(self) -> bytes:
        """The canonical bytes the issuer signs (see the module docstring)."""
        if self.entity_ids is not None:
            entities: dict[str, Any] | None = {"ids": sorted(self.entity_ids)}
        elif self.entity_digest is not None:
            entities = {"sha256": self.entity_digest}
        else:
            entities = None
        # Optional keys are written only when set, so older vouchers keep their bytes.
        body: dict[str, Any] = {
            name: sorted(value)
            for name in sorted(_OPTIONAL_KEYS)
            if (value := getattr(self, name)) is not None
        }
        body.update(
            {
                "type": _TYPE,
                "version": self.version,
                "id": self.voucher_id,
                "issuer": self.issuer,
                "grantee": {"key_id": self.grantee, "subject": self.grantee_subject},
                "holder": self.holder,
                "purpose": self.purpose,
                "scope": {
                    t: {c: sorted(ops) for c, ops in cols.items()} for t, cols in self.scope.items()
                },
                "entities": entities,
                "not_before": utc_text(self.not_before),
                "not_after": utc_text(self.not_after),
                "issued_at": utc_text(self.issued_at),
                "quota": self.quota,
            }
        )
        if self.model is not None:
            body["model"] = self.model.to_dict()
        if self.privacy_rho is not None:
            body["privacy"] = {"rho": str(self.privacy_rho)}
        return canonical_json(body)

    @classmethod
    def from_payload(cls, payload: bytes) -> Voucher:
        """Parse a payload; refuses (``PolicyError``) anything but a canonical one."""
        try:
            data = json.loads(payload.decode("utf-8"))
            voucher = cls._from_dict(data)
        except (ValueError, TypeError, KeyError, ConfigError) as exc:
            raise PolicyError(f"the voucher is malformed: {exc}") from exc
        if voucher.payload() != payload:
            raise PolicyError("the voucher is malformed: its payload is not in canonical form")
        return voucher

    @classmethod
    def _from_dict(cls, data: Any) -> Voucher:
        if not isinstance(data, dict):
            raise ValueError("payload is not a JSON object")
        if data.get("type") != _TYPE:
            raise ValueError(f"payload type is not {_TYPE}")
        if data.get("version") != VERSION:
            raise ValueError(f"unsupported voucher version {data.get('version')!r}")
        keys = set(data) - _OPTIONAL_KEYS - {"model", "privacy"}
        if keys != _PAYLOAD_KEYS:
            extra, missing = sorted(keys - _PAYLOAD_KEYS), sorted(_PAYLOAD_KEYS - keys)
            raise ValueError(
                f"unknown key {extra[0]!r}" if extra else f"missing key {missing[0]!r}"
            )
        grantee = data["grantee"]
        if not isinstance(grantee, dict) or set(grantee) != {"key_id", "subject"}:
            raise ValueError("grantee must be {key_id, subject}")
        entities = data["entities"]
        ids: frozenset[str] | None = None
        digest: str | None = None
        if entities is not None:
            if not isinstance(entities, dict) or len(entities) != 1:
                raise ValueError("entities must be null, {ids} or {sha256}")
            if "ids" in entities:
                if not isinstance(entities["ids"], list):
                    raise ValueError("entities.ids must be a list")
                ids = frozenset(entities["ids"])
            elif "sha256" in entities:
                digest = entities["sha256"]
            else:
                raise ValueError("entities must be null, {ids} or {sha256}")
        scope = data["scope"]
        if not isinstance(scope, dict) or not all(isinstance(c, dict) for c in scope.values()):
            raise ValueError("scope must map tables to columns to operations")
        for cols in scope.values():
            for ops in cols.values():
                if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
                    raise ValueError("operations must be a list of strings")
        federation = data.get("federation")
        if federation is not None and (
            not isinstance(federation, list) or not all(isinstance(h, str) for h in federation)
        ):
            raise ValueError("federation must be a list of holder names")
        privacy = data.get("privacy")
        if privacy is not None and (
            not isinstance(privacy, dict)
            or set(privacy) != {"rho"}
            or not isinstance(privacy["rho"], str)
        ):
            raise ValueError('privacy must be {"rho": "<number>"}')
        return cls(
            voucher_id=data["id"],
            issuer=data["issuer"],
            grantee=grantee["key_id"],
            grantee_subject=grantee["subject"],
            holder=data["holder"],
            purpose=data["purpose"],
            scope=scope,
            entity_ids=ids,
            entity_digest=digest,
            not_before=parse_utc(data["not_before"]),
            not_after=parse_utc(data["not_after"]),
            issued_at=parse_utc(data["issued_at"]),
            quota=data["quota"],
            model=ModelApproval.from_dict(data["model"]) if "model" in data else None,
            federation=frozenset(federation) if federation is not None else None,
            assets=_optional_list(data, "assets"),
            consents=_optional_list(data, "consents"),
            privacy_rho=Fraction(privacy["rho"]) if privacy is not None else None,
        )


def _optional_list(data: Mapping[str, Any], name: str) -> frozenset[str] | None:
    if name not in data:
        return None
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return frozenset(value)


@dataclass(frozen=True)
class SignedVoucher:
    """A voucher's canonical payload and the issuer's signature over it.

    ``voucher`` is parsed (strictly) on construction, so holding a
    ``SignedVoucher`` means the payload is well formed — not that it is
    trusted: that is :func:`verify`'s job.
    """

    payload: bytes
    signature: bytes
    voucher: Voucher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.payload) > MAX_VOUCHER_BYTES:
            raise PolicyError(f"the voucher is larger than {MAX_VOUCHER_BYTES} bytes")
        if len(self.signature) != 64:
            raise PolicyError("the voucher is malformed: its signature is not 64 bytes")
        object.__setattr__(self, "voucher", Voucher.from_payload(self.payload))

    @property
    def voucher_id(self) -> str:
        return self.voucher.voucher_id

    def encode(self) -> str:
        """The one-line portable form ``unseen-voucher-v1.<payload>.<signature>``."""
        return f"{TOKEN_PREFIX}.{b64encode(self.payload)}.{b64encode(self.signature)}"

    def to_bytes(self) -> bytes:
        """The portable form as ASCII bytes, for a ``bytes`` field on the wire."""
        return self.encode().encode("ascii")

    @classmethod
    def decode(cls, text: str | bytes) -> SignedVoucher:
        """Parse the portable form (surrounding whitespace ignored); raises ``PolicyError``."""
        if isinstance(text, bytes):
            if len(text) > 2 * MAX_VOUCHER_BYTES:
                raise PolicyError(f"the voucher is larger than {MAX_VOUCHER_BYTES} bytes")
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError as exc:
                raise PolicyError("the voucher is malformed: not ASCII text") from exc
        parts = text.strip().split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise PolicyError(f"the voucher is malformed: expected {TOKEN_PREFIX}.<payload>.<sig>")
        try:
            payload, signature = b64decode(parts[1]), b64decode(parts[2])
        except ValueError as exc:
            raise PolicyError(f"the voucher is malformed: {exc}") from exc
        return cls(payload, signature)

    def save(self, path: Path | str) -> None:
        """Write the portable form and a newline to ``path`` (a voucher is not a secret)."""
        Path(path).write_text(self.encode() + "\n", encoding="ascii")

    @classmethod
    def load(cls, path: Path | str) -> SignedVoucher:
        """Read a voucher file; a missing file is a :class:`ConfigError`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read voucher {path}: {exc.strerror}") from exc
        return cls.decode(data)


def issue(
    key: SigningKey,
    *,
    grantee: str,
    holder: str,
    scope: Mapping[str, Mapping[str, Iterable[str]]],
    purpose: str,
    not_after: dt.datetime,
    not_before: dt.datetime | None = None,
    quota: int | None = None,
    entities: Iterable[str] | None = None,
    entity_digest: str | None = None,
    grantee_subject: str | None = None,
    voucher_id: str | None = None,
    issued_at: dt.datetime | None = None,
    model: ModelApproval | None = None,
    federation: Iterable[str] | None = None,
    assets: Iterable[str] | None = None,
    consents: Iterable[str] | None = None,
    privacy_rho: Fraction | float | str | None = None,
) -> SignedVoucher:
    """Sign a new voucher with the issuer's key.

    ``not_before`` and ``issued_at`` default to now; ``voucher_id`` to
    ``v-`` and 16 random hex digits. Invalid fields raise :class:`ConfigError`.
    """
    if isinstance(entities, str):
        raise ConfigError("entities must be a list of ids, not one string")
    issued = utc_now(issued_at)
    voucher = Voucher(
        voucher_id=voucher_id if voucher_id is not None else f"v-{secrets.token_hex(8)}",
        issuer=key.key_id,
        grantee=grantee,
        grantee_subject=grantee_subject,
        holder=holder,
        scope=normalize_scope(scope),
        purpose=purpose,
        entity_ids=frozenset(entities) if entities is not None else None,
        entity_digest=entity_digest,
        not_before=not_before if not_before is not None else issued,
        not_after=not_after,
        issued_at=issued,
        quota=quota,
        model=model,
        federation=frozenset(federation) if federation is not None else None,
        assets=frozenset(assets) if assets is not None else None,
        consents=frozenset(consents) if consents is not None else None,
        privacy_rho=Fraction(str(privacy_rho)) if privacy_rho is not None else None,
    )
    payload = voucher.payload()
    return SignedVoucher(payload, key.sign(_SIGNING_TAG + payload))


def _check_window(voucher: Voucher, now: dt.datetime) -> None:
    if now < voucher.not_before:
        raise PolicyError(
            f"voucher {voucher.voucher_id} is not valid before {utc_text(voucher.not_before)}"
        )
    if now >= voucher.not_after:
        raise PolicyError(f"voucher {voucher.voucher_id} expired at {utc_text(voucher.not_after)}")


def verify(
    signed: SignedVoucher,
    trusted_issuers: Mapping[str, PublicKey],
    now: dt.datetime | None = None,
) -> Voucher:
    """Check that a trusted issuer signed the voucher; returns it.

    ``trusted_issuers`` maps key ids to public keys. With ``now``, the
    validity window is checked too (:func:`authorize` checks it again, so
    passing it here only makes the refusal come earlier). Raises
    :class:`PolicyError` (:class:`SignatureError` for a bad signature).
    """
    voucher = signed.voucher
    issuer = trusted_issuers.get(voucher.issuer)
    if issuer is None:
        raise PolicyError(
            f"voucher {voucher.voucher_id} was issued by key {_short(voucher.issuer)}, "
            "which this holder does not trust"
        )
    if issuer.key_id != voucher.issuer:
        raise PolicyError(f"trusted issuer entry {_short(voucher.issuer)} holds a different key")
    try:
        issuer.verify(signed.signature, _SIGNING_TAG + signed.payload)
    except SignatureError as exc:
        raise SignatureError(
            f"voucher {voucher.voucher_id} has an invalid signature (forged or altered)"
        ) from exc
    if now is not None:
        _check_window(voucher, utc_now(now))
    return voucher


@dataclass(frozen=True)
class AccessRequest:
    """What one request to a holder reads and for whom; the subject of :func:`authorize`.

    Attributes:
        analyst: the analyst's key id (hex SHA-256 of its public CKKS context).
        holder: the holder the request is addressed to (its node name).
        kind: the request kind as logged (``"aggregate"``, ``"score"``, ...).
        plan_digest: hex SHA-256 of the serialised plan.
        reads: tables → columns → operations (see :func:`plan_reads`);
            a table mapped to no columns is read only as ``COUNT(*)`` reads it.
        entities: the entity ids the request concerns (:func:`entity_ids`),
            or None when it concerns no particular entities.
        subject: the caller's certificate subject when the channel is mTLS.
        model: for a score, the feature digests of the weights it computes with
            (:func:`unseen.engine.governance.approval.feature_digest`).
    """

    analyst: str
    holder: str
    kind: str
    plan_digest: str
    reads: Scope
    entities: frozenset[str] | None = None
    subject: str | None = None
    model: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", _normalize_reads(self.reads))
        if self.entities is not None:
            object.__setattr__(self, "entities", frozenset(self.entities))


def _normalize_reads(reads: Mapping[str, Mapping[str, Iterable[str]]]) -> Scope:
    # Unlike a voucher's scope, a read may name a column with no operation (it
    # then needs only the column); normalize_scope would refuse that.
    # Names that differ only in case are one identifier: their operations merge.
    out: dict[str, dict[str, frozenset[str]]] = {}
    for table, columns in reads.items():
        cols = out.setdefault(table.lower(), {})
        for column, ops in columns.items():
            opset = frozenset(ops)
            unknown = opset - set(OPERATIONS)
            if unknown:
                raise PlanError(f"unknown operation {sorted(unknown)[0]!r} on {table}.{column}")
            cols[column.lower()] = cols.get(column.lower(), frozenset()) | opset
    return MappingProxyType({t: MappingProxyType(c) for t, c in out.items()})


def plan_reads(plan: AggregatePlan) -> Scope:
    """What an aggregate plan reads: WHERE columns to ``filter``, GROUP BY to ``group``,
    measured columns to ``aggregate``; a plan reading no column (``COUNT(*)``)
    still reads its table."""
    cols: dict[str, set[str]] = {}
    for name in column_names(plan.filter):
        cols.setdefault(name, set()).add("filter")
    for group in plan.groups:
        if group.expr is None:
            cols.setdefault(group.column, set()).add("group")
            continue
        # A derived key reads its columns as derived_group_use says (filter or group).
        for name in column_names(group.expr):
            cols.setdefault(name, set()).add(derived_group_use(group.expr))
    for measure in plan.measures:
        values, conditions = column_roles(measure.expr)
        for name in values:
            cols.setdefault(name, set()).add("aggregate")
        for name in conditions:
            cols.setdefault(name, set()).add("filter")
    return _normalize_reads({plan.table: cols})


def authorize(
    voucher: Voucher,
    request: AccessRequest,
    now: dt.datetime | None = None,
    revoked_ids: Container[str] = frozenset(),
    used_count: int = 0,
) -> None:
    """Check that ``voucher`` allows ``request``; raises :class:`PolicyError` naming why not.

    Checks, in order: revocation, grantee (key id, and certificate subject
    when the voucher names one), holder, validity window, table, column and
    operation scope, entity scope, and quota (``used_count`` answered queries
    so far — :class:`unseen.engine.governance.ledger.Ledger` counts them atomically). It does not
    check the signature: call :func:`verify` first.
    """
    vid = voucher.voucher_id
    if vid in revoked_ids:
        # A RevocationList / RevocationFile (or any mapping to Revocation) says when and why.
        lookup = getattr(revoked_ids, "get", None)
        entry = lookup(vid) if callable(lookup) else None
        detail = (
            f" at {utc_text(entry.revoked_at)}: {entry.reason}"
            if isinstance(entry, Revocation)
            else ""
        )
        raise PolicyError(f"voucher {vid} was revoked{detail}")
    if request.analyst != voucher.grantee:
        raise PolicyError(
            f"voucher {vid} was granted to analyst key {_short(voucher.grantee)}, "
            f"not to {_short(request.analyst) or 'an unnamed key'}"
        )
    if voucher.grantee_subject is not None and request.subject != voucher.grantee_subject:
        presented = f"presented {request.subject}" if request.subject else "presented none"
        raise PolicyError(
            f"voucher {vid} is bound to certificate subject {voucher.grantee_subject}; "
            f"the caller {presented}"
        )
    if request.holder != voucher.holder:
        raise PolicyError(f"voucher {vid} is for holder {voucher.holder}, not {request.holder}")
    _check_window(voucher, utc_now(now))
    for table in sorted(request.reads):
        granted = voucher.scope.get(table)
        if granted is None:
            raise PolicyError(f"voucher {vid} does not cover table {table}")
        columns = request.reads[table]
        for column in sorted(columns):
            ops = granted.get(column)
            if ops is None:
                raise PolicyError(f"voucher {vid} does not cover column {table}.{column}")
            for op in sorted(columns[column] - ops):
                raise PolicyError(f"voucher {vid} does not cover column {table}.{column} for {op}")
    _check_entities(voucher, request)
    if request.kind == "score":
        if voucher.model is None:
            raise PolicyError(
                f"voucher {vid} approves no model, so it admits no score; its issuer approves "
                "one with: unseen voucher issue ... --model MODEL.json"
            )
        voucher.model.require(vid, request.model)
    if voucher.quota is not None and used_count >= voucher.quota:
        raise PolicyError(
            f"voucher {vid} has used its quota of {voucher.quota} "
            f"quer{'y' if voucher.quota == 1 else 'ies'}"
        )


def _check_entities(voucher: Voucher, request: AccessRequest) -> None:
    vid = voucher.voucher_id
    if voucher.entity_ids is None and voucher.entity_digest is None:
        return
    if not request.entities:
        raise PolicyError(f"voucher {vid} covers only named entities, but the request names none")
    # Never name the entity ids: they are the analyst's query, and refusal
    # reasons go to logs and the ledger.
    if voucher.entity_ids is not None:
        outside = len(request.entities - voucher.entity_ids)
        if outside:
            raise PolicyError(
                f"voucher {vid} does not cover {outside} of the {len(request.entities)} "
                "requested entities"
            )
    elif entity_set_digest(request.entities) != voucher.entity_digest:
        raise PolicyError(f"voucher {vid} covers a different set of entities than requested")


@dataclass(frozen=True)
class VoucherPolicy:
    """A holder's voucher rules: whether one is required, whom to trust, what is revoked.

    :meth:`check` is the one call a holder (or :class:`unseen.engine.governance.ledger.Ledger`)
    makes per request.
    """

    required: bool
    trusted_issuers: Mapping[str, PublicKey]
    revoked: Container[str] = frozenset()

    def check(
        self,
        request: AccessRequest,
        signed: SignedVoucher | None,
        now: dt.datetime | None = None,
        used_count: int = 0,
    ) -> Voucher | None:
        """Verify and authorize; returns the voucher (None when none needed nor given).

        A voucher that is presented is always checked, even when not required.
        Raises :class:`PolicyError` naming the reason.
        """
        if signed is None:
            if self.required:
                raise PolicyError(f"holder {request.holder} requires a voucher; none was presented")
            return None
        moment = utc_now(now)
        voucher = verify(signed, self.trusted_issuers)
        authorize(voucher, request, moment, self.revoked, used_count)
        return voucher
