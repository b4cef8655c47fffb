"""Data subjects' consents: signed, withdrawable permission for a grantee to use their data.

A data subject (an enterprise by its unified social credit code, a person by
an identifier the holders know) signs a :func:`grant` with its own Ed25519
key: to which analyst key (grantee), at which holders or for which registered
assets, for what purpose, within which window. Vouchers for entity-scoped use
reference the consents they rely on by digest (``consents`` in the voucher);
each holder checks, before touching any row, that every entity in the request
has a valid consent among them (:func:`check_consents`), and refuses the
request otherwise, naming counts per reason and never an entity id.

How a holder knows a subject's key: the exchange signs a *subject registry*
(:func:`sign_registry`, ``unseen-subjects-v1`` token) mapping subject ids to
public keys, after checking the subject's identity as it does for any
registration; holders trust it because it is signed by a key they already
trust as a voucher issuer. An analyst cannot make up a subject key, so it
cannot forge a consent.

Consents and withdrawals are published in the *consent register*, a JSON file
the exchange keeps and every holder reads (like the revocation list, through
:class:`ConsentFile`, re-read when it changes): a withdrawal — signed by the
subject, naming the consent's digest — takes effect at every holder from the
next request on.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.fields import one_line, utc_now
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    canonical_json,
    parse_utc,
    utc_text,
    write_atomic,
)
from unseen.engine.governance.tokens import Token, seal

__all__ = [
    "CONSENT_PREFIX",
    "ConsentFile",
    "ConsentRegister",
    "SubjectRegistry",
    "SubjectRegistryFile",
    "check_consents",
    "consent_set_digest",
    "grant",
    "publish",
    "sign_registry",
    "withdraw",
]

CONSENT_PREFIX = "unseen-consent-v1"
WITHDRAWAL_PREFIX = "unseen-withdrawal-v1"
REGISTRY_PREFIX = "unseen-subjects-v1"
_CONSENT_TAG = b"unseen.consent.v1\n"
_WITHDRAWAL_TAG = b"unseen.consent-withdrawal.v1\n"
_REGISTRY_TAG = b"unseen.subjects.v1\n"


# -- the exchange's subject key registry ----------------------------------------------------------


def sign_registry(
    key: SigningKey, subjects: Mapping[str, PublicKey], now: dt.datetime | None = None
) -> Token:
    """The exchange signs the map of subject ids to their public keys."""
    data = {
        "type": "unseen.subjects",
        "version": 1,
        "issuer": key.key_id,
        "issued_at": utc_text(utc_now(now)),
        "subjects": {one_line(s, "subject id", 256): k.to_text() for s, k in subjects.items()},
    }
    return seal(key, REGISTRY_PREFIX, _REGISTRY_TAG, data)


@dataclass(frozen=True)
class SubjectRegistry:
    """Subject ids -> public keys, as a trusted exchange signed them."""

    keys: Mapping[str, PublicKey]

    @classmethod
    def watch(cls, path: Path | str, trusted: Mapping[str, PublicKey]) -> SubjectRegistryFile:
        """A live view of the registry file (new subjects without a restart)."""
        return SubjectRegistryFile(Path(path), trusted)

    @classmethod
    def load(cls, path: Path | str, trusted: Mapping[str, PublicKey]) -> SubjectRegistry:
        """Read and verify a registry file; raises :class:`ConfigError` naming the problem."""
        token = Token.load(path, REGISTRY_PREFIX)
        data = token.data
        issuer = trusted.get(str(data.get("issuer")))
        if issuer is None or not token.signature_valid(issuer, _REGISTRY_TAG):
            raise ConfigError(f"{path}: the subject registry is not signed by a trusted issuer")
        subjects = data.get("subjects")
        if data.get("type") != "unseen.subjects" or not isinstance(subjects, dict):
            raise ConfigError(f"{path}: not a subject registry")
        return cls({s: PublicKey.from_text(k, f"subject {s}'s key") for s, k in subjects.items()})


class SubjectRegistryFile:
    """A registry file re-read (and re-verified) whenever it changes; thread-safe.

    A replacement that does not verify is refused loudly at the next request
    (:class:`ConfigError`), never silently ignored.
    """

    def __init__(self, path: Path, trusted: Mapping[str, PublicKey]):
        self.path, self.trusted = path, trusted
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._registry = SubjectRegistry({})
        self.current()

    def current(self) -> SubjectRegistry:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"cannot read subject registry {self.path}: {exc.strerror}") from exc
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._registry = SubjectRegistry.load(self.path, self.trusted)
                self._stamp = stamp
            return self._registry


# -- consents and withdrawals ---------------------------------------------------------------------


def grant(
    key: SigningKey,
    *,
    subject: str,
    grantee: str,
    purpose: str,
    not_after: dt.datetime,
    holders: Iterable[str] = (),
    assets: Iterable[str] = (),
    not_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> Token:
    """A subject's signed consent; at least one holder or asset must be named."""
    holders, assets = sorted(set(holders)), sorted(set(assets))
    if not holders and not assets:
        raise ConfigError("a consent names the holders or the assets it covers")
    issued = utc_now(now)
    start = utc_now(not_before) if not_before is not None else issued
    if utc_now(not_after) <= start:
        raise ConfigError("a consent's not_after must be later than its not_before")
    data = {
        "type": "unseen.consent",
        "version": 1,
        "nonce": secrets.token_hex(8),
        "subject": one_line(subject, "subject id", 256),
        "subject_key": key.key_id,
        "grantee": one_line(grantee, "grantee", 128),
        "holders": holders,
        "assets": assets,
        "purpose": one_line(purpose, "purpose", 4096),
        "not_before": utc_text(start),
        "not_after": utc_text(utc_now(not_after)),
        "issued_at": utc_text(issued),
    }
    return seal(key, CONSENT_PREFIX, _CONSENT_TAG, data)


