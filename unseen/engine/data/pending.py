"""A holder's short-lived memory between the two rounds of a masked aggregate.

Round 1 reads the data once and keeps the per-group moments here under the
coordinator's query id; round 2 takes them out (once) to mask and encrypt,
so round 2 never reads data again. The store is bounded in entries and age,
because every entry holds plaintext moments in memory. It also remembers the
nonces round 2 used, so a coordinator cannot replay one: masks derived twice
from the same nonce would let two answers be subtracted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from unseen.engine.data.aggregate import PreparedAnswer
from unseen.engine.errors import PlanError, PolicyError
from unseen.engine.query.plan import AggregatePlan

__all__ = ["PendingAggregate", "PendingAggregates"]


@dataclass(frozen=True)
class PendingAggregate:
    """What round 1 left for round 2 of one query."""

    key_id: str
    plan: AggregatePlan
    plan_digest: str
    prepared: PreparedAnswer
    created: float
    # The holders the voucher used in round 1 requires as participants, if it names them.
    federation: frozenset[str] | None = None


class PendingAggregates:
    """Round-1 results by query id, and the round-2 nonces already used."""

    def __init__(self, max_entries: int = 64, ttl: float = 120.0, max_nonces: int = 65_536):
        self.max_entries, self.ttl, self.max_nonces = max_entries, ttl, max_nonces
        self._entries: OrderedDict[str, PendingAggregate] = OrderedDict()
        self._nonces: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.created <= self.ttl:
                break
            self._entries.popitem(last=False)

    def put(self, query_id: str, entry: PendingAggregate) -> None:
        """Keep a round-1 result; a query id is usable once."""
        if not query_id or len(query_id) > 128:
            raise PolicyError("a masked aggregate needs a query id of at most 128 characters")
        with self._lock:
            self._expire(time.monotonic())
            if query_id in self._entries:
                raise PolicyError("that query id is already pending here; use a fresh one")
            self._entries[query_id] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __contains__(self, query_id: object) -> bool:
        """Whether round 1 of ``query_id`` finished here and waits for round 2."""
        with self._lock:
            return query_id in self._entries

    def take(self, query_id: str, key_id: str, nonce: bytes) -> PendingAggregate:
        """Round 2: the round-1 result of ``query_id`` (removed), under a never-seen nonce."""
        with self._lock:
            self._expire(time.monotonic())
            entry = self._entries.get(query_id)
            if entry is None or entry.key_id != key_id:
                raise PlanError(
                    "no prepared aggregate under that query id (expired or never prepared); "
                    "start the query again"
                )
            if nonce in self._nonces:
                raise PolicyError("that mask nonce was used before; masks are never reused")
            del self._entries[query_id]
            self._nonces[nonce] = None
            while len(self._nonces) > self.max_nonces:
                self._nonces.popitem(last=False)
            return entry
