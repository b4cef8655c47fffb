"""BFV parameters, public-context checks and the HE operations of aggregates.

Why BFV for aggregates: every slot of an aggregate answer is an exact
integer (a limb of a count or sum, plus pairwise masks), and all any party
does with it is add. BFV adds integers exactly modulo its plaintext modulus
``t``, so masks uniform modulo ``t`` cancel exactly and no rounding guard is
needed; CKKS (kept for scoring and training, :mod:`unseen.engine.crypto.ckks`)
needed a ring twice as large for the same 4096 slots. Measured with TenSEAL
on the bench machine: a fresh ciphertext costs 1.4-1.8 ms to encrypt (CKKS
N = 8192: 4.1 ms), 88 KB on the wire (360 KB), 0.5 ms to decrypt (1.0 ms).

Parameters: N = 4096 (4096 batching slots), the coefficient modulus SEAL's
``BFVDefault(4096)`` gives for 128-bit security (36 + 36 + 37 = 109 bits, the
HomomorphicEncryption.org maximum at N = 4096), and ``t = 1099511480321``,
the largest 40-bit prime with ``t = 1 (mod 8192)`` (SEAL's
``PlainModulus.Batching(4096, 40)``), so every slot is an integer modulo a
prime and ``(t - 1) / 2 > 2^39``. A fresh ciphertext has about 25 bits of
noise budget; an addition costs at most one bit, so the sum of 64 answers
keeps 22 (measured) and thousands stay decryptable.

Every function here works on TenSEAL objects and bytes only; nothing here
knows about plans, masks or the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts
import tenseal.sealapi  # registers seal::Modulus, read by load_public_context

from unseen.engine.crypto import seeded
from unseen.engine.crypto.ckks import add_all as _add_all
from unseen.engine.errors import CryptoError

__all__ = [
    "PARAMS",
    "BfvParams",
    "add_all",
    "decrypt",
    "encrypt_all",
    "load_ciphertext",
    "load_public_context",
    "new_secret_context",
    "public_bytes",
    "serialize",
    "slot_count",
]


@dataclass(frozen=True)
class BfvParams:
    poly_modulus_degree: int = 4096
    plain_modulus: int = 1099511480321  # PlainModulus.Batching(4096, 40)
    max_coeff_modulus_bits: int = 109  # 128-bit security at N = 4096

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree


PARAMS = BfvParams()

# A BFV public key at N = 4096 is about 134 KB serialised.
MAX_PUBLIC_CONTEXT_BYTES = 1 << 20


def new_secret_context(params: BfvParams = PARAMS) -> ts.Context:
    """A fresh BFV context holding the analyst's secret key (default 109-bit modulus)."""
    return ts.context(
        ts.SCHEME_TYPE.BFV,
        poly_modulus_degree=params.poly_modulus_degree,
        plain_modulus=params.plain_modulus,
    )


def public_bytes(ctx: ts.Context) -> bytes:
    """Serialise the public key only (aggregates never rotate or multiply), in seeded form.

    Seeded as the CKKS key is (:mod:`unseen.engine.crypto.seeded`), though it
    matters less here: every aggregate answer is pairwise-masked before it is
    encrypted, so a holder's BFV ciphertext hides no unmasked value even if
    its re-randomisation were undone.
    """
    return seeded.seeded_public_context(ctx)


