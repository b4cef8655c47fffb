"""A holder's partial-score products through SEAL's evaluator (``tenseal.sealapi``).

TenSEAL's ``CKKSVector.mul`` encodes the plaintext, multiplies and rescales
every product; a partial score only needs one rescale. Here each feature
column is encoded once at the weight's level, multiplied without rescaling,
the products are added, and the sum is rescaled once — then re-randomised
with a fresh public-key encryption of zero (so the ciphertext is unlinkable
to a recomputation from a guess) and flooded (so its *noise* says nothing
about the features beyond the score: unseen.engine.crypto.flooding). The
weights arrive at the scale ``ckks.weight_scale`` picks (about 2^103 at the
default N = 16384 key) and each column is encoded at the scale
``plan_flood`` picks (about 2^108), so the flood reaches s >= 30 bits and
still decodes within 1e-6. Weights whose flood would fall short (an N = 8192
key, or weights at another scale) are refused: :func:`require_smudging`.
Encoded columns are kept in an :class:`EncodedCache`.

The result is returned in TenSEAL's vector serialisation, so the coordinator
and the analyst read it as any other ciphertext.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import tempfile
from collections.abc import Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from unseen.engine.crypto.encodings import EncodedCache
from unseen.engine.crypto.flooding import (
    HOLDER_TOLERANCE,
    SCORE_TOLERANCE,
    SECURITY_BITS,
    FloodBudget,
    Flooder,
    FloodPlan,
    plan_flood,
)
from unseen.engine.errors import CryptoError, WeakKeyError

__all__ = ["SCORE_TOLERANCE", "PartialScorer", "flood_plan", "require_smudging"]


def flood_plan(seal: sealapi.SEALContext, weights: Sequence[sealapi.Ciphertext]) -> FloodPlan:
    """The flood a holder adds to partials computed with ``weights`` (pure arithmetic)."""
    level = seal.get_context_data(weights[0].parms_id())
    return plan_flood(
        level.parms().poly_modulus_degree(),
        len(weights),
        [m.value() for m in level.parms().coeff_modulus()],
        float(weights[0].scale),
        HOLDER_TOLERANCE,
    )


def require_smudging(ctx: ts.Context, weights: Sequence[ts.CKKSVector]) -> FloodPlan:
    """The flood plan for these weights; refuses a plan below ``SECURITY_BITS``.

    Why refuse rather than flood as wide as the precision allows: a weak flood
    (N = 8192 keys reach s of about -13) is a cost to an attacker, not a
    guarantee, and a holder that answered anyway would let an analyst keep an
    old key and read features from the noise with enough repetitions. The
    reason says what to do: make a new key (``unseen keys new``), whose weights
    the client or issuer encrypts at ``ckks.weight_scale``.
    """
    if not weights:
        raise CryptoError("a model needs at least one weight ciphertext")
    seal = ctx.seal_context().data
    ciphers = [w.ciphertext()[0] for w in weights]
    if len({round(math.log2(c.scale), 6) for c in ciphers}) != 1:
        raise WeakKeyError("a model's weight ciphertexts must all have the same scale")
    plan = flood_plan(seal, ciphers)
    if not plan.smudging or plan.budget.security < SECURITY_BITS:
        degree = plan.budget.degree
        raise WeakKeyError(
            f"this key (N={degree}) or its weights' scale (2^{math.log2(ciphers[0].scale):.0f}) "
            f"leaves no room to flood partial scores at {SECURITY_BITS} bits of statistical "
            "security; holders do not score with it: create a new key with 'unseen keys new' "
            "(its key id changes: vouchers must be issued again)"
        )
    return plan


class PartialScorer:
    """One model's weights, ready for block after block of products."""

    def __init__(
        self,
        ctx: ts.Context,
        weights: Sequence[ts.CKKSVector],
        cache: EncodedCache | None = None,
        namespace: bytes = b"",
    ):
        seal = ctx.seal_context().data
        self._namespace = namespace
        self._seal = seal
        self._encoder = sealapi.CKKSEncoder(seal)
        self._evaluator = sealapi.Evaluator(seal)
        self._encryptor = sealapi.Encryptor(seal, ctx.public_key().data)
        self._weights = [w.ciphertext()[0] for w in weights]
        level = seal.get_context_data(self._weights[0].parms_id())
        self._parms = self._weights[0].parms_id()
        self._next = level.next_context_data().parms_id()
        self._cache = cache if cache is not None else EncodedCache(0)
        self._flooder = Flooder(seal, self._evaluator)
        # x is encoded at the scale plan_flood picks for smudging (about 2^108 at
        # the default key); weights whose flood would fall short of SECURITY_BITS
        # are refused here (unseen.engine.crypto.flooding).
        self.plan = require_smudging(ctx, weights)
        self._plain_scale = self.plan.plain_scale
        self._scale = self.plan.out_scale

    @property
    def flood(self) -> FloodBudget:
        """The flood this scorer adds to every partial score."""
        return self.plan.budget

    def partial(self, columns: np.ndarray, slots: int) -> bytes:
        """``sum_j weight_j * columns[:, j]`` (columns zero-padded to ``slots`` rows),
        rescaled once, re-randomised and flooded; serialised as a TenSEAL vector."""
        total = self.products(columns)
        # Re-randomise: a fresh encryption of zero, so the answer is unlinkable to
        # the weights and the (deterministic) products.
        self._evaluator.add_inplace(total, self._zero(total.parms_id()))
        # Flood: fresh uniform noise in every coefficient, so the error the analyst
        # can compute from its weights' noise is drowned (docs/threat-model.md).
        self._flooder.flood(total, self.flood.bits)
        return _tenseal_bytes(total, slots, self._scale)

    def unmasked(self, columns: np.ndarray, slots: int) -> bytes:
        """The products alone, as anyone holding the weight ciphertexts can recompute
        them for a guess of ``columns``: what re-randomisation hides (tests)."""
        return _tenseal_bytes(self.products(columns), slots, self._scale)

    def products(self, columns: np.ndarray) -> sealapi.Ciphertext:
        """The products, summed and rescaled once: the deterministic part (bench floor)."""
        total = None
        for weight, column in zip(self._weights, columns.T, strict=True):
            if not column.any():
                continue  # SEAL refuses a product with an all-zero plaintext
            plain = self._cache.get(
                column,
                self._parms,
                self._plain_scale,
                functools.partial(self._encode, column),
                self._namespace,
            )
            term = sealapi.Ciphertext(self._seal)
            self._evaluator.multiply_plain(weight, plain, term)
            if total is None:
                total = term
            else:
                self._evaluator.add_inplace(total, term)
        if total is None:
            # Every feature is zero here: an encryption of zero at the same level.
            return self._zero(self._next)
        self._evaluator.rescale_to_next_inplace(total)
        # Exact: SEAL divides the scale by the prime in floating point (2^50 then is
        # 2^50 up to the float), and every holder must land on the same value.
        total.scale = self._scale
        return total

    def _encode(self, column: np.ndarray) -> sealapi.Plaintext:
        plain = sealapi.Plaintext()
        self._encoder.encode(column.tolist(), self._parms, self._plain_scale, plain)
        return plain

    def _zero(self, parms: object) -> sealapi.Ciphertext:
        plain = sealapi.Plaintext()
        self._encoder.encode(0.0, parms, self._scale, plain)
        cipher = sealapi.Ciphertext(self._seal)
        self._encryptor.encrypt(plain, cipher)
        return cipher


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tenseal_bytes(cipher: sealapi.Ciphertext, size: int, scale: float) -> bytes:
    """TenSEAL's CKKSVector message: packed size (field 1), the SEAL ciphertext (2),
    the scale (3) — what ``ts.ckks_vector_from`` reads."""
    fd, path = tempfile.mkstemp(prefix="unseen-partial-")
    os.close(fd)
    try:
        cipher.save(path)  # the sealapi binding saves to a path only
        with open(path, "rb") as handle:
            raw = handle.read()
    finally:
        os.unlink(path)
    shape = _varint(size)
    return b"".join(
        (
            b"\x0a" + _varint(len(shape)) + shape,
            b"\x12" + _varint(len(raw)) + raw,
            b"\x19" + struct.pack("<d", scale),
        )
    )
