"""The holder's tamper-evident ledger: every answered or refused request, hash-chained and signed.

One SQLite file per holder (WAL journal, ``synchronous=FULL``: a commit is on
disk before :meth:`Ledger.append` returns, so neither ``kill -9`` nor a power
cut loses an entry whose receipt was handed out). Each entry records *that*
a request happened and how it ended — never a data value, a literal of the
plan or a secret::

    index · time · kind · plan digest · voucher id · analyst key id
    · outcome (answered | refused | failed) · reason · result digest
    · previous entry hash · entry hash · holder signature

``entry hash = SHA-256(b"unseen.ledger.entry.v1\\n" + canonical JSON of every
field above but the hash and signature, plus the holder name and key id)``,
so each entry commits to its predecessor, and the holder signs
``b"unseen.ledger.sig.v1\\n" + entry hash`` with its Ed25519 key. The first
entry's previous hash is :data:`GENESIS_HASH`.

What verification proves. :func:`unseen.engine.governance.audit.verify_ledger` detects an altered
field, an
altered hash or signature, a deleted or reordered entry anywhere but at the
end. Removing the *last* entries (truncation) leaves a shorter ledger that is
still consistent; it is only detectable against something the holder signed
earlier: the :class:`Receipt` each analyst keeps
(:func:`unseen.engine.governance.audit.check_receipts`) or a
:class:`Checkpoint` (the signed head) the holder publishes periodically. The
holder, who owns the key, can also rewrite and re-sign its whole ledger; again
only receipts and published checkpoints catch that. Nothing here proves that
a holder logged every request it answered: an answer without a receipt is
invisible to the ledger.

Quotas are consumed atomically with the append (:meth:`Ledger.authorize_and_append`):
the count of a voucher's charged (answered or failed) entries and the new entry are one
``BEGIN IMMEDIATE`` transaction, so threads and processes sharing the file can
never overrun a quota.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar, cast

from unseen.engine.errors import (
    ConfigError,
    LoggedRefusal,
    PolicyError,
    QueryError,
    SourceError,
    UnseenError,
    VerificationError,
)
from unseen.engine.governance.fields import is_voucher_id, utc_now
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    canonical_json,
    is_hex_digest,
    is_key_id,
    parse_utc,
    utc_text,
)
from unseen.engine.governance.voucher import AccessRequest, SignedVoucher, VoucherPolicy
from unseen.engine.privacy.budget import CHARGE_KIND, BudgetState, charge_reason, parse_charge

__all__ = [
    "GENESIS_HASH",
    "MAX_RANGE",
    "OUTCOMES",
    "Checkpoint",
    "Ledger",
    "LedgerEntry",
    "LedgerRange",
    "LedgerScan",
    "LoggedRefusal",
    "Receipt",
    "prefix_digests",
    "read_ledger",
    "result_digest",
    "scan_ledger",
]

T = TypeVar("T")

GENESIS_HASH = "0" * 64
OUTCOMES = ("answered", "refused", "failed")
FORMAT = "unseen.ledger.v1"
# Bounds one read_range answer (a supervisor pages through longer ledgers).
MAX_RANGE = 10_000
_ENTRY_TAG = b"unseen.ledger.entry.v1\n"
_SIG_TAG = b"unseen.ledger.sig.v1\n"
_CHECKPOINT_TAG = b"unseen.ledger.checkpoint.v1\n"
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_MAX_REASON = 1000

# One statement per item: executescript() would commit the surrounding transaction.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
    " STRICT",
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        idx INTEGER PRIMARY KEY CHECK (idx >= 1),
        time TEXT NOT NULL,
        kind TEXT NOT NULL,
        plan_digest TEXT NOT NULL,
        voucher_id TEXT NOT NULL,
        analyst TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('answered', 'refused', 'failed')),
        reason TEXT NOT NULL,
        result_digest TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        entry_hash TEXT NOT NULL,
        signature TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX IF NOT EXISTS ledger_by_voucher ON ledger_entries (voucher_id, outcome)",
    # Guards against accidents, not attackers: anyone who can write the file can
    # drop them. Tampering is caught by verify_ledger and check_receipts.
    *(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action} BEFORE {action.upper()} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        for table in ("ledger_entries", "ledger_meta")
        for action in ("update", "delete")
    ),
)
# Entry fields stored as columns, in table order ("index" is the column idx).
_ROW_FIELDS = (
    "index",
    "time",
    "kind",
    "plan_digest",
    "voucher_id",
    "analyst",
    "outcome",
    "reason",
    "result_digest",
    "prev_hash",
    "entry_hash",
    "signature",
)
_COLUMNS = ", ".join("idx" if f == "index" else f for f in _ROW_FIELDS)


def result_digest(result: bytes | Sequence[bytes]) -> str:
    """Hex SHA-256 committing to the ciphertexts a holder returned, in order.

    One ``bytes`` is hashed as is; a sequence is hashed as each part's 8-byte
    big-endian length followed by the part, so no two sequences collide.
    """
    if isinstance(result, (bytes, bytearray, memoryview)):
        return hashlib.sha256(bytes(result)).hexdigest()
    *_, last = prefix_digests(result)
    return last


def prefix_digests(parts: Iterable[bytes]) -> Iterator[str]:
    """:func:`result_digest` of every prefix of ``parts``, the empty one first.

    One pass: finding which run of receipts a city's relay entry commits to
    (:func:`unseen.engine.governance.audit.follow_relays`) then costs one hash
    of the receipts, not one per candidate length.
    """
    digest = hashlib.sha256()
    yield digest.hexdigest()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
        yield digest.hexdigest()


def _clean_reason(reason: str) -> str:
    # A refusal must always be loggable: squash control characters and bound
    # the length rather than fail the append.
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in reason)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


W = TypeVar("W", bound="_Record")

# Field type (as annotated) -> how its JSON form is read back.
_DECODE: dict[str, Callable[[Any], Any]] = {
    "int": int,
    "str": str,
    "dt.datetime": parse_utc,
    "bytes": lambda value: bytes.fromhex(str(value)),
}


class _Record:
    """JSON forms of the flat, frozen records that leave the holder (receipts, entries, heads).

    Times travel as :func:`utc_text`, bytes as hex; :meth:`encode` is one line
    of canonical JSON. Parsing raises :class:`VerificationError`: what a
    supervisor or analyst receives is evidence to check, not input to trust.
    """

    _what = "record"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cast(Any, self)):
            value = getattr(self, f.name)
            if isinstance(value, dt.datetime):
                value = utc_text(value)
            elif isinstance(value, bytes):
                value = value.hex()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[W], data: Mapping[str, Any]) -> W:
        try:
            fields = dataclasses.fields(cast(Any, cls))
            record = cls(**{f.name: _DECODE[str(f.type)](data[f.name]) for f in fields})
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"malformed {cls._what}: {exc}") from exc
        record._check()
        return record

    def _check(self) -> None:
        """Shape checks beyond types; raise :class:`VerificationError`."""

    def encode(self) -> str:
        return canonical_json(self.to_dict()).decode("utf-8")

    @classmethod
    def decode(cls: type[W], text: str | bytes) -> W:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VerificationError(f"malformed {cls._what}: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise VerificationError(f"malformed {cls._what}: not a JSON object")
        return cls.from_dict(data)


@dataclass(frozen=True)
class Receipt(_Record):
    """What travels back to the analyst: the holder's signed word that entry ``index`` exists.

    The signature covers the entry hash, which covers the index, the holder
    and every field of the entry; :func:`check_receipts` matches receipts to
    the holder's ledger.
    """

    _what = "receipt"

    holder: str
    holder_key_id: str
    index: int
    entry_hash: str
    signature: bytes

    def _check(self) -> None:
        if not (is_key_id(self.holder_key_id) and is_hex_digest(self.entry_hash)):
            raise VerificationError("malformed receipt: bad key id or entry hash")

    def signature_valid(self, key: PublicKey) -> bool:
        return key.key_id == self.holder_key_id and key.is_valid(
            self.signature, _SIG_TAG + self.entry_hash.encode("utf-8")
        )

    def verify(self, key: PublicKey) -> None:
        """Check the holder's signature; raises :class:`VerificationError`."""
        if not self.signature_valid(key):
            raise VerificationError(
                f"receipt {self.holder}#{self.index} is not signed by key {key.key_id[:16]}"
            )


