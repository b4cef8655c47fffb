"""CKKS parameters, public-context checks and the few HE operations unseen uses.

Parameters (recorded in docs/architecture.md): N = 16384 (8192 slots), data
primes of 60 + 60 + 60 + 50 + 50 bits and a 60-bit special prime, 340 bits in
all (the HE-standard maximum for 128-bit security at N = 16384 is 438); the
context's scale is 2^50.

Why this wide (issue 11): a holder floods its partial score so that what the
analyst decrypts is statistically independent of the holder's features beyond
the score, at s >= 30 bits (unseen.engine.crypto.flooding). That needs the
error the analyst can compute to be at most about 2^-70 of the output scale
*and* a flood that still decodes within 1e-6: weights at about 2^104 and
features encoded at about 2^127 (``plan_flood`` picks both). No 218-bit
modulus (the N = 8192 maximum) holds both; these 290 data bits do, for every
model of up to 512 features (serde.MAX_FEATURES), with a decoded flood error
of 2.4e-8 per holder (the widest the precision allows: s = 37.6 at 30 features) (weights times their
features' bounds up to 2^40, partial scores below 2^45).

Why the last two data primes are 50 bits: TenSEAL's own vectors (training,
aggregates of old) assume every rescale divides by the context's scale and set
the result's scale to 2^50 whatever the prime was; a 60-bit prime there would
silently divide values by 1024. With two 50-bit primes last, training gets two
exact levels (one product and a second one), and 180 bits remain after them
for masked values. Scoring rescales once (by the last 50-bit prime) and sets
its own scale, so the wide 60-bit primes serve it.

Every function here works on TenSEAL objects and bytes only; nothing here
knows about plans or the wire.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts
import tenseal.sealapi  # registers SEAL's types (Modulus) for parms()

from unseen.engine.crypto import registration, seeded
from unseen.engine.errors import CryptoError

__all__ = [
    "PARAMS",
    "CkksParams",
    "add_all",
    "check_ciphertext",
    "decrypt",
    "encrypt",
    "key_id",
    "load_ciphertext",
    "load_public_context",
    "new_secret_context",
    "params_of",
    "public_bytes",
    "rerandomize",
    "slot_count",
    "weight_scale",
]


@dataclass(frozen=True)
class CkksParams:
    poly_modulus_degree: int = 16384
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 60, 60, 50, 50, 60)
    scale_bits: int = 50

    @property
    def slots(self) -> int:
        return self.poly_modulus_degree // 2


PARAMS = CkksParams()

# Largest total coefficient modulus (bits) at 128-bit classical security per the
# HomomorphicEncryption.org standard, keyed by ring degree. Contexts outside
# this table are refused by holders and the coordinator.
MAX_MODULUS_BITS = {8192: 218, 16384: 438, 32768: 881}
# A public key alone is 0.5 MB at N = 8192, 1.9 MB at the default N = 16384 and
# under 8 MB at N = 32768.
MAX_PUBLIC_CONTEXT_BYTES = 8 << 20


def new_secret_context(params: CkksParams = PARAMS) -> ts.Context:
    """A fresh CKKS context holding the analyst's secret key."""
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        params.poly_modulus_degree,
        coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
    )
    ctx.global_scale = 2.0**params.scale_bits
    return ctx


def params_of(ctx: ts.Context) -> CkksParams:
    """The parameters a context was actually made with (key.json records these)."""
    parms = ctx.seal_context().data.key_context_data().parms()
    return CkksParams(
        poly_modulus_degree=int(parms.poly_modulus_degree()),
        coeff_mod_bit_sizes=tuple(int(m.bit_count()) for m in parms.coeff_modulus()),
        scale_bits=round(math.log2(ctx.global_scale)),
    )


def public_bytes(ctx: ts.Context, galois: bool = False) -> bytes:
    """Serialise the public part only: a public key in seeded form (or, if asked, in full
    with Galois keys, which nodes refuse).

    The seeded form (:mod:`unseen.engine.crypto.seeded`) is the only one nodes
    load: it fixes the key's random polynomial to SEAL's expansion of a seed.
    """
    if not galois:
        return seeded.seeded_public_context(ctx)
    return bytes(
        ctx.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=galois,
            save_relin_keys=False,
        )
    )


def key_id(public: bytes) -> str:
    """A key's name: hex SHA-256 of its serialised public context."""
    return hashlib.sha256(public).hexdigest()


