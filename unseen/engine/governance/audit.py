"""Auditing holders' ledgers: verifying a ledger's chain, checking analysts' receipts against it.

Kept apart from :mod:`unseen.engine.governance.ledger`, which a holder runs to write its ledger:
this is what a supervisor or an analyst runs on what holders hand over (ledger
files, ranges fetched over RPC, receipts, published checkpoints), and it never
writes. What these checks can and cannot prove is set out in
:mod:`unseen.engine.governance.ledger`'s docstring.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from unseen.engine.errors import VerificationError
from unseen.engine.governance.ledger import (
    GENESIS_HASH,
    Checkpoint,
    LedgerEntry,
    LedgerRange,
    Receipt,
    prefix_digests,
    result_digest,
    scan_ledger,
)
from unseen.engine.governance.signing import PublicKey, canonical_json, utc_text

__all__ = [
    "RECEIPT_STATUSES",
    "LedgerProblem",
    "LedgerReport",
    "ReceiptFinding",
    "ReceiptReport",
    "RelayFinding",
    "check_receipts",
    "follow_relays",
    "relay_digest",
    "verify_ledger",
]


@dataclass(frozen=True)
class LedgerProblem:
    """One thing wrong with a ledger. ``kind`` is one of ``index``, ``chain``, ``hash``,
    ``signature``, ``malformed``, ``key``, ``checkpoint``, ``truncated``."""

    kind: str
    index: int | None
    detail: str

    def __str__(self) -> str:
        return f"entry {self.index}: {self.detail}" if self.index is not None else self.detail


@dataclass(frozen=True)
class LedgerReport:
    """What :func:`verify_ledger` found: the ledger's length and head, and every problem."""

    holder: str
    holder_key_id: str
    entries: int
    head_index: int
    head_hash: str
    problems: tuple[LedgerProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line for the CLI (``unseen audit verify``)."""
        if self.ok:
            return (
                f"ledger of {self.holder} is intact: {self.entries} entries, "
                f"head {self.head_index} {self.head_hash[:16]}"
            )
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"ledger of {self.holder} is NOT intact: {self.problems[0]}{more}"

    def raise_for_problems(self) -> None:
        """Raise :class:`VerificationError` with :meth:`summary` when not :attr:`ok`."""
        if not self.ok:
            raise VerificationError(self.summary())


def verify_ledger(
    source: Path | str | LedgerRange,
    holder_public_key: PublicKey,
    checkpoints: Iterable[Checkpoint] = (),
) -> LedgerReport:
    """Check a ledger: index continuity, the hash chain, every hash and every signature.

    ``source`` is a ledger file, or a :class:`LedgerRange` fetched from a
    holder (its chain is checked from its first entry's previous hash).
    ``checkpoints`` the holder published earlier are checked against it: a
    checkpoint beyond the end proves truncation, one that disagrees proves a
    rewrite. Never raises for a damaged ledger — it reports; raises
    :class:`ConfigError` only when the file is missing or not a ledger.
    """
    problems: list[LedgerProblem] = []
    if isinstance(source, LedgerRange):
        holder, kid = source.holder, source.holder_key_id
        rows: list[LedgerEntry | tuple[int | None, str]] = list(source.entries)
        first_prev: str | None = source.entries[0].prev_hash if source.entries else None
        expected = source.start
    else:
        scan = scan_ledger(source)
        holder, kid = scan.holder, scan.holder_key_id
        if scan.damage is not None:
            problems.append(LedgerProblem("malformed", None, scan.damage))
        rows = list(scan.rows)
        first_prev, expected = GENESIS_HASH, 1
    check_signatures = kid == holder_public_key.key_id
    if not check_signatures:
        problems.append(
            LedgerProblem(
                "key",
                None,
                f"the ledger is signed by key {kid[:16]}, not {holder_public_key.key_id[:16]}",
            )
        )
    by_index: dict[int, str] = {}
    prev = first_prev
    last_index, last_hash = 0, GENESIS_HASH
    for item in rows:
        if not isinstance(item, LedgerEntry):
            index, why = item
            problems.append(LedgerProblem("malformed", index, why))
            prev = None
            if index is not None:
                expected = index + 1
            continue
        entry = item
        if entry.index != expected:
            gap = "missing" if entry.index > expected else "out of order"
            problems.append(
                LedgerProblem(
                    "index",
                    entry.index,
                    f"expected entry {expected} here: entries are {gap} (deleted or reordered)",
                )
            )
        if prev is not None and entry.prev_hash != prev:
            problems.append(
                LedgerProblem(
                    "chain",
                    entry.index,
                    "previous-hash link is broken (an entry before it "
                    "was removed, reordered or rewritten)",
                )
            )
        if entry.compute_hash() != entry.entry_hash:
            problems.append(
                LedgerProblem("hash", entry.index, "fields do not match the entry hash (rewritten)")
            )
        if check_signatures and not entry.signature_valid(holder_public_key):
            problems.append(
                LedgerProblem("signature", entry.index, "the holder's signature is not valid")
            )
        by_index[entry.index] = entry.entry_hash
        prev = entry.entry_hash
        expected = entry.index + 1
        last_index, last_hash = entry.index, entry.entry_hash
    for cp in checkpoints:
        problems.extend(_check_checkpoint(cp, holder_public_key, by_index, last_index))
    return LedgerReport(holder, kid, len(rows), last_index, last_hash, tuple(problems))


def _check_checkpoint(
    cp: Checkpoint, key: PublicKey, by_index: Mapping[int, str], last_index: int
) -> list[LedgerProblem]:
    if not cp.signature_valid(key):
        return [LedgerProblem("checkpoint", cp.index, "a checkpoint's signature is not valid")]
    if cp.index > last_index:
        return [
            LedgerProblem(
                "truncated",
                cp.index,
                f"a checkpoint signed at {utc_text(cp.time)} covers entry {cp.index}, "
                f"but the ledger ends at entry {last_index} (truncated)",
            )
        ]
    if cp.index == 0:
        return []
    found = by_index.get(cp.index)
    if found is None:
        return [LedgerProblem("checkpoint", cp.index, "the checkpointed entry is missing")]
    if found != cp.entry_hash:
        return [
            LedgerProblem(
                "checkpoint",
                cp.index,
                f"differs from the checkpoint signed at {utc_text(cp.time)} (rewritten)",
            )
        ]
    return []


# -- receipts -----------------------------------------------------------------------------------

RECEIPT_STATUSES = ("ok", "missing", "moved", "rewritten", "beyond_tail", "forged", "unchecked")


@dataclass(frozen=True)
class ReceiptFinding:
    """What a supervisor concluded about one receipt. ``status`` is one of:

    ``ok`` (the entry is there, intact), ``missing`` (no entry at that index
    though later ones exist: deleted), ``moved`` (the entry's hash sits at
    another index: reordered), ``rewritten`` (another entry, or altered
    fields, hash or signature at that index), ``beyond_tail`` (the ledger
    ends before it: truncated), ``forged`` (the receipt's own signature is not
    the holder's: it proves nothing), ``unchecked`` (no ledger or key for
    that holder, or outside the fetched range).
    """

    receipt: Receipt
    status: str
    detail: str


@dataclass(frozen=True)
class ReceiptReport:
    """What :func:`check_receipts` found: one finding per receipt, in order."""

    findings: tuple[ReceiptFinding, ...]

    @property
    def problems(self) -> tuple[ReceiptFinding, ...]:
        """Findings that prove a ledger was altered (or a receipt forged)."""
        return tuple(f for f in self.findings if f.status not in ("ok", "unchecked"))

    @property
    def unchecked(self) -> tuple[ReceiptFinding, ...]:
        return tuple(f for f in self.findings if f.status == "unchecked")

    @property
    def ok(self) -> bool:
        """Every receipt was checked and matched its ledger."""
        return all(f.status == "ok" for f in self.findings)


def check_receipts(
    receipts: Iterable[Receipt],
    ledgers: Iterable[LedgerRange] | Mapping[str, LedgerRange],
    holder_keys: Mapping[str, PublicKey],
) -> ReceiptReport:
    """The supervisor's check: does each analyst's receipt match its holder's ledger?

    Args:
        receipts: receipts collected from analysts.
        ledgers: the holders' ledgers or ranges of them (:meth:`Ledger.read_range`
            over RPC, or :func:`read_ledger` on a copy); several ranges of
            one holder are combined.
        holder_keys: holder name → the holder's public key, known to the
            supervisor independently (a receipt proves nothing otherwise).

    Returns:
        One finding per receipt, in order (see :class:`ReceiptFinding`).
    """
    ranges = ledgers.values() if isinstance(ledgers, Mapping) else ledgers
    by_holder: dict[str, list[LedgerRange]] = {}
    for rng in ranges:
        by_holder.setdefault(rng.holder, []).append(rng)
    views = {holder: _LedgerView(parts) for holder, parts in by_holder.items()}
    findings = []
    for receipt in receipts:
        status, detail = _check_receipt(receipt, views.get(receipt.holder), holder_keys)
        findings.append(ReceiptFinding(receipt, status, detail))
    return ReceiptReport(tuple(findings))


class _LedgerView:
    """One holder's fetched ranges, indexed once for all its receipts."""

    def __init__(self, ranges: list[LedgerRange]):
        self.ranges = ranges
        self.head = max(r.head for r in ranges)
        self.by_index = {e.index: e for r in ranges for e in r.entries}
        self.by_hash = {e.entry_hash: e.index for e in self.by_index.values()}

    def covers(self, index: int) -> bool:
        return any(r.start <= index < r.end for r in self.ranges)


def _check_receipt(
    receipt: Receipt, view: _LedgerView | None, holder_keys: Mapping[str, PublicKey]
) -> tuple[str, str]:
    where = f"receipt {receipt.holder}#{receipt.index}"
    key = holder_keys.get(receipt.holder)
    if key is None:
        return "unchecked", f"{where}: no public key known for holder {receipt.holder}"
    if not receipt.signature_valid(key):
        return "forged", f"{where}: the receipt is not signed by {receipt.holder}'s key"
    if view is None:
        return "unchecked", f"{where}: no ledger of holder {receipt.holder} was given"
    if receipt.index > view.head:
        return "beyond_tail", f"{where}: the ledger ends at entry {view.head} (truncated)"
    if not view.covers(receipt.index):
        return "unchecked", f"{where}: outside the ledger ranges given"
    entry = view.by_index.get(receipt.index)
    if entry is None or entry.entry_hash != receipt.entry_hash:
        elsewhere = view.by_hash.get(receipt.entry_hash)
        if elsewhere is not None:
            return "moved", f"{where}: its entry sits at index {elsewhere} (reordered)"
        if entry is None:
            return "missing", f"{where}: the entry is missing from the ledger (deleted)"
        return "rewritten", f"{where}: the ledger holds a different entry there (rewritten)"
    if entry.compute_hash() != entry.entry_hash:
        return "rewritten", f"{where}: the entry's fields no longer match its hash (rewritten)"
    if not entry.signature_valid(key):
        return "rewritten", f"{where}: the entry's signature is not valid (rewritten)"
    return "ok", f"{where}: present and intact"


# -- hierarchy (issue 14.1): following a provincial answer's receipts down --------------------


def relay_digest(receipts: Sequence[str]) -> str:
    """What a city's ``relay`` entry commits to: its holders' receipts, in the order answered.

    Each receipt is taken as canonical JSON, so a receipt the analyst stored
    and re-read (``--receipts`` files) digests the same as the line the city saw.
    """
    return result_digest([canonical_json(json.loads(r)) for r in receipts])


@dataclass(frozen=True)
class RelayFinding:
    """What :func:`follow_relays` concluded about one city's receipt.

    ``status`` is ``ok`` (the city's ledger entry commits to exactly the
    receipts ``below`` it, which follow it in the answer), ``broken`` (no run
    of the following receipts matches: the city's answer or the holders'
    receipts were altered, or a holder's receipt was dropped). A city
    receipt whose ledger was not given is not recognised as one:
    :func:`check_receipts` reports it ``unchecked``.
    """

    receipt: Receipt
    status: str
    below: tuple[Receipt, ...]
    detail: str


def follow_relays(
    receipts: Sequence[Receipt], ledgers: Iterable[LedgerRange]
) -> tuple[RelayFinding, ...]:
    """Follow each city's receipt in a provincial answer down to its holders' receipts.

    A city answers its own receipt first, then its holders' in the order it
    relayed them (:class:`unseen.nodes.city.CityHolder`); its ``relay`` entry's
    result digest is :func:`relay_digest` of those. So for every receipt whose
    ledger entry is a relay, the receipts that follow it must contain a run that
    digests to it. Whether each of those receipts matches its own holder's
    ledger is :func:`check_receipts`' job; together they follow a provincial
    answer down to the city and holder ledgers.
    """
    entries = {(rng.holder, e.index): e for rng in ledgers for e in rng.entries}
    findings = []
    canonical: list[bytes] | None = None  # each receipt as relay_digest takes it, once
    for position, receipt in enumerate(receipts):
        entry = entries.get((receipt.holder, receipt.index))
        # Not a relay, or not its entry: check_receipts reports a missing or altered one.
        if entry is None or entry.kind != "relay" or entry.entry_hash != receipt.entry_hash:
            continue
        if canonical is None:
            canonical = [canonical_json(json.loads(r.encode())) for r in receipts]
        rest = receipts[position + 1 :]
        match = next(
            (
                n
                for n, found in enumerate(prefix_digests(canonical[position + 1 :]))
                if found == entry.result_digest
            ),
            None,
        )
        where = f"relay {receipt.holder}#{receipt.index}"
        if match is None:
            findings.append(
                RelayFinding(
                    receipt, "broken", (), f"{where}: no run of the receipts after it matches"
                )
            )
        else:
            below = tuple(rest[:match])
            holders = sorted({r.holder for r in below})
            findings.append(
                RelayFinding(
                    receipt,
                    "ok",
                    below,
                    f"{where}: commits to {match} receipt(s) of {', '.join(holders) or 'none'}",
                )
            )
    return tuple(findings)
