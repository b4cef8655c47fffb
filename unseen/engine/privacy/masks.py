"""Pairwise zero-sum masks between the holders answering one aggregate query.

Why: the analyst holds the secret key and the coordinator may share with it
every ciphertext it relays, so a holder's answer must not be readable alone.
In the manner of Bonawitz et al.'s secure aggregation, every pair of holders
``(i, j)`` taking part in a query agrees on a mask ``m_ij`` (one value per
slot, uniform modulo ``t``, the prime plaintext modulus of the BFV
ciphertexts answers travel in, :mod:`unseen.engine.crypto.bfv`); holder ``i``
adds ``m_ij`` when its name sorts before ``j``'s and subtracts it otherwise.
The answer lives in the group of integers modulo ``t`` — BFV adds slots
modulo ``t`` — so masks uniform in that very group make any proper subset of
the answers (with everything the coordinator sees) uniformly random: each
answer missing from the subset carries a mask shared with a holder outside
it, which acts as a one-time pad modulo ``t``. The masks cancel exactly in the
sum over all participants, which decrypts to the true limb sums modulo ``t``
(:func:`reduce_slots`).

Key agreement is X25519 between holders' long-lived mask keys; per query, the
shared secret goes through HKDF-SHA256 with the coordinator's fresh nonce as
salt and a digest of everything the holders must agree on as ``info``
(:func:`query_context`: the plan, the query id, the sorted participants with
their keys, the suppressed groups). A coordinator that tells different holders
different stories therefore gets masks that do not cancel: random garbage, not
a subtotal. The 32-byte HKDF output keys ChaCha20, whose keystream is read as
little-endian 64-bit words cut to their low ``MASK_BITS`` = 40 bits and
kept when below ``t`` (rejection sampling: ``t > 2^39``, so nearly every word
is kept, and each kept value is exactly uniform modulo ``t``). Nothing here
is a hand-made primitive.

Headroom: slots carry signed limbs of at most 24 bits plus a noise limb of
the same size, so the true sum over ``n`` participants stays below
``n * 2^25``, inside ``(-t/2, t/2)`` for ``n`` up to 2^14; the analyst's
decryption is centred there and reads it exactly. ``MAX_PARTICIPANTS``
(1024) bounds the work instead: each holder derives one keystream per peer.
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

from unseen.engine.crypto.bfv import PARAMS as BFV
from unseen.engine.errors import CryptoError, PolicyError

__all__ = [
    "MASK_BITS",
    "MAX_PARTICIPANTS",
    "MODULUS",
    "NONCE_BYTES",
    "MaskKey",
    "Participant",
    "apply_masks",
    "pair_masks",
    "query_context",
    "reduce_slots",
]

MODULUS = BFV.plain_modulus  # t, a prime just below 2^40
MASK_BITS = MODULUS.bit_length()  # 40: candidate words are cut to this many bits
_HALF = MODULUS >> 1
# Each holder derives one keystream per peer and slot: cost grows with n * slots
# (1024 peers and 4096 slots: 32 MB of ChaCha20, about 30 ms). A province of
# city federations (unseen.nodes.city) masks between all its leaves.
MAX_PARTICIPANTS = 1024
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
    """``length`` values uniform modulo ``t`` from one pair's shared secret."""
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=nonce, info=_HKDF_INFO_PREFIX + context
    ).derive(shared)
    # The key is fresh per query and pair, so a fixed ChaCha20 nonce is safe.
    encryptor = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
    kept: list[np.ndarray] = []
    have = 0
    while have < length:
        # A few spare words: almost never is a second round needed.
        need = length - have + 16
        words = np.frombuffer(encryptor.update(bytes(8 * need)), dtype="<u8")
        candidates = words & np.uint64((1 << MASK_BITS) - 1)
        good = candidates[candidates < np.uint64(MODULUS)]
        kept.append(good)
        have += len(good)
    return np.concatenate(kept)[:length].astype(np.int64)


def pair_masks(
    own: MaskKey,
    own_name: str,
    participants: Sequence[Participant],
    nonce: bytes,
    context: bytes,
    length: int,
) -> np.ndarray:
    """This holder's share of the zero-sum masks: ``sum_j ±m_ij mod t``."""
    if len(nonce) != NONCE_BYTES:
        raise PolicyError(f"a mask nonce has {NONCE_BYTES} bytes")
    total = np.zeros(length, dtype=np.int64)
    for peer in participants:
        if peer.holder == own_name:
            continue
        mask = _stream(own.shared(peer.public), nonce, context, length)
        total = total + mask if own_name < peer.holder else total - mask
        total %= MODULUS
    return total


def apply_masks(vectors: Sequence[np.ndarray], masks: np.ndarray) -> list[np.ndarray]:
    """Slot vectors plus masks modulo ``t``, centred in ``[-(t-1)/2, (t-1)/2]``.

    ``vectors`` hold exact small integers (limbs); the result is what BFV
    encodes (it takes signed integers of magnitude below ``t/2``).
    """
    flat = np.concatenate(vectors).astype(np.int64) if vectors else np.zeros(0, np.int64)
    if flat.shape != masks.shape:
        raise CryptoError("mask length does not match the answer's slots")
    out = _centred(flat + masks)
    sizes = np.cumsum([len(v) for v in vectors])[:-1]
    return list(np.split(out, sizes))


def _centred(values: np.ndarray) -> np.ndarray:
    """Integers reduced modulo ``t`` into ``[-(t-1)/2, (t-1)/2]`` (all below 2^62 in magnitude)."""
    return ((values + _HALF) % MODULUS) - _HALF


def reduce_slots(slots: np.ndarray) -> np.ndarray:
    """Decrypted sums of masked answers as signed integers modulo ``t``.

    BFV already decrypts into the centred range; reducing again costs nothing
    and keeps the contract independent of the decoder's convention.
    """
    return _centred(np.asarray(slots, dtype=np.int64))