def load_public_context(
    data: bytes, params: BfvParams = PARAMS, max_bytes: int = MAX_PUBLIC_CONTEXT_BYTES
) -> ts.Context:
    """Load and vet an analyst's BFV public context; refuse anything but unseen's parameters.

    Refused: oversized or unparsable blobs, secret keys, other schemes, another
    ring degree or plaintext modulus (holders' masks live modulo ``t``: a
    different ``t`` would not cancel them), a coefficient modulus above the
    128-bit bound, a missing public key, a public key not in seeded form, and
    Galois or relinearisation keys.
    """
    if len(data) > max_bytes:
        raise CryptoError(f"aggregate public context of {len(data)} bytes exceeds {max_bytes}")
    ctx = seeded.load_context(data)
    if ctx.has_secret_key() or ctx.is_private():
        raise CryptoError("refused a context that carries a secret key; send the public part only")
    if not ctx.has_public_key():
        raise CryptoError("aggregate public context has no public key")
    data_ctx = ctx.seal_context().data
    key_data = data_ctx.key_context_data()
    parms = key_data.parms()
    if getattr(parms.scheme(), "name", "") != "BFV":
        raise CryptoError(f"scheme {parms.scheme()} is not supported for aggregates; use BFV")
    if parms.poly_modulus_degree() != params.poly_modulus_degree:
        raise CryptoError(
            f"aggregate ring degree {parms.poly_modulus_degree()} is not "
            f"{params.poly_modulus_degree}"
        )
    if parms.plain_modulus().value() != params.plain_modulus:
        raise CryptoError(f"aggregate plaintext modulus is not {params.plain_modulus}")
    if key_data.total_coeff_modulus_bit_count() > params.max_coeff_modulus_bits:
        raise CryptoError(
            f"coefficient modulus of {key_data.total_coeff_modulus_bit_count()} bits at "
            f"N={params.poly_modulus_degree} is below 128-bit security"
        )
    if ctx.has_galois_keys() or ctx.has_relin_keys():
        raise CryptoError(
            "refused an aggregate context with Galois or relinearisation keys; "
            "send the public key only"
        )
    return ctx


def slot_count(ctx: ts.Context) -> int:
    """How many slots a BFV ciphertext under ``ctx`` holds (the ring degree)."""
    return int(ctx.seal_context().data.key_context_data().parms().poly_modulus_degree())


def encrypt_all(ctx: ts.Context, vectors: Sequence[np.ndarray]) -> list[bytes]:
    """Encrypt full slot vectors of integers in ``(-t/2, t/2)``; serialise each ciphertext."""
    return [
        bytes(ts.bfv_vector(ctx, np.asarray(v, dtype=np.int64).tolist()).serialize())
        for v in vectors
    ]


def load_ciphertext(ctx: ts.Context, data: bytes, slots: int) -> ts.BFVVector:
    """Deserialise a fresh ciphertext and check it belongs to ``ctx``'s parameters."""
    try:
        vector = ts.bfv_vector_from(ctx, data)
    except Exception as exc:
        raise CryptoError("ciphertext does not parse under the registered key") from exc
    if vector.size() != slots:
        raise CryptoError(f"ciphertext claims {vector.size()} slots; expected {slots}")
    parts = vector.ciphertext()
    if len(parts) != 1 or parts[0].size() != 2:
        raise CryptoError("ciphertext is not a single, two-part BFV ciphertext")
    data_ctx = ctx.seal_context().data
    level = data_ctx.get_context_data(parts[0].parms_id())
    if level is None or level.chain_index() != data_ctx.first_context_data().chain_index():
        raise CryptoError("ciphertext was made under other encryption parameters")
    return vector


def add_all(vectors: Sequence[ts.BFVVector]) -> ts.BFVVector:
    """Homomorphic sum of ciphertexts (the coordinator's only arithmetic).

    The same in-place sum as :func:`unseen.engine.crypto.ckks.add_all`: TenSEAL
    adds either scheme's vectors alike.
    """
    total: ts.BFVVector = _add_all(vectors)
    return total


def serialize(vector: ts.BFVVector) -> bytes:
    """A ciphertext's wire bytes."""
    return bytes(vector.serialize())


def decrypt(secret: ts.Context, data: bytes) -> np.ndarray:
    """Decrypt one serialised ciphertext: integers centred in ``(-t/2, t/2]``."""
    try:
        vector = ts.bfv_vector_from(secret, data)
    except Exception as exc:
        raise CryptoError("the answer does not parse as a BFV ciphertext under this key") from exc
    return np.asarray(vector.decrypt(), dtype=np.int64)
