"""A coordinator serving as a holder of a higher coordinator (hierarchical federation).

Why: a province has 21 city federations, each governed by its own city; the
provincial coordinator must reach every department's data without a city
handing up plaintext, a key or an unmasked subtotal. So a city coordinator
started with ``--as-holder NAME`` answers the holder service to the province
by relaying to its own holders, and the privacy rules stay where they are —
at the leaf holders:

- **Catalog.** The merge of its holders' catalogs under the city's name, each
  table listing the leaf holders behind it, plus every leaf's mask key as the
  leaf published it (signed by the leaf's certificate in governed mode). The
  city publishes no mask key of its own and holds none.
- **Masks.** The province lists every *leaf* in its MaskRound; the city passes
  the round on unchanged (same query id, nonce, participants and suppressed
  groups), so each leaf derives pairwise masks with every other leaf of the
  province. The city's sum of its leaves' answers is still masked by the
  leaves of other cities: neither the city nor the province (nor an analyst
  either shares ciphertexts with) can read a city's subtotal.
- **Suppression and dp.** Round 1 is relayed to every holder of the city; the
  reply is the union of their failing groups with the first reason per group
  (:func:`unseen.engine.privacy.suppression.first_reasons`), so a group small
  at one leaf is suppressed in the province's answer. Dp noise shares are
  added by each leaf, sized by the table's public policy; the catalog merge
  counts leaves, not catalogs, against ``honest_holders``.
- **Governance.** Vouchers are issued for leaf holders and forwarded untouched
  with the analyst's certificate name; each leaf authorises, charges and
  ledgers as under a flat coordinator. A city with a ledger appends one
  ``relay`` entry per round 1 whose result digest commits to its leaves'
  receipts, and answers its own receipt first followed by theirs, so an
  auditor can follow a provincial answer's receipts down
  (:func:`unseen.engine.governance.audit.follow_relays`).
- **Ciphertexts** are loaded and summed with the coordinator's own helpers
  (:mod:`unseen.nodes.aggregate`), so a change of scheme stays there.

Scoring, model registration, alignment and training are refused with
UNIMPLEMENTED by the servicer: a score's entities and features are vertical,
and relaying them through two levels is not designed yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from unseen.engine.crypto import bfv
from unseen.engine.errors import HolderError, PlanError, PolicyError, UnseenError
from unseen.engine.governance.access import Governance, digest
from unseen.engine.governance.audit import relay_digest
from unseen.engine.privacy.masks import Participant
from unseen.engine.privacy.suppression import first_reasons
from unseen.engine.query.catalog import Catalog, merge
from unseen.engine.query.layout import layout_for
from unseen.engine.query.plan import AggregatePlan, check_plan
from unseen.engine.transport.peers import retry_not_found
from unseen.engine.transport.rpc import DEADLINES
from unseen.nodes.aggregate import MaskedRound, masked_sum
from unseen.nodes.coordinator import Coordinator
from unseen.nodes.holders import Peer, combine
from unseen.nodes.vouchers import route_vouchers, vouchers_for

__all__ = ["CityHolder", "RelayedRound"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayedRound:
    """What round 1 left at the city for round 2 of one provincial query."""

    key_id: str
    plan: AggregatePlan
    peers: tuple[Peer, ...]
    leaves: tuple[Participant, ...]  # the mask keys of ``peers``' leaves, as published
    # Every leaf name behind this city, silent ones included: a participant of
    # these names that did not take part in round 1 would leave masks uncancelled.
    mine: frozenset[str]
    created: float
    # What the city published when round 1 fetched its holders' catalogs: its
    # digest goes back to the province, whose cached copy must equal it.
    catalog: Catalog | None = None


@dataclass
class CityHolder:
    """A city coordinator's holder face: relays the two rounds and sums its leaves' answers.

    Holds no secret key and no mask key; sees what a coordinator sees.
    """

    name: str
    coordinator: Coordinator
    governance: Governance | None = None
    max_pending: int = 64
    ttl: float = 120.0
    _pending: OrderedDict[str, RelayedRound] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.governance is None:
            self.governance = Governance(self.name)

    @property
    def gov(self) -> Governance:
        assert self.governance is not None
        return self.governance

    # -- catalog ---------------------------------------------------------------
    def catalog(self, budget: float | None = None) -> Catalog:
        """The city's holders' catalogs merged under the city's name, with their mask keys.

        Fetched fresh (not from the analyst-facing cache): the province fixes its
        participants from this answer, and they must be the leaves round 1 reaches.
        """
        fresh, silent = self.coordinator.holders.published(budget)
        return self._publish(fresh, silent)

    def _publish(
        self,
        fresh: Sequence[tuple[Peer, Catalog]],
        silent: Sequence[tuple[Catalog, HolderError]],
    ) -> Catalog:
        """What the city publishes, given its holders' catalogs fetched now."""
        # A silent holder's tables stay listed (a query on them fails naming it);
        # only the leaves answering now are offered as mask participants.
        merged = merge([catalog for _, catalog in fresh] + [catalog for catalog, _ in silent])
        # Each merged table lists the leaf holders behind it (a nested city's leaves too).
        tables = merged.tables
        leaves = tuple(key for _, catalog in fresh for key in catalog.mask_participants)
        return Catalog(
            self.name,
            tables,
            merged.vouchers_required,
            merged.conflicts,
            mask_key=None,
            leaves=leaves,
        )

    def register_key(self, public: bytes, deadline: float | None = None) -> str:
        return self.coordinator.register_key(public, deadline)

    # -- round 1 ---------------------------------------------------------------
    def prepare_aggregate(
        self,
        key_id: str,
        plan: AggregatePlan,
        encoded: Any,
        query_id: str,
        vouchers: tuple[str, ...] = (),
        plan_bytes: bytes = b"",
        subject: str | None = None,
        budget: float | None = None,
    ) -> tuple[dict[int, str], list[str]]:
        """Relay round 1 to every holder of the city; union of failing groups, receipts.

        ``encoded`` is the plan exactly as the province sent it, forwarded as is
        so every leaf digests the same bytes into its masks.
        """
        coordinator = self.coordinator
        coordinator.keys.get(key_id)  # NOT_FOUND: the province registers the key and retries
        budget = min(budget or DEADLINES["aggregate"], DEADLINES["aggregate"])
        try:
            # Every holder of the city takes part (a leaf without the table with
            # masks only): the province lists every leaf the city published. A
            # holder that does not answer and may host the table fails the query.
            fresh, silent = coordinator.holders.published(budget)
            # A holder silent now that hosted the table fails the query, named.
            missing = [error for catalog, error in silent if catalog.table(plan.table)]
            if missing:
                raise combine(missing)
            mine = {k.holder for catalog, _ in silent for k in catalog.mask_participants}
            merged = merge([catalog for _, catalog in fresh])
            table = merged.table(plan.table)
            if table is not None:
                check_plan(plan, table, coordinator.limits)
            elif merged.conflict(plan.table):
                raise PlanError(str(merged.conflict(plan.table)))
            # else no holder here hosts the table: the whole city masks only.
            peers = tuple(peer for peer, _ in fresh)
            leaves = tuple(key for _, catalog in fresh for key in catalog.mask_participants)
            mine |= {leaf.holder for leaf in leaves}
            routed = route_vouchers(vouchers)
            # Each holder is given the vouchers issued for it (or its own leaves).
            names = {
                peer.address: {peer.name, *(k.holder for k in catalog.mask_participants)}
                for peer, catalog in fresh
            }

            def prepare(peer: Peer) -> tuple[dict[int, str], tuple[str, ...]]:
                return retry_not_found(
                    lambda: peer.prepare_aggregate(
                        key_id,
                        encoded,
                        query_id,
                        vouchers_for(names[peer.address], routed),
                        budget=budget,
                        subject=subject,
                    ),
                    lambda: peer.register_key(coordinator.keys.public_bytes(key_id), budget),
                )

            prepared = coordinator.holders.each(peers, prepare, budget).require_all(peers)
        except UnseenError as exc:
            self._ledger_failure(key_id, plan_bytes, exc)
            raise
        failing_sets = [failing for failing, _ in prepared]
        suppressed = sorted({i for failing in failing_sets for i in failing})
        reasons = first_reasons(suppressed, failing_sets)
        below = [r for _, receipts in prepared for r in receipts]
        own = self._ledger_relay(key_id, plan_bytes, below)
        entry = RelayedRound(
            key_id,
            plan,
            peers,
            leaves,
            frozenset(mine),
            time.monotonic(),
            self._publish(fresh, silent),
        )
        self._put(query_id, entry)
        log.info(
            "relayed round 1 of an aggregate on %s to %d holders: %d groups failing",
            plan.table,
            len(peers),
            len(suppressed),
        )
        return dict(zip(suppressed, reasons, strict=True)), own + below

    def _ledger_relay(self, key_id: str, plan_bytes: bytes, below: Sequence[str]) -> list[str]:
        """One ``relay`` entry committing to the leaves' receipts, in the order answered."""
        ledger = self.gov.ledger
        if ledger is None:
            return []
        receipt = ledger.append(
            kind="relay",
            analyst=key_id,
            outcome="answered",
            plan_digest=digest(plan_bytes),
            result_digest=relay_digest(below),
        )
        return [receipt.encode()]

    def _ledger_failure(self, key_id: str, plan_bytes: bytes, exc: UnseenError) -> None:
        ledger = self.gov.ledger
        if ledger is None:
            return
        # As a holder's ledger words it: a refusal's reason, a failure's class; a
        # holder's refusal by its status and name (its ledger keeps the reason).
        if isinstance(exc, HolderError):
            refused = exc.code == "PERMISSION_DENIED"
            reason = f"{exc.code} from holder {exc.holder}"
        else:
            refused = isinstance(exc, PolicyError)
            reason = str(exc) if refused else f"failed: {type(exc).__name__}"
        ledger.append(
            kind="relay",
            analyst=key_id,
            outcome="refused" if refused else "failed",
            plan_digest=digest(plan_bytes),
            reason=reason,
        )

    def _put(self, query_id: str, entry: RelayedRound) -> None:
        if not query_id or len(query_id) > 128:
            raise PolicyError("a masked aggregate needs a query id of at most 128 characters")
        with self._lock:
            self._expire()
            if query_id in self._pending:
                raise PolicyError("that query id is already pending here; use a fresh one")
            self._pending[query_id] = entry
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)

    def round_catalog(self, query_id: str) -> Catalog | None:
        """The catalog the city published as round 1 of ``query_id`` saw its holders."""
        with self._lock:
            entry = self._pending.get(query_id)
            return None if entry is None else entry.catalog

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending and now - next(iter(self._pending.values())).created > self.ttl:
            self._pending.popitem(last=False)

    def _take(self, query_id: str, key_id: str) -> RelayedRound:
        with self._lock:
            self._expire()
            entry = self._pending.get(query_id)
            if entry is None or entry.key_id != key_id:
                raise PolicyError(
                    "no relayed aggregate under that query id (expired or never prepared); "
                    "start the query again"
                )
            del self._pending[query_id]
            return entry

    # -- round 2 ---------------------------------------------------------------
    def aggregate(
        self,
        key_id: str,
        query_id: str,
        nonce: bytes,
        participants: tuple[Participant, ...],
        suppressed: frozenset[int],
        subject: str | None = None,
        budget: float | None = None,
    ) -> list[bytes]:
        """Relay round 2 unchanged to round 1's holders and add their masked answers.

        Every leaf round 1 reached must be listed under the key it published:
        a leaf left out would refuse anyway, and one listed under another key
        would make the masks fail to cancel.
        """
        coordinator = self.coordinator
        entry = self._take(query_id, key_id)
        listed = {p.holder: p.public for p in participants}
        for leaf in entry.leaves:
            if listed.get(leaf.holder) != leaf.public:
                raise PolicyError(
                    f"city {self.name}: holder {leaf.holder} is not among the participants "
                    "under the mask key it published; start the query again"
                )
        # A leaf of this city listed but not reached in round 1 (it went silent
        # since the province read the catalog) would leave its peers' masks in the sum.
        absent = sorted(set(listed) & entry.mine - {leaf.holder for leaf in entry.leaves})
        if absent:
            raise PolicyError(
                f"city {self.name}: holder {absent[0]} is listed but did not take part in "
                "round 1; start the query again"
            )
        ctx = coordinator.keys.aggregate_context(key_id)
        layout = layout_for(entry.plan, coordinator.limits)
        slots = entry.plan.codec.slots
        budget = min(budget or DEADLINES["aggregate"], DEADLINES["aggregate"])
        peers = entry.peers
        sums = masked_sum(
            coordinator.holders,
            peers,
            MaskedRound(key_id, query_id, nonce, participants, sorted(suppressed)),
            ctx,
            layout.ciphertexts,
            slots,
            budget=budget,
            subject=subject,
        )
        log.info("relayed round 2 to %d holders: %d ciphertexts", len(peers), len(sums))
        return [bfv.serialize(v) for v in sums]

    def read_ledger(self, request: dict[str, object], signature: bytes) -> tuple[str, str]:
        return self.gov.read_ledger(request, signature)
