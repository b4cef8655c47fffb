"""A node's bounded cache of registered public contexts, named by SHA-256.

Holders and the coordinator keep analysts' public contexts here. The cache
is bounded (least recently used out) because a context is about half a
megabyte and any client may register one; an evicted key is simply
registered again by the coordinator when a holder answers ``NOT_FOUND``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.errors import UnknownKeyError

__all__ = ["KeyStore"]


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
        self._contexts: OrderedDict[str, tuple[ts.Context, bytes]] = OrderedDict()

    def __len__(self) -> int:
        """How many public contexts are cached (a metrics gauge reads it)."""
        with self._lock:
            return len(self._contexts)

    def register(self, public: bytes) -> str:
        """Vet and cache a public context; returns its key id. Idempotent."""
        kid = ckks.key_id(public)
        with self._lock:
            if kid in self._contexts:
                self._contexts.move_to_end(kid)
                return kid
        ctx = ckks.load_public_context(public, self._max_bytes)  # slow part outside the lock
        with self._lock:
            self._contexts[kid] = (ctx, public)
            self._contexts.move_to_end(kid)
            while len(self._contexts) > 1 and (
                len(self._contexts) > self._max_keys
                or sum(len(p) for _, p in self._contexts.values()) > self._max_total
            ):
                self._contexts.popitem(last=False)
        return kid

    def get(self, kid: str) -> ts.Context:
        with self._lock:
            entry = self._contexts.get(kid)
            if entry is None:
                raise UnknownKeyError(f"key {kid[:16]}... is not registered here")
            self._contexts.move_to_end(kid)
            return entry[0]

    def public_bytes(self, kid: str) -> bytes:
        with self._lock:
            entry = self._contexts.get(kid)
            if entry is None:
                raise UnknownKeyError(f"key {kid[:16]}... is not registered here")
            return entry[1]

    def __contains__(self, kid: object) -> bool:
        with self._lock:
            return kid in self._contexts