def withdraw(key: SigningKey, consent: Token, now: dt.datetime | None = None) -> Token:
    """The subject's signed withdrawal of ``consent``."""
    data = {
        "type": "unseen.consent-withdrawal",
        "version": 1,
        "consent": consent.digest,
        "subject": str(consent.data.get("subject")),
        "withdrawn_at": utc_text(utc_now(now)),
    }
    return seal(key, WITHDRAWAL_PREFIX, _WITHDRAWAL_TAG, data)


def consent_set_digest(digests: Iterable[str]) -> str:
    """The digest naming a set of consents, as the ledger records it."""
    return hashlib.sha256(canonical_json(sorted(set(digests)))).hexdigest()


@dataclass
class ConsentRegister:
    """The published consents and withdrawals (not signed as a file: each record is)."""

    consents: dict[str, Token] = field(default_factory=dict)
    withdrawals: list[Token] = field(default_factory=list)
    # Consent sets vouchers reference, by :func:`consent_set_digest` (content-addressed,
    # so nobody can publish a wrong one): how a supervisor resolves a ledger note.
    sets: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "type": "unseen.consents",
            "version": 1,
            "consents": sorted(t.encode() for t in self.consents.values()),
            "withdrawals": sorted(t.encode() for t in self.withdrawals),
            "sets": sorted(self.sets.values()),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path | str) -> ConsentRegister:
        """Read a register; a missing file is an empty register. Malformed records are skipped
        (they authorise nothing), a malformed file is a :class:`ConfigError`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read consent register {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("type") != "unseen.consents":
            raise ConfigError(f"{path} is not a consent register")
        register = cls()
        for text in data.get("consents", []):
            try:
                token = Token.decode(str(text), CONSENT_PREFIX)
            except PolicyError:
                continue
            register.consents[token.digest] = token
        for text in data.get("withdrawals", []):
            try:
                register.withdrawals.append(Token.decode(str(text), WITHDRAWAL_PREFIX))
            except PolicyError:
                continue
        for members in data.get("sets", []):
            if isinstance(members, list) and all(isinstance(m, str) for m in members):
                register.sets[consent_set_digest(members)] = sorted(set(members))
        return register

    def save(self, path: Path | str) -> None:
        write_atomic(Path(path), self.to_json().encode("utf-8"), 0o644)


def publish(path: Path | str, *tokens: Token, sets: Iterable[Iterable[str]] = ()) -> None:
    """Add consents and withdrawals to the register at ``path`` (created if missing).

    Serialised between processes by a lock file, like
    :func:`unseen.engine.governance.revocation.revoke`;
    several tokens are published in one rewrite (a batch of applicants consenting).
    ``sets`` are the consent sets of vouchers (lists of consent digests).
    """
    path = Path(path)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            register = ConsentRegister.load(path)
            known = {w.digest for w in register.withdrawals}
            for token in tokens:
                if token.prefix == CONSENT_PREFIX:
                    register.consents[token.digest] = token
                elif token.prefix == WITHDRAWAL_PREFIX:
                    if token.digest not in known:
                        register.withdrawals.append(token)
                        known.add(token.digest)
                else:
                    raise ConfigError(
                        f"a consent register holds consents and withdrawals, not {token.prefix}"
                    )
            for members in sets:
                unique = sorted(set(members))
                register.sets[consent_set_digest(unique)] = unique
            register.save(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class ConsentFile:
    """A live view of a consent register: re-read whenever the file changes (thread-safe)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._register = ConsentRegister()
        self.current()

    def current(self) -> ConsentRegister:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._register = ConsentRegister.load(self.path)
                self._stamp = stamp
            return self._register


