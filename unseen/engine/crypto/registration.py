"""An analyst's public registration: the CKKS and the BFV public context in one blob.

Why one blob and one key id: an analyst's key id (SHA-256 of what it
registers) is its identity — vouchers name it as their grantee, ledgers
record it, holders encrypt under it. Aggregates are encrypted under a BFV key
(:mod:`unseen.engine.crypto.bfv`) and scores under a CKKS key
(:mod:`unseen.engine.crypto.ckks`). Were they two separately registered key
ids, nothing would tie the BFV key to the identity a voucher names, and a
coordinator colluding with another analyst could have a voucher holder's
answers encrypted under a key of its choosing. Hashing both contexts into one
key id makes the binding exact: a voucher for key id K can only ever release
answers under the two public contexts K commits to.

Format: ``MAGIC``, then the CKKS and the BFV context, each preceded by its
length (4 bytes, big-endian). Both contexts carry their public key in seeded
form (:mod:`unseen.engine.crypto.seeded`): the magic's version says so, and a
registration of the previous version (``LEGACY_MAGIC``: public keys stored in
full, whose random half the analyst could have chosen) is refused in one
line. A blob without a magic is a CKKS context alone (as registered before
aggregates moved to BFV): it still scores and trains if its key is seeded,
but aggregates refuse it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from unseen.engine.errors import CryptoError

__all__ = ["LEGACY_MAGIC", "MAGIC", "PublicParts", "join", "split"]

MAGIC = b"unseen.v2.keys\n"
# Registrations before issue 11: the same layout, public keys stored in full.
LEGACY_MAGIC = b"unseen.v1.keys\n"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True)
class PublicParts:
    """The contexts inside one registration; ``bfv`` is empty for a CKKS-only key."""

    ckks: bytes
    bfv: bytes = b""


def join(ckks_public: bytes, bfv_public: bytes) -> bytes:
    """One registration blob from the two public contexts."""
    return b"".join(
        (
            MAGIC,
            _LENGTH.pack(len(ckks_public)),
            ckks_public,
            _LENGTH.pack(len(bfv_public)),
            bfv_public,
        )
    )


def split(data: bytes) -> PublicParts:
    """The contexts of a registration blob; refuses old versions, truncation and trailing bytes."""
    if data.startswith(LEGACY_MAGIC):
        raise CryptoError(
            "this key registration predates seeded public keys and is refused: "
            "update unseen on the analyst's side (loading the key upgrades it) "
            "or run unseen keys new"
        )
    if not data.startswith(MAGIC):
        return PublicParts(data)
    parts = []
    at = len(MAGIC)
    for _ in range(2):
        if at + _LENGTH.size > len(data):
            raise CryptoError("the key registration is truncated")
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + length > len(data):
            raise CryptoError("the key registration is truncated")
        parts.append(data[at : at + length])
        at += length
    if at != len(data):
        raise CryptoError("the key registration has trailing bytes")
    if not parts[0] or not parts[1]:
        raise CryptoError("the key registration has an empty context")
    return PublicParts(parts[0], parts[1])