@dataclass(frozen=True)
class LedgerEntry(_Record):
    """One ledger entry, with the holder it belongs to so that it verifies on its own."""

    _what = "ledger entry"

    holder: str
    holder_key_id: str
    index: int
    time: dt.datetime
    kind: str
    plan_digest: str
    voucher_id: str
    analyst: str
    outcome: str
    reason: str
    result_digest: str
    prev_hash: str
    entry_hash: str
    signature: bytes

    def hashed_bytes(self) -> bytes:
        """The canonical bytes :attr:`entry_hash` is the SHA-256 of: all but hash and signature."""
        fields = self.to_dict()
        del fields["entry_hash"], fields["signature"]
        return _ENTRY_TAG + canonical_json({"format": FORMAT, **fields})

    def compute_hash(self) -> str:
        return hashlib.sha256(self.hashed_bytes()).hexdigest()

    def receipt(self) -> Receipt:
        return Receipt(self.holder, self.holder_key_id, self.index, self.entry_hash, self.signature)

    def signature_valid(self, key: PublicKey) -> bool:
        return self.receipt().signature_valid(key)


@dataclass(frozen=True)
class Checkpoint(_Record):
    """The holder's signed head: "my ledger has ``index`` entries, the last hashing to this".

    Published periodically (to the exchange or the supervisor), checkpoints
    make truncation and wholesale rewriting detectable even for entries whose
    receipts nobody kept. ``index`` 0 with :data:`GENESIS_HASH` is the empty ledger.
    """

    _what = "checkpoint"

    holder: str
    holder_key_id: str
    index: int
    entry_hash: str
    time: dt.datetime
    signature: bytes

    def signed_bytes(self) -> bytes:
        fields = self.to_dict()
        del fields["signature"]
        return _CHECKPOINT_TAG + canonical_json({"format": FORMAT, **fields})

    def signature_valid(self, key: PublicKey) -> bool:
        return key.key_id == self.holder_key_id and key.is_valid(
            self.signature, self.signed_bytes()
        )

    def verify(self, key: PublicKey) -> None:
        """Check the holder's signature; raises :class:`VerificationError`."""
        if not self.signature_valid(key):
            raise VerificationError(
                f"checkpoint of {self.holder} at entry {self.index} is not signed by key "
                f"{key.key_id[:16]}"
            )


