"""A bounded cache of encoded feature plaintexts, shared by a process's scorers.

Encoding a feature column (a CKKS encode: an inverse FFT and one NTT per RNS
limb) is most of a holder's scoring time; the product with the weight is a
fraction of it. A bank that scores the same applicants again, or a bench that
repeats a request, encodes the same columns at the same level and scale again.
The cache keys each plaintext by a SHA-256 digest of a namespace (the model's
identity: its analyst key, id and weight digests, never a caller-chosen id
alone — unseen.engine.crypto.workers), the column's bytes, the level
(``parms_id``) and the scale: a hit is exactly the plaintext a fresh encode
would give, a changed value is a miss, and the key says nothing about the
values (nothing here logs at all). The namespace keeps one analyst's requests
from hitting another's entries: a faster answer would tell an analyst that
someone else scored the same entities with the same feature recently. Memory
is bounded in bytes, oldest entry evicted first.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import tenseal.sealapi as sealapi

__all__ = ["DEFAULT_CACHE_BYTES", "EncodedCache", "default_capacity"]

# 128 MiB per process: about 200 encoded columns at the default key (N = 16384,
# five limbs at the weights' level: 640 KB each), e.g. 100k entities x 10 features
# (13 blocks of 8192) with room to spare, or seven blocks of 30 features.
DEFAULT_CACHE_BYTES = 128 << 20


def default_capacity() -> int:
    """Bytes per process: ``UNSEEN_ENCODED_CACHE_MB`` (0 turns the cache off), else 128 MiB."""
    value = os.environ.get("UNSEEN_ENCODED_CACHE_MB", "")
    try:
        return max(0, int(value)) << 20 if value.strip() else DEFAULT_CACHE_BYTES
    except ValueError:
        return DEFAULT_CACHE_BYTES


class EncodedCache:
    """Encoded plaintexts by digest of (column, level, scale), at most ``capacity`` bytes."""

    def __init__(self, capacity: int | None = None):
        self.capacity = default_capacity() if capacity is None else capacity
        self.hits = 0
        self.misses = 0
        self._size = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[sealapi.Plaintext, int]] = OrderedDict()

    def get(
        self,
        column: np.ndarray,
        parms_id: list[int],
        scale: float,
        encode: Callable[[], sealapi.Plaintext],
        namespace: bytes = b"",
    ) -> sealapi.Plaintext:
        """The plaintext for ``column`` at this level and scale, encoded on a miss."""
        if self.capacity <= 0:
            return encode()
        digest = hashlib.sha256(hashlib.sha256(namespace).digest())
        digest.update(np.ascontiguousarray(column, dtype="<f8").tobytes())
        digest.update(np.asarray(parms_id, dtype="<u8").tobytes())
        digest.update(np.float64(scale).tobytes())
        key = digest.digest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        plain = encode()
        size = 8 * int(plain.coeff_count())
        with self._lock:
            if key not in self._entries and size <= self.capacity:
                self._entries[key] = (plain, size)
                self._size += size
                while self._size > self.capacity:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self._size -= dropped
        return plain

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def __len__(self) -> int:
        return len(self._entries)
