"""Pairwise zero-sum masks between the holders answering one aggregate query.

Why: the analyst holds the secret key and the coordinator may share with it
every ciphertext it relays, so a holder's answer must not be readable alone.
In the manner of Bonawitz et al.'s secure aggregation, every pair of holders
``(i, j)`` taking part in a query agrees on a mask ``m_ij`` (one value per
slot, uniform modulo ``2^MASK_BITS``); holder ``i`` adds ``m_ij`` when its
name sorts before ``j``'s and subtracts it otherwise. Each answer is then
uniformly random modulo ``2^MASK_BITS`` to anyone missing one of its peers'
keys, and the masks cancel exactly in the sum over all participants, which
the analyst reduces modulo ``2^MASK_BITS`` (:func:`reduce_slots`).

Key agreement is X25519 between holders' long-lived mask keys; per query, the
shared secret goes through HKDF-SHA256 with the coordinator's fresh nonce as
salt and a digest of everything the holders must agree on as ``info``
(:func:`query_context`: the plan, the query id, the sorted participants with
their keys, the suppressed groups). A coordinator that tells different holders
different stories therefore gets masks that do not cancel: random garbage, not
a subtotal. The 32-byte HKDF output keys ChaCha20, whose keystream is read as
little-endian 64-bit words reduced modulo ``2^MASK_BITS`` (a power of two
dividing 2^64, so uniform). Nothing here is a hand-made primitive.

Why ``MASK_BITS = 32``: slots carry signed 20-bit limbs, so the true sum over
``n <= MAX_PARTICIPANTS`` holders stays far inside ``(-2^31, 2^31)`` and the
centred reduction recovers it. Each holder sends its masked slot centred in
``[-2^31, 2^31)``, so the encrypted sum stays below ``n * 2^31``; CKKS at
scale 2^50 decrypts 64 such values summed with a measured worst error of
1.1e-5 (2.9e-3 at 2^40), 256 with 2.3e-5, far inside the analyst's 0.125
rounding guard. A slot holds at most 2^20 per holder, so the true sum over
256 holders (below 2^28) is still recovered by the centred reduction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from unseen.engine.errors import CryptoError, PolicyError

__all__ = [
    "MASK_BITS",
    "MAX_PARTICIPANTS",
    "NONCE_BYTES",
    "MaskKey",
    "Participant",
    "apply_masks",
    "pair_masks",
    "query_context",
    "reduce_slots",
]

MASK_BITS = 32
MODULUS = 1 << MASK_BITS
_HALF = MODULUS >> 1
# Each holder derives one keystream per peer and slot: cost grows with n * slots
# (measured ~15 ms per holder per query at 64 peers, 3 ciphertexts' slots), and
# the CKKS precision above was measured up to 256 summed answers. 256 lets a
# province of city federations (unseen.nodes.city) mask between all its leaves.
MAX_PARTICIPANTS = 256
NONCE_BYTES = 32
_HKDF_INFO_PREFIX = b"unseen.v1.mask\n"


@dataclass(frozen=True)
class Participant:
    """A holder taking part in a query, as the coordinator lists it.

    ``certificate`` (PEM) and ``signature`` bind ``public`` to the holder's
    identity in governed mode; in quick-start they are empty.
    """

    holder: str
    public: bytes
    certificate: bytes = b""
    signature: bytes = b""


@dataclass(frozen=True)
class MaskKey:
    """A holder's X25519 mask key pair, generated when the node starts."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> MaskKey:
        return cls(X25519PrivateKey.generate())

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def shared(self, peer_public: bytes) -> bytes:
        """The X25519 secret shared with a peer; refuses a malformed or low-order key."""
        try:
            return self.private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError as exc:
            raise CryptoError("a participant's mask key is not a valid X25519 key") from exc


def query_context(
    plan_digest: str,
    query_id: str,
    participants: Sequence[Participant],
    suppressed: Iterable[int],
) -> bytes:
    """The digest every participant must agree on for its masks to cancel."""
    body = json.dumps(
        {
            "plan": plan_digest,
            "query": query_id,
            "participants": [[p.holder, p.public.hex()] for p in _sorted(participants)],
            "suppressed": sorted(set(suppressed)),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(body).digest()


def _sorted(participants: Sequence[Participant]) -> list[Participant]:
    return sorted(participants, key=lambda p: p.holder)


def _stream(shared: bytes, nonce: bytes, context: bytes, length: int) -> np.ndarray:
    """``length`` values uniform modulo 2^MASK_BITS from one pair's shared secret."""
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=nonce, info=_HKDF_INFO_PREFIX + context
    ).derive(shared)
    # The key is fresh per query and pair, so a fixed ChaCha20 nonce is safe.
    encryptor = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    words = np.frombuffer(encryptor.update(bytes(8 * length)), dtype="<u8")
    return (words & np.uint64(MODULUS - 1)).astype(np.int64)


def pair_masks(
    own: MaskKey,
    own_name: str,
    participants: Sequence[Participant],
    nonce: bytes,
    context: bytes,
    length: int,
) -> np.ndarray:
    """This holder's share of the zero-sum masks: ``sum_j ±m_ij mod 2^MASK_BITS``."""
    if len(nonce) != NONCE_BYTES:
        raise PolicyError(f"a mask nonce has {NONCE_BYTES} bytes")
    total = np.zeros(length, dtype=np.int64)
    for peer in participants:
        if peer.holder == own_name:
            continue
        mask = _stream(own.shared(peer.public), nonce, context, length)
        total = total + mask if own_name < peer.holder else total - mask
        total &= MODULUS - 1
    return total


def apply_masks(vectors: Sequence[np.ndarray], masks: np.ndarray) -> list[np.ndarray]:
    """Slot vectors plus masks modulo 2^MASK_BITS, centred in [-2^31, 2^31).

    ``vectors`` hold exact small integers (limbs) as floats; centring halves
    the magnitude the encrypted sum reaches, which is what CKKS precision
    depends on.
    """
    flat = np.concatenate(vectors).astype(np.int64) if vectors else np.zeros(0, np.int64)
    if flat.shape != masks.shape:
        raise CryptoError("mask length does not match the answer's slots")
    masked = ((flat + masks + _HALF) & (MODULUS - 1)) - _HALF
    out = masked.astype(np.float64)
    sizes = np.cumsum([len(v) for v in vectors])[:-1]
    return list(np.split(out, sizes))


def reduce_slots(slots: np.ndarray) -> np.ndarray:
    """Decrypted sums of masked answers brought back to the signed limb range.

    Each slot is rounded, reduced modulo 2^MASK_BITS into [-2^31, 2^31), and
    given back its distance to the nearest integer, so that the rounding guard
    of :func:`unseen.engine.query.layout.combine_limbs` still sees corruption or a wrong key.
    """
    values = np.asarray(slots, dtype=np.float64)
    finite = np.isfinite(values) & (np.abs(values) < 2.0**62)
    nearest = np.where(finite, np.round(values), 0.0)
    centred = ((nearest.astype(np.int64) + _HALF) & (MODULUS - 1)) - _HALF
    return np.where(finite, centred + (values - nearest), np.nan)