@dataclass(frozen=True)
class LedgerRange:
    """Entries ``start <= index < end`` of a holder's ledger, and its length when read.

    ``head`` lets a supervisor tell "beyond the tail" (truncated) from "not
    fetched". A range may have gaps where entries were deleted (or are too
    damaged to parse).
    """

    holder: str
    holder_key_id: str
    start: int
    end: int
    head: int
    entries: tuple[LedgerEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerRange:
        try:
            return cls(
                holder=str(data["holder"]),
                holder_key_id=str(data["holder_key_id"]),
                start=int(data["start"]),
                end=int(data["end"]),
                head=int(data["head"]),
                entries=tuple(LedgerEntry.from_dict(e) for e in data["entries"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VerificationError(f"malformed ledger range: {exc}") from exc


# -- opening files ------------------------------------------------------------------------------


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves, so
    # the quota count and the append are one write transaction.
    con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


def _connect_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise ConfigError(f"no ledger at {path}")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)


def _meta(con: sqlite3.Connection, path: Path) -> tuple[str, str]:
    try:
        rows = dict(con.execute("SELECT key, value FROM ledger_meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not an unseen ledger: {exc}") from exc
    if rows.get("format") != FORMAT or "holder" not in rows or "holder_key_id" not in rows:
        raise ConfigError(f"{path} is not an unseen ledger ({FORMAT})")
    return str(rows["holder"]), str(rows["holder_key_id"])


def _head(con: sqlite3.Connection) -> tuple[int, str]:
    """``(index, entry hash)`` of the last entry; ``(0, GENESIS_HASH)`` when empty."""
    row = con.execute(
        "SELECT idx, entry_hash FROM ledger_entries ORDER BY idx DESC LIMIT 1"
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def _answered(con: sqlite3.Connection, voucher_id: str) -> int:
    """A voucher's quota use: its charged entries (none without a voucher).

    Every request that reached the holder's data is charged: ``answered``
    and ``failed`` ones alike, of every kind — a score's ``prepare`` step
    (which reports bounds of the features) included. A failure is not free:
    one that depends on the data (a value that is not finite, an overflow)
    would otherwise be an oracle with no cost. ``refused`` entries are not
    charged: a refusal comes before the data is read, or (a quota taken
    while computing) drops an answer the exhausted quota could not pay for.
    A dp query's ``privacy`` entry is its budget charge beside the query's
    own entry, not a second use of the quota.
    """
    if not voucher_id:
        return 0
    sql = (
        "SELECT COUNT(*) FROM ledger_entries WHERE voucher_id = ? "
        "AND outcome IN ('answered', 'failed') AND kind <> ?"
    )
    return int(con.execute(sql, (voucher_id, CHARGE_KIND)).fetchone()[0])


def _privacy_spent(con: sqlite3.Connection, voucher_id: str) -> Fraction:
    """The sum of a voucher's privacy charges, from the entries' recorded costs."""
    sql = (
        "SELECT reason FROM ledger_entries WHERE voucher_id = ? AND outcome = 'answered' "
        "AND kind = ?"
    )
    total = Fraction(0)
    for (reason,) in con.execute(sql, (voucher_id, CHARGE_KIND)):
        total += parse_charge(str(reason)) or Fraction(0)
    return total


def _refuse_foreign(path: Path) -> None:
    """Refuse to turn some other SQLite database (a data file named by mistake) into a ledger."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        con = _connect_readonly(path)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not an unseen ledger: {exc}") from exc
    if tables and "ledger_meta" not in tables:
        raise ConfigError(f"{path} is not an unseen ledger (it holds other tables)")


def _row_entry(holder: str, holder_key_id: str, row: Sequence[Any]) -> LedgerEntry:
    """A row as an entry; raises :class:`VerificationError` on a malformed row."""
    stored = dict(zip(_ROW_FIELDS, row, strict=True))
    return LedgerEntry.from_dict({"holder": holder, "holder_key_id": holder_key_id, **stored})


def _read_range(
    con: sqlite3.Connection, holder: str, kid: str, start: int, end: int | None, limit: int
) -> LedgerRange:
    if start < 1:
        raise QueryError("a ledger range starts at index 1 or later")
    if end is not None and end < start:
        raise QueryError(f"ledger range end {end} is before its start {start}")
    head = con.execute("SELECT COALESCE(MAX(idx), 0) FROM ledger_entries").fetchone()[0]
    stop = max(start, min(head + 1 if end is None else end, start + limit))
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM ledger_entries WHERE idx >= ? AND idx < ? ORDER BY idx",  # noqa: S608 - fixed column list
        (start, stop),
    ).fetchall()
    entries = []
    for row in rows:
        # A row too damaged to parse is left out: a supervisor then sees the
        # index as missing, and verify_ledger names it as malformed.
        with contextlib.suppress(VerificationError):
            entries.append(_row_entry(holder, kid, row))
    return LedgerRange(holder, kid, start, stop, head, tuple(entries))


class Ledger:
    """A holder's ledger file, opened for appending; safe to share between threads.

    Several processes may open the same file: SQLite's write lock serialises
    appends, and each append is one transaction. Opening refuses a file that
    belongs to another holder or another key (one ledger per holder key; to
    rotate keys, publish a final checkpoint and start a new ledger).

    Args:
        path: the SQLite file (created with its schema if missing).
        holder: the holder's node name, written into every entry's hash.
        signing_key: the holder's Ed25519 key; signs every entry.
        timeout: seconds to wait for another writer's lock before failing.
    """

    def __init__(self, path: Path | str, holder: str, signing_key: SigningKey, timeout: float = 60):
        if not holder or len(holder) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in holder):
            raise ConfigError("a ledger needs a holder name (one line, at most 256 characters)")
        self.path = Path(path)
        self.holder = holder
        self.key = signing_key
        self.key_id = signing_key.key_id
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        _refuse_foreign(self.path)
        try:
            self._claim()
        except SourceError as exc:
            self.close()
            raise ConfigError(f"cannot open ledger {self.path}: {exc.__cause__}") from exc
        except ConfigError:
            self.close()
            raise

    def _claim(self) -> None:
        # Schema and ownership in one write transaction, so two processes
        # creating the same new ledger cannot both claim it.
        with self._write() as con:
            for statement in _SCHEMA:
                con.execute(statement)
            meta = dict(con.execute("SELECT key, value FROM ledger_meta").fetchall())
            if not meta:
                con.executemany(
                    "INSERT INTO ledger_meta (key, value) VALUES (?, ?)",
                    [("format", FORMAT), ("holder", self.holder), ("holder_key_id", self.key_id)],
                )
                return
        holder, kid = _meta(self._con(), self.path)
        if holder != self.holder:
            raise ConfigError(f"ledger {self.path} belongs to holder {holder}, not {self.holder}")
        if kid != self.key_id:
            raise ConfigError(
                f"ledger {self.path} is signed by key {kid[:16]}, not {self.key_id[:16]}; "
                "start a new ledger for a new key"
            )

    # -- connections ---------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = _connect(self.path, self._timeout)
            except sqlite3.Error as exc:
                raise ConfigError(f"cannot open ledger {self.path}: {exc}") from exc
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken before any read.

        SQLite failures (disk full, another writer holding the lock past the
        timeout) become :class:`SourceError`: the holder must not answer
        what it could not log.
        """
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise SourceError(f"ledger {self.path} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -----------------------------------------------------------
    def _insert(
        self,
        con: sqlite3.Connection,
        *,
        kind: str,
        analyst: str,
        outcome: str,
        plan_digest: str,
        voucher_id: str,
        reason: str,
        result_digest: str,
        now: dt.datetime | None,
    ) -> LedgerEntry:
        if not _KIND.fullmatch(kind):
            raise ValueError(f"ledger kind {kind!r} must be a short lower-case word")
        if outcome not in OUTCOMES:
            raise ValueError(f"ledger outcome must be one of {', '.join(OUTCOMES)}")
        for what, value in (
            ("analyst", analyst),
            ("plan_digest", plan_digest),
            ("result_digest", result_digest),
        ):
            if value and not is_hex_digest(value):
                raise ValueError(f"ledger {what} must be 64 lowercase hex digits or empty")
        if voucher_id and not is_voucher_id(voucher_id):
            raise ValueError("ledger voucher_id is not a voucher id")
        if outcome != "answered" and not reason:
            raise ValueError(f"a {outcome} entry needs a reason")
        last, prev = _head(con)
        draft = LedgerEntry(
            holder=self.holder,
            holder_key_id=self.key_id,
            index=last + 1,
            time=utc_now(now),
            kind=kind,
            plan_digest=plan_digest,
            voucher_id=voucher_id,
            analyst=analyst,
            outcome=outcome,
            reason=_clean_reason(reason),
            result_digest=result_digest,
            prev_hash=prev,
            entry_hash="",
            signature=b"",
        )
        digest = draft.compute_hash()
        entry = dataclasses.replace(
            draft, entry_hash=digest, signature=self.key.sign(_SIG_TAG + digest.encode("ascii"))
        )
        stored = entry.to_dict()
        con.execute(
            f"INSERT INTO ledger_entries ({_COLUMNS}) VALUES ({', '.join('?' * len(_ROW_FIELDS))})",  # noqa: S608 - fixed column list
            [stored[f] for f in _ROW_FIELDS],
        )
        return entry

    def append(
        self,
        *,
        kind: str,
        analyst: str,
        outcome: str,
        plan_digest: str = "",
        voucher_id: str = "",
        reason: str = "",
        result_digest: str = "",
        now: dt.datetime | None = None,
    ) -> Receipt:
        """Append one entry durably and return its receipt.

        Use it for requests that need no voucher check (quick-start holders,
        key registration); requests under vouchers go through
        :meth:`authorize_and_append`. Raises ``ValueError`` on malformed
        fields (a programming error, not a user's).
        """
        with self._write() as con:
            entry = self._insert(
                con,
                kind=kind,
                analyst=analyst,
                outcome=outcome,
                plan_digest=plan_digest,
                voucher_id=voucher_id,
                reason=reason,
                result_digest=result_digest,
                now=now,
            )
        return entry.receipt()

    # -- dp: privacy budgets (unseen.engine.privacy.budget) ----------------------------
    def privacy_spent(self, voucher_id: str) -> Fraction:
        """The zCDP rho this ledger has charged to ``voucher_id``."""
        return _privacy_spent(self._con(), voucher_id)

    def charge_privacy(
        self,
        request: AccessRequest,
        voucher_id: str,
        cost: Fraction,
        budget: Fraction,
        now: dt.datetime | None = None,
    ) -> tuple[BudgetState, Receipt]:
        """Charge ``cost`` to the voucher's budget, or refuse; one write transaction.

        The sum of earlier charges and the new charge entry are one
        ``BEGIN IMMEDIATE`` transaction, so no two requests can both take the
        last of a budget. Raises :class:`PolicyError` (not logged here: the
        caller's :meth:`authorize_and_append` logs the refusal) when the
        budget cannot cover ``cost``.
        """
        with self._write() as con:
            spent = _privacy_spent(con, voucher_id)
            if spent + cost > budget:
                raise PolicyError(
                    f"voucher {voucher_id} has spent its privacy budget at holder "
                    f"{self.holder} (rho {float(spent):.4g} of {float(budget):.4g} spent; "
                    f"this query costs {float(cost):.4g})"
                )
            fields = self._request_fields(request, voucher_id)
            fields["kind"] = CHARGE_KIND
            entry = self._insert(
                con,
                outcome="answered",
                reason=charge_reason(cost, spent + cost, budget),
                result_digest="",
                now=now,
                **fields,
            )
        state = BudgetState(self.holder, voucher_id, cost, spent + cost, budget)
        return state, entry.receipt()

    def answered_count(self, voucher_id: str) -> int:
        """How many requests under ``voucher_id`` this ledger has charged (its quota use:
        answered and failed entries)."""
        return _answered(self._con(), voucher_id)

    def authorize_and_append(
        self,
        request: AccessRequest,
        voucher: SignedVoucher | None,
        policy: VoucherPolicy,
        answer: Callable[[], T],
        *,
        digest: Callable[[T], str] | None = None,
        now: dt.datetime | None = None,
        note: Callable[[], str] | None = None,
    ) -> tuple[T, Receipt]:
        """Check the request, compute the answer, and log the outcome; quota-safe.

        1. Check the voucher (:meth:`VoucherPolicy.check`) against the quota
           used so far. A refusal is logged and raised — no data touched.
        2. Call ``answer()`` (the holder's local work). A
           :class:`PolicyError` from it (a column policy refusal) is logged as
           ``refused`` with its message; any other exception as ``failed``
           with only the exception's class name (messages may quote data) and
           charged like an answer — in one transaction that re-checks the
           quota, so a failure the quota cannot pay for is logged and raised
           as the quota refusal instead (a failure tells something about the
           data too).
        3. In one ``BEGIN IMMEDIATE`` transaction: count the voucher's
           charged entries again, re-check, and append ``answered`` with the
           result digest — or ``refused`` if a concurrent request took the
           last query of the quota (the computed answer is then dropped,
           never returned).

        The lock is not held while ``answer()`` runs, so slow homomorphic work
        does not serialise the holder; step 3 alone decides, atomically,
        whether the answer may leave.

        Args:
            request: what the request reads and for whom.
            voucher: the signed voucher presented, or None.
            policy: whether vouchers are required, trusted issuers, revocations.
            answer: computes the result (called at most once).
            digest: result → hex digest; default :func:`result_digest`
                (``answer`` returning ``bytes`` or a sequence of ``bytes``).
            now: the time to check and log (default: the clock, per step).
            note: read after ``answer()``; kept as the answered entry's reason
                (issue 16: the assets read and the consent set relied on).

        Returns:
            ``(result, receipt)`` of the ``answered`` entry.

        Raises:
            LoggedRefusal: the refusal is in the ledger; ``.receipt`` names it.
        """
        vid = voucher.voucher_id if voucher is not None else ""
        try:
            policy.check(request, voucher, now, self.answered_count(vid))
        except PolicyError as exc:
            raise self.log_refusal(request, exc, vid, now) from exc
        try:
            result = answer()
        except PolicyError as exc:
            raise self.log_refusal(request, exc, vid, now) from exc
        except Exception as exc:
            unpaid = self._log_failure(request, voucher, policy, exc, now)
            if unpaid is not None:
                raise unpaid from None
            raise
        summary = digest(result) if digest is not None else result_digest(cast(Any, result))
        refusal: PolicyError | None = None
        with self._write() as con:
            try:
                policy.check(request, voucher, now, _answered(con, vid))
            except PolicyError as exc:
                refusal = exc
            entry = self._insert(
                con,
                outcome="refused" if refusal else "answered",
                reason=str(refusal) if refusal else (note() if note is not None else ""),
                result_digest="" if refusal else summary,
                now=now,
                **self._request_fields(request, vid),
            )
        if refusal is not None:
            raise LoggedRefusal(str(refusal), entry.receipt()) from refusal
        return result, entry.receipt()

    @staticmethod
    def _request_fields(request: AccessRequest, voucher_id: str) -> dict[str, str]:
        # The request comes from the network: fields that are not well formed
        # are logged empty rather than making the refusal itself unloggable.
        return {
            "kind": request.kind if _KIND.fullmatch(request.kind) else "unknown",
            "analyst": request.analyst if is_hex_digest(request.analyst) else "",
            "plan_digest": request.plan_digest if is_hex_digest(request.plan_digest) else "",
            "voucher_id": voucher_id,
        }

    def log_refusal(
        self,
        request: AccessRequest,
        exc: PolicyError,
        voucher_id: str = "",
        now: dt.datetime | None = None,
    ) -> LoggedRefusal:
        """Log ``request`` as refused for ``exc``; returns the :class:`LoggedRefusal` to raise.

        :meth:`authorize_and_append` uses it; so does a holder refusing before
        that (a voucher that does not decode, none issued for this holder).
        """
        receipt = self.append(
            outcome="refused", reason=str(exc), now=now, **self._request_fields(request, voucher_id)
        )
        return LoggedRefusal(str(exc), receipt)

    def _log_failure(
        self,
        request: AccessRequest,
        voucher: SignedVoucher | None,
        policy: VoucherPolicy,
        exc: Exception,
        now: dt.datetime | None,
    ) -> LoggedRefusal | None:
        """Charge and log a failed request; the quota refusal to raise instead, if any."""
        vid = voucher.voucher_id if voucher is not None else ""
        name = type(exc).__name__ if isinstance(exc, UnseenError) else "internal error"
        refusal: PolicyError | None = None
        with self._write() as con:
            try:
                policy.check(request, voucher, now, _answered(con, vid))
            except PolicyError as error:
                refusal = error
            entry = self._insert(
                con,
                outcome="refused" if refusal else "failed",
                reason=str(refusal) if refusal else f"failed: {name}",
                result_digest="",
                now=now,
                **self._request_fields(request, vid),
            )
        return None if refusal is None else LoggedRefusal(str(refusal), entry.receipt())

    # -- reading -------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """``(index, entry hash)`` of the last entry; ``(0, GENESIS_HASH)`` when empty."""
        return _head(self._con())

    def checkpoint(self, now: dt.datetime | None = None) -> Checkpoint:
        """Sign the current head, for the holder to publish (see the module docstring)."""
        index, entry_hash = self.head()
        unsigned = Checkpoint(self.holder, self.key_id, index, entry_hash, utc_now(now), b"")
        return dataclasses.replace(unsigned, signature=self.key.sign(unsigned.signed_bytes()))

    def read_range(
        self, start: int = 1, end: int | None = None, limit: int = MAX_RANGE
    ) -> LedgerRange:
        """Entries ``start <= index < end`` (``end`` None: to the head), at most ``limit``.

        The answer's ``end`` says where it stopped, so a supervisor pages with
        ``read_range(previous.end, ...)`` until ``end > head``. Raises
        :class:`QueryError` for an inverted range.
        """
        limit = max(1, min(limit, MAX_RANGE))
        return _read_range(self._con(), self.holder, self.key_id, start, end, limit)

    def entry(self, index: int) -> LedgerEntry | None:
        found = self.read_range(index, index + 1).entries
        return found[0] if found else None


def read_ledger(path: Path | str, start: int = 1, end: int | None = None) -> LedgerRange:
    """Read (a range of) a ledger file without opening it for writing — e.g. a copy."""
    path = Path(path)
    con = _connect_readonly(path)
    try:
        holder, kid = _meta(con, path)
        return _read_range(con, holder, kid, start, end, limit=1 << 62)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read ledger {path}: {exc}") from exc
    finally:
        con.close()


@dataclass(frozen=True)
class LedgerScan:
    """Every row of a ledger file, each as an entry or as why it does not parse.

    Attributes:
        holder: the holder the file names.
        holder_key_id: the key id the file names.
        rows: in index order, a :class:`LedgerEntry` or, for a row too damaged
            to parse, ``(its index, or None when unreadable, why)``.
        damage: why the file body could not be read, or None.
    """

    holder: str
    holder_key_id: str
    rows: tuple[LedgerEntry | tuple[int | None, str], ...]
    damage: str | None


def _raw_rows(path: Path) -> tuple[str, str, list[Sequence[Any]], str | None]:
    """Meta and rows of a ledger file; a damaged file body is reported, not raised."""
    con = _connect_readonly(path)
    try:
        holder, kid = _meta(con, path)
        try:
            sql = f"SELECT {_COLUMNS} FROM ledger_entries ORDER BY idx"  # noqa: S608 - fixed column list
            return holder, kid, con.execute(sql).fetchall(), None
        except sqlite3.DatabaseError as exc:
            return holder, kid, [], f"the database file is damaged: {exc}"
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read ledger {path}: {exc}") from exc
    finally:
        con.close()


def scan_ledger(path: Path | str) -> LedgerScan:
    """Read a whole ledger file for an auditor, keeping a place for every damaged row.

    Unlike :func:`read_ledger`, which leaves out rows too damaged to parse,
    this names each of them, and reports a damaged file body instead of
    raising, so that :func:`unseen.engine.governance.audit.verify_ledger` can report them.
    Raises :class:`ConfigError` only when the file is missing or not a ledger.
    """
    holder, kid, raw, damage = _raw_rows(Path(path))
    rows: list[LedgerEntry | tuple[int | None, str]] = []
    for row in raw:
        try:
            rows.append(_row_entry(holder, kid, row))
        except VerificationError as exc:
            rows.append((row[0] if isinstance(row[0], int) else None, str(exc)))
    return LedgerScan(holder, kid, tuple(rows), damage)