# -- the holder's check ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _valid_signature(tag: bytes, payload: bytes, signature: bytes, key: bytes) -> bool:
    """Ed25519 verification, remembered: a consent is checked at every request that
    names its subject, by every holder, and its signature never changes."""
    return PublicKey(key).is_valid(signature, tag + payload)


def _signed(token: Token, key: PublicKey, tag: bytes) -> bool:
    return _valid_signature(tag, token.payload, token.signature, key.raw)


def _withdrawn(register: ConsentRegister, registry: SubjectRegistry) -> set[str]:
    """Digests of consents withdrawn by their own subject (a forged withdrawal: none)."""
    out = set()
    for token in register.withdrawals:
        key = registry.keys.get(str(token.data.get("subject")))
        if key is not None and _signed(token, key, _WITHDRAWAL_TAG):
            out.add(str(token.data.get("consent")))
    return out


def _problem(
    token: Token,
    entity: str,
    *,
    registry: SubjectRegistry,
    withdrawn: set[str],
    grantee: str,
    purpose: str,
    holder: str,
    assets: frozenset[str],
    now: dt.datetime,
) -> str | None:
    """Why ``token`` does not authorise this use for ``entity``; None when it does."""
    data: Mapping[str, Any] = token.data
    key = registry.keys.get(entity)
    if key is None:
        return "subject not in the registry"
    if data.get("type") != "unseen.consent" or not _signed(token, key, _CONSENT_TAG):
        return "not signed by the subject (forged)"
    if token.digest in withdrawn:
        return "withdrawn"
    try:
        start, end = parse_utc(data.get("not_before")), parse_utc(data.get("not_after"))
    except ValueError:
        return "malformed"
    if now < start:
        return "not yet valid"
    if now >= end:
        return "expired"
    if data.get("grantee") != grantee:
        return "granted to another analyst"
    if data.get("purpose") != purpose:
        return "for another purpose"
    holders, granted_assets = set(data.get("holders") or ()), set(data.get("assets") or ())
    if holder not in holders and not (assets and assets <= granted_assets):
        return "not for this holder or these assets"
    return None


def check_consents(
    entities: Iterable[str],
    *,
    referenced: Iterable[str],
    register: ConsentRegister,
    registry: SubjectRegistry,
    grantee: str,
    purpose: str,
    holder: str,
    assets: frozenset[str] = frozenset(),
    now: dt.datetime | None = None,
) -> list[str]:
    """The consent digests that authorise every entity; raises PolicyError otherwise.

    Args:
        entities: the entity ids the request names.
        referenced: the consent digests the voucher references.
        register: the published consents and withdrawals.
        registry: the subjects' public keys.
        grantee: the analyst's key id; purpose: the voucher's purpose.
        holder: this holder's name; assets: the asset ids of the tables read.

    Raises:
        PolicyError: ``2 of the 5 requested entities have no valid consent
            (1 withdrawn, 1 missing)`` — counts only, never an id.
    """
    moment = utc_now(now)
    withdrawn = _withdrawn(register, registry)
    by_subject: dict[str, list[Token]] = {}
    for digest in set(referenced):
        token = register.consents.get(digest)
        if token is not None:
            by_subject.setdefault(str(token.data.get("subject")), []).append(token)
    used: list[str] = []
    problems: Counter[str] = Counter()
    wanted = sorted(set(entities))
    for entity in wanted:
        reasons = []
        for token in by_subject.get(entity, []):
            reason = _problem(
                token,
                entity,
                registry=registry,
                withdrawn=withdrawn,
                grantee=grantee,
                purpose=purpose,
                holder=holder,
                assets=assets,
                now=moment,
            )
            if reason is None:
                used.append(token.digest)
                break
            reasons.append(reason)
        else:
            problems[reasons[0] if reasons else "missing"] += 1
    if problems:
        detail = ", ".join(f"{n} {why}" for why, n in sorted(problems.items()))
        raise PolicyError(
            f"{sum(problems.values())} of the {len(wanted)} requested entities have no valid "
            f"consent ({detail})"
        )
    return used
