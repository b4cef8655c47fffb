"""The supervisor's cross-domain flow audit, from ledgers, registrations and consents alone.

Every answered request leaves a ledger entry whose note (see
:func:`unseen.engine.governance.stewardship.ledger_note`) names the assets read, the purpose and
the consents relied on. :func:`audit_flows` groups those entries into flows —
which assets went to which analyst, for which purpose, under whose consent,
how often — and flags each entity-scoped answer (a ``prepare``, ``score`` or ``predict``)
that carries no consent, and each consent it cannot find in the register.
No voucher is needed: what the supervisor trusts is the holders' signed
ledgers (checked with ``unseen audit verify``), the exchange's signed
registrations and the subjects' signed consents.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unseen.engine.governance.asset import Registration
from unseen.engine.governance.consent import ConsentRegister
from unseen.engine.governance.ledger import LedgerEntry, LedgerRange
from unseen.engine.governance.signing import utc_text

__all__ = ["Flow", "FlowReport", "Note", "audit_flows", "parse_note"]

# Kinds that always name entities: each answer needs the entities' consents.
ENTITY_KINDS = frozenset({"prepare", "score", "predict"})
# Kinds that reach data. Joint training's ``align`` (PSI) names no entity, and a
# ``train`` entry names them only at the job's start (its iteration charges
# name none), so those two are listed, with their consents, but not flagged.
DATA_KINDS = frozenset({"aggregate", "prepare", "score", "align", "train", "predict"})
_NOTE = re.compile(
    r"^(?:assets=(?P<assets>\S+))?\s*"
    r"(?:consent_set=(?P<set>[0-9a-f]{64}) consents=(?P<consents>\S+))?\s*"
    r"(?:purpose=(?P<purpose>.*))?$"
)


@dataclass(frozen=True)
class Note:
    """An answered entry's note (see :func:`unseen.engine.governance.stewardship.ledger_note`).

    ``consents`` are digest prefixes when the note lists them; ``consent_count``
    is their number either way.
    """

    assets: tuple[str, ...] = ()
    consent_set: str = ""
    consents: tuple[str, ...] = ()
    consent_count: int = 0
    purpose: str = ""


def parse_note(reason: str) -> Note:
    """Read a note; an entry without one (or a refusal's reason) gives an empty note."""
    match = _NOTE.match(reason or "")
    if match is None:
        return Note()
    listed = match.group("consents") or ""
    prefixes = () if not listed or listed.isdigit() else tuple(listed.split(","))
    return Note(
        assets=tuple(sorted(match.group("assets").split(","))) if match.group("assets") else (),
        consent_set=match.group("set") or "",
        consents=prefixes,
        consent_count=int(listed) if listed.isdigit() else len(prefixes),
        purpose=match.group("purpose") or "",
    )


@dataclass
class Flow:
    """Answers of one kind from one holder's assets to one analyst for one purpose."""

    holder: str
    assets: tuple[str, ...]
    tables: tuple[str, ...]
    owners: tuple[str, ...]
    analyst: str
    purpose: str
    kind: str
    consent: str  # "subjects", "not entity-scoped", "MISSING", "unresolved"
    subjects: tuple[str, ...]
    count: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "holder": self.holder,
            "assets": list(self.assets),
            "tables": list(self.tables),
            "owners": list(self.owners),
            "analyst": self.analyst,
            "purpose": self.purpose,
            "kind": self.kind,
            "consent": self.consent,
            "subjects": list(self.subjects),
            "count": self.count,
            "first": utc_text(self.first) if self.first else None,
            "last": utc_text(self.last) if self.last else None,
        }


@dataclass
class FlowReport:
    flows: list[Flow] = field(default_factory=list)

    @property
    def lacking(self) -> list[Flow]:
        """Flows that needed consents and lack (some of) them, or whose consents the
        register cannot show."""
        return [f for f in self.flows if f.consent in ("MISSING", "unresolved")]

    def to_dict(self) -> dict[str, object]:
        return {
            "flows": [f.to_dict() for f in self.flows],
            "lacking_consent": len(self.lacking),
        }


def _consent_of(
    entry: LedgerEntry, note: Note, register: ConsentRegister
) -> tuple[str, tuple[str, ...]]:
    """``(status, subjects)``: the subjects of the consents the answer relied on, or of
    the voucher's consent set when the note only counts them."""
    prefixes = note.consents
    if not note.consent_set:
        return ("MISSING" if entry.kind in ENTITY_KINDS else "not entity-scoped"), ()
    if prefixes:
        by_prefix = {d[:16]: t for d, t in register.consents.items()}
        found = [by_prefix.get(p) for p in prefixes]
    else:
        members = register.sets.get(note.consent_set)
        found = [register.consents.get(d) for d in members] if members else [None]
    if any(t is None for t in found):
        return "unresolved", ()
    subjects = tuple(sorted({str(t.data.get("subject")) for t in found if t is not None}))
    return "subjects", subjects


def audit_flows(
    ledgers: Iterable[LedgerRange],
    registrations: Sequence[Registration],
    register: ConsentRegister,
) -> FlowReport:
    """Group every answered data request of ``ledgers`` into flows (see the module docstring)."""
    assets = {r.asset_id: r for r in registrations}
    flows: dict[tuple[object, ...], Flow] = {}
    for ledger in ledgers:
        for entry in ledger.entries:
            if entry.outcome != "answered" or entry.kind not in DATA_KINDS:
                continue
            note = parse_note(entry.reason)
            ids = note.assets
            consent, subjects = _consent_of(entry, note, register)
            key = (entry.holder, ids, entry.analyst, note.purpose, entry.kind, consent, subjects)
            flow = flows.get(key)
            if flow is None:
                regs = [assets[a] for a in ids if a in assets]
                flow = flows[key] = Flow(
                    holder=entry.holder,
                    assets=ids,
                    tables=tuple(sorted({r.table for r in regs})),
                    owners=tuple(sorted({str(r.data["owner"]) for r in regs})),
                    analyst=entry.analyst,
                    purpose=note.purpose,
                    kind=entry.kind,
                    consent=consent,
                    subjects=subjects,
                )
            flow.count += 1
            flow.first = min(flow.first or entry.time, entry.time)
            flow.last = max(flow.last or entry.time, entry.time)
    ordered = sorted(flows.values(), key=lambda f: (f.holder, f.assets, f.analyst, f.kind))
    return FlowReport(ordered)