def load_public_context(data: bytes, max_bytes: int = MAX_PUBLIC_CONTEXT_BYTES) -> ts.Context:
    """Load and vet a context an analyst sent; refuse anything but a safe public CKKS key.

    ``data`` may be a whole registration (:mod:`unseen.engine.crypto.registration`):
    its CKKS part is loaded. Refused: oversized blobs, unparsable bytes,
    public keys not in seeded form (their random polynomial could be one the
    analyst chose to undo holders' re-randomisation: see
    :mod:`unseen.engine.crypto.seeded`), contexts carrying a secret key,
    schemes other than CKKS, ring degrees or modulus sizes outside the 128-bit
    table, and contexts without a public key (they could not encrypt).
    """
    if len(data) > max_bytes:
        raise CryptoError(f"public context of {len(data)} bytes exceeds {max_bytes} bytes")
    data = registration.split(data).ckks
    ctx = seeded.load_context(data)
    if ctx.has_secret_key() or ctx.is_private():
        raise CryptoError("refused a context that carries a secret key; send the public part only")
    if not ctx.has_public_key():
        raise CryptoError("public context has no public key")
    data_ctx = ctx.seal_context().data
    parms = data_ctx.key_context_data().parms()
    if getattr(parms.scheme(), "name", "") != "CKKS":
        raise CryptoError(f"scheme {parms.scheme()} is not supported; use CKKS")
    degree = parms.poly_modulus_degree()
    bits = data_ctx.key_context_data().total_coeff_modulus_bit_count()
    if degree not in MAX_MODULUS_BITS:
        raise CryptoError(f"ring degree {degree} is not allowed (use 8192, 16384 or 32768)")
    if bits > MAX_MODULUS_BITS[degree]:
        raise CryptoError(
            f"coefficient modulus of {bits} bits at N={degree} is below 128-bit security"
        )
    if ctx.has_galois_keys() or ctx.has_relin_keys():
        # No unseen plan rotates or multiplies ciphertexts: such keys would only
        # cost every node tens of megabytes per registration.
        raise CryptoError(
            "refused a context with Galois or relinearisation keys; no plan needs them: "
            "send the public key only"
        )
    return ctx


def encrypt(ctx: ts.Context, values: np.ndarray, scale: float | None = None) -> ts.CKKSVector:
    """Encrypt a full slot vector (callers pad with zeros so no slot is garbage)."""
    listed = np.asarray(values, dtype=np.float64).tolist()
    return ts.ckks_vector(ctx, listed) if scale is None else ts.ckks_vector(ctx, listed, scale)


def weight_scale(ctx: ts.Context, features: int) -> float | None:
    """The scale a model's weight ciphertexts are encrypted at; None: no scale lets
    holders smudge, and they refuse to score with this key.

    A key whose modulus has room for holders to smudge their partial scores
    (unseen.engine.crypto.flooding; the default N = 16384 key does) gets
    weights at the scale that smudging needs; the former N = 8192 key does not.
    """
    from unseen.engine.crypto.flooding import smudging_weight_scale

    data = ctx.seal_context().data.first_context_data().parms()
    moduli = [m.value() for m in data.coeff_modulus()]
    return smudging_weight_scale(data.poly_modulus_degree(), features, moduli)


def slot_count(ctx: ts.Context) -> int:
    """How many slots a ciphertext under ``ctx`` holds (half the ring degree)."""
    return int(ctx.seal_context().data.key_context_data().parms().poly_modulus_degree()) // 2


def rerandomize(ctx: ts.Context, vector: ts.CKKSVector) -> ts.CKKSVector:
    """Add a fresh encryption of zero so the result is unlinkable to its inputs."""
    return vector + ts.ckks_vector(ctx, [0.0] * vector.size())


def load_ciphertext(
    ctx: ts.Context, data: bytes, slots: int, depth: int | None = None
) -> ts.CKKSVector:
    """Deserialise a ciphertext and check it belongs to ``ctx``'s parameters.

    ``depth`` is the number of rescales the ciphertext should have been
    through (0: fresh, 1: after one ciphertext-plaintext product); None skips
    the level check.
    """
    try:
        vector = ts.ckks_vector_from(ctx, data)
    except Exception as exc:
        raise CryptoError("ciphertext does not parse under the registered key") from exc
    check_ciphertext(ctx, vector, slots, depth)
    return vector


def check_ciphertext(
    ctx: ts.Context, vector: ts.CKKSVector, slots: int, depth: int | None = None
) -> None:
    """Refuse ciphertexts of the wrong shape, size claim, parameters or level."""
    if vector.size() != slots:
        raise CryptoError(f"ciphertext claims {vector.size()} slots; expected {slots}")
    parts = vector.ciphertext()
    if len(parts) != 1 or parts[0].size() != 2:
        raise CryptoError("ciphertext is not a single, relinearised CKKS ciphertext")
    data_ctx = ctx.seal_context().data
    level = data_ctx.get_context_data(parts[0].parms_id())
    if level is None:
        raise CryptoError("ciphertext was made under other encryption parameters")
    if depth is not None:
        expected = data_ctx.first_context_data().chain_index() - depth
        if level.chain_index() != expected:
            raise CryptoError(
                f"ciphertext is at modulus level {level.chain_index()}; expected {expected}"
            )


def add_all(vectors: Sequence[ts.CKKSVector]) -> ts.CKKSVector:
    """Homomorphic sum of ciphertexts (the coordinator's only arithmetic)."""
    # Not vectors[0].copy(): TenSEAL's copy costs ~40 ms (it round-trips the
    # context); the first addition allocates a fresh result instead.
    if len(vectors) == 1:
        return vectors[0]
    total = vectors[0] + vectors[1]
    for vector in vectors[2:]:
        total.add_(vector)
    return total


def decrypt(secret: ts.Context, data: bytes) -> np.ndarray:
    """Decrypt one serialised ciphertext with the analyst's secret context."""
    vector = ts.ckks_vector_from(secret, data)
    return np.asarray(vector.decrypt(), dtype=np.float64)
