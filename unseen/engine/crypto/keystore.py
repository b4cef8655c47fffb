"""A node's bounded cache of registered public contexts, named by SHA-256.

Holders and the coordinator keep analysts' public contexts here. The cache
is bounded (least recently used out) because a registration is about 0.6 MB
and any client may register one; an evicted key is simply registered again
by the coordinator when a holder answers ``NOT_FOUND``.

A registration (:mod:`unseen.engine.crypto.registration`) holds a CKKS
context, for scores and training, and a BFV context, for aggregates; both are
vetted and cached under the one key id, the SHA-256 of the whole blob.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import tenseal as ts

from unseen.engine.crypto import bfv, ckks, registration
from unseen.engine.errors import CryptoError, UnknownKeyError

__all__ = ["KeyStore"]


@dataclass(frozen=True)
class _Entry:
    ckks: ts.Context
    aggregate: ts.Context | None  # BFV; None for a key registered before BFV aggregates
    public: bytes  # the registration as received (forwarded verbatim)
    parts: registration.PublicParts


class KeyStore:
    def __init__(
        self,
        max_keys: int = 32,
        max_bytes: int = ckks.MAX_PUBLIC_CONTEXT_BYTES,
        max_total_bytes: int = 64 << 20,
    ):
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        # Bounded by bytes too: what a key costs in memory grows with its size.
        self._max_total = max_total_bytes
        self._lock = threading.Lock()
        self._contexts: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        """How many public contexts are cached (a metrics gauge reads it)."""
        with self._lock:
            return len(self._contexts)

    def register(self, public: bytes) -> str:
        """Vet and cache a registration; returns its key id. Idempotent."""
        kid = ckks.key_id(public)
        with self._lock:
            if kid in self._contexts:
                self._contexts.move_to_end(kid)
                return kid
        if len(public) > self._max_bytes:
            raise CryptoError(f"public context of {len(public)} bytes exceeds {self._max_bytes}")
        # The slow part outside the lock.
        parts = registration.split(public)
        ctx = ckks.load_public_context(parts.ckks, self._max_bytes)
        aggregate = bfv.load_public_context(parts.bfv) if parts.bfv else None
        with self._lock:
            self._contexts[kid] = _Entry(ctx, aggregate, public, parts)
            self._contexts.move_to_end(kid)
            while len(self._contexts) > 1 and (
                len(self._contexts) > self._max_keys
                or sum(len(e.public) for e in self._contexts.values()) > self._max_total
            ):
                self._contexts.popitem(last=False)
        return kid

    def _entry(self, kid: str) -> _Entry:
        with self._lock:
            entry = self._contexts.get(kid)
            if entry is None:
                raise UnknownKeyError(f"key {kid[:16]}... is not registered here")
            self._contexts.move_to_end(kid)
            return entry

    def get(self, kid: str) -> ts.Context:
        """The key's CKKS context (scores, training)."""
        return self._entry(kid).ckks

    def aggregate_context(self, kid: str) -> ts.Context:
        """The key's BFV context (aggregates); refuses a key registered without one."""
        entry = self._entry(kid)
        if entry.aggregate is None:
            raise CryptoError(
                "this analyst key has no BFV part for aggregates; "
                "create a new one with: unseen keys new"
            )
        return entry.aggregate

    def public_bytes(self, kid: str) -> bytes:
        """The registration exactly as received (what is forwarded to holders)."""
        return self._entry(kid).public

    def ckks_public(self, kid: str) -> bytes:
        """The CKKS public context alone (what scoring workers load)."""
        return self._entry(kid).parts.ckks

    def aggregate_public(self, kid: str) -> bytes:
        """The BFV public context alone (what encryption workers load)."""
        self.aggregate_context(kid)
        return self._entry(kid).parts.bfv

    def __contains__(self, kid: object) -> bool:
        with self._lock:
            return kid in self._contexts
