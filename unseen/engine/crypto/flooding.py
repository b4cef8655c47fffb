"""Noise flooding of a holder's partial score, in the coefficient domain.

Why. The analyst holds the secret key and knows the weight ciphertexts it
scores with, so it knows their noise ``e_w`` exactly. A partial score
decrypts (before decoding) to ``Δ·score + E(x) + r``, where the error
``E(x)`` — the weights' noise times the feature plaintexts, the features'
encoding rounding times the weights, the rescale rounding — is a
deterministic function of the holder's features ``x`` beyond the score, and
``r`` is the re-randomisation's fresh noise (of the same size as ``E``).
Regressing the decrypted error on candidate features reads them back.
Flooding adds, to every one of the ``N`` coefficients of every RNS limb, a
fresh integer drawn uniformly from ``[-2^b, 2^b)``, so what the analyst
decrypts is ``Δ·score + E(x) + U``.

How. The noise polynomial is sampled from a CSPRNG (ChaCha20 from
``cryptography``, keyed from ``os.urandom``; never doubles, never a CKKS
encoding — the low bits of an encoded double would be zero), reduced into
each limb ``q_i``, written as a coefficient-form ciphertext ``(U, 0)``,
moved to NTT form by SEAL's evaluator and added. All ``N`` coefficients are
covered, so both the real and the imaginary part of every slot are.

How much. Smudging (statistical distance of shifted uniforms): if every
coefficient of ``E(x)`` is at most ``B`` in absolute value, the decryption
of ``E(x) + U`` is within ``N·B / 2^(b+1)`` of a distribution that does not
depend on ``x``; the statistical security is ``s = b + 1 - log2(N·B)``.
:func:`computed_noise_bound` derives ``B`` from the parameters (see its
docstring); :class:`FloodBudget` chooses ``b``. Decoding divides by the
scale ``Δ``: a slot's real part then carries a flood error of standard
deviation ``2^b · sqrt(N/6) / Δ``. Both numbers are reported, and
docs/threat-model.md states what they are at the project's parameters.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import tenseal.sealapi as sealapi
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

__all__ = [
    "FRESH_SIGMA",
    "HOLDER_TOLERANCE",
    "SCORE_BITS",
    "SCORE_TOLERANCE",
    "SECURITY_BITS",
    "WEIGHT_BOUND",
    "FloodBudget",
    "FloodPlan",
    "Flooder",
    "computed_noise_bound",
    "noise_residues",
    "plan_flood",
    "smudging_weight_scale",
    "uniform_noise",
]

# SEAL's error distribution: a centred discrete Gaussian of this deviation.
FRESH_SIGMA = 3.2
# The statistical security a smudging flood must reach (issue 11: s >= 30).
SECURITY_BITS = 30
# What the smudging plan assumes of the model: |w·2^e| at most this (the issuer
# approves the weights), and |score| of one partial below 2^SCORE_BITS.
WEIGHT_BOUND = 2.0**20
SCORE_BITS = 25
# The documented precision of a score (README), and one holder's share of it:
# floods from up to 8 holders add up in one score and must still fit.
SCORE_TOLERANCE = 1e-6
HOLDER_TOLERANCE = SCORE_TOLERANCE / math.sqrt(8)
# The flood's width is chosen so that the decoded flood error's standard
# deviation is at most ``tolerance / _SIGMAS``: the largest of 4096 slots then
# stays under the tolerance with overwhelming probability (P(|z| > 8) < 1.3e-15).
_SIGMAS = 8.0


def fresh_noise_norm(degree: int) -> float:
    """A high-probability bound on ``||e||_2`` of a fresh public-key encryption.

    SEAL's ``encrypt`` gives ``e = -u·e_pk + e0 + e1·s`` with ternary ``u, s``
    (variance 2/3 per coefficient) and Gaussian ``e_pk, e0, e1``: each
    coefficient has variance ``σ²(4N/3 + 1)``, so ``||e||_2² ≈ σ²(4N/3 + 1)N``.
    The norm is a sum of ``N`` terms and concentrates; twice its mean is far
    in the tail (the factor is checked against real ciphertexts in the tests).
    """
    return 2.0 * FRESH_SIGMA * math.sqrt((4.0 * degree / 3.0 + 1.0) * degree)


def computed_noise_bound(
    degree: int,
    features: int,
    feature_bound: float,
    weight_bound: float,
    plain_scale: float,
    dropped_prime: float,
    weight_scale: float,
) -> float:
    """``B``: a bound on every coefficient of the error the analyst can compute.

    The holder computes ``Σ_j (m_wj + e_wj)·(m_xj)/q_L`` plus a rescale
    rounding, where ``m_xj = Δx·x_j + ε_j`` is the encoding of feature ``j``
    (``|ε| ≤ 1/2`` per coefficient, ``||m_xj||_2 ≤ Δx·X`` by Parseval for
    slots bounded by ``X``), ``m_wj`` the weight's encoding (a constant
    polynomial: the weight is the same in every slot, ``|m_wj| ≤ Δw·W``)
    and ``e_wj`` its fresh noise. Per coefficient, by Cauchy-Schwarz:

    * weights' noise: ``Σ_j ||e_wj||_2·||m_xj||_2 / q_L ≤ F·β·Δx·X / q_L``;
    * weights' encoding rounding: ``F·(sqrt(N)/2)·Δx·X / q_L``;
    * features' encoding rounding: ``Σ_j |m_wj|·|ε_j| / q_L ≤ F·Δw·W / (2·q_L)``;
    * the rescale's rounding: ``(1 + ||s||_1)/2 ≤ (1 + N)/2``.

    Args:
        degree: the ring degree ``N``.
        features: the number of products ``F``.
        feature_bound: ``X``, the largest ``|x·2^-e|`` the holder encodes.
        weight_bound: ``W``, the largest ``|w·2^e|`` in a weight ciphertext.
        plain_scale: ``Δx``, the scale the features are encoded at.
        dropped_prime: ``q_L``, what the one rescale divides by (1.0: none).
        weight_scale: ``Δw``, the weights' scale.

    Returns:
        ``B`` in coefficient units.
    """
    beta = fresh_noise_norm(degree)
    ratio = plain_scale / dropped_prime
    weights_noise = features * beta * feature_bound * ratio
    weights_rounding = features * math.sqrt(degree) / 2.0 * feature_bound * ratio
    features_rounding = features * weight_scale * weight_bound / (2.0 * dropped_prime)
    rescale = (1.0 + degree) / 2.0 if dropped_prime > 1.0 else 0.0
    return weights_noise + weights_rounding + features_rounding + rescale


@dataclass(frozen=True)
class FloodBudget:
    """The flood's width ``2^bits`` and what it buys at one set of parameters.

    Attributes:
        degree: ring degree ``N``.
        bits: the flood is uniform on ``[-2^bits, 2^bits)`` in every coefficient.
        bound: ``B``, the bound on the computed error being hidden.
        security: the statistical security ``s = bits + 1 - log2(N·B)`` (may be
            negative: then the flood raises the attack's cost without a
            statistical guarantee).
        error: standard deviation of the flood in a decoded slot's real part.
    """

    degree: int
    bits: int
    bound: float
    security: float
    error: float

    @classmethod
    def for_precision(
        cls, degree: int, scale: float, tolerance: float, bound: float
    ) -> FloodBudget:
        """The widest flood whose decoded error keeps scores within ``tolerance``."""
        spread = math.sqrt(degree / 6.0)
        bits = math.floor(math.log2(scale * tolerance / (_SIGMAS * spread)))
        return cls.of(degree, bits, scale, bound)

    @classmethod
    def for_security(cls, degree: int, scale: float, security: int, bound: float) -> FloodBudget:
        """The narrowest flood with statistical security at least ``security`` bits."""
        bits = math.ceil(security - 1 + math.log2(degree * bound))
        return cls.of(degree, bits, scale, bound)

    @classmethod
    def of(cls, degree: int, bits: int, scale: float, bound: float) -> FloodBudget:
        if bits < 0:
            raise ValueError("a flood narrower than one unit is no flood")
        return cls(
            degree=degree,
            bits=bits,
            bound=bound,
            security=bits + 1 - math.log2(degree * bound),
            error=2.0**bits * math.sqrt(degree / 6.0) / scale,
        )


@dataclass(frozen=True)
class FloodPlan:
    """How a scorer encodes, rescales and floods, chosen from the weights' parameters.

    Attributes:
        plain_scale: the scale the features are encoded at.
        out_scale: the partial score's scale after the one rescale.
        budget: the flood's width and what it buys.
        smudging: True when ``budget.security >= SECURITY_BITS`` within the
            precision (then the partial's scale is ``Δw·Δx/q_L``, not ``Δw``).
    """

    plain_scale: float
    out_scale: float
    budget: FloodBudget
    smudging: bool


def plan_flood(
    degree: int, features: int, moduli: list[int], weight_scale: float, tolerance: float
) -> FloodPlan:
    """The strongest flood the parameters allow with scores within ``tolerance``.

    Smudging first: features encoded at the largest power of two that leaves a
    partial of ``|score| < 2^SCORE_BITS`` room below ``q/2`` after the one
    rescale, the flood sized for ``SECURITY_BITS``; taken if its decoded error
    (times 8 standard deviations) fits the tolerance and the flood fits the
    modulus. Otherwise (the project's N = 8192 key at 2^50: the weights' own
    noise is then too large a share of the score) the features are encoded at
    the dropped prime, the partial keeps the weights' scale, and the flood is
    the widest the tolerance allows — a cost to an attacker, with the
    statistical security it reaches (negative there) reported, not claimed.
    """
    last = float(moduli[-1])
    total_bits = sum(math.log2(m) for m in moduli)
    after = total_bits - math.log2(last)
    out_bits = math.floor(after) - 2 - SCORE_BITS
    plain = 2.0 ** math.floor(out_bits + math.log2(last) - math.log2(weight_scale))
    if plain >= 1.0:
        out = weight_scale * plain / last
        bound = computed_noise_bound(degree, features, 1.0, WEIGHT_BOUND, plain, last, weight_scale)
        budget = FloodBudget.for_security(degree, out, SECURITY_BITS, bound)
        if (
            budget.error * _SIGMAS <= tolerance
            and budget.bits + 2 < out_bits + SCORE_BITS
            and math.log2(weight_scale * WEIGHT_BOUND) < total_bits - 1
            and math.log2(plain) < total_bits - 1
        ):
            return FloodPlan(plain, out, budget, True)
    bound = computed_noise_bound(degree, features, 1.0, 1.0, last, last, weight_scale)
    budget = FloodBudget.for_precision(degree, weight_scale, tolerance, bound)
    return FloodPlan(last, weight_scale, budget, False)


def smudging_weight_scale(degree: int, features: int, moduli: list[int]) -> float | None:
    """The scale to encrypt weights at so holders can smudge, or None if no scale can.

    Tries every power of two the modulus could hold and keeps the one whose
    smudging flood costs the least precision. None at the project's N = 8192
    key: weights are then encrypted at the context's own scale.
    """
    total_bits = sum(math.log2(m) for m in moduli)
    best: tuple[float, float] | None = None
    for bits in range(40, math.floor(total_bits)):
        plan = plan_flood(degree, features, moduli, 2.0**bits, HOLDER_TOLERANCE)
        if plan.smudging and (best is None or plan.budget.error < best[0]):
            best = (plan.budget.error, 2.0**bits)
    return None if best is None else best[1]


def _keystream_words(count: int, bits: int, key: bytes | None) -> np.ndarray:
    """``count`` rows of ``ceil((bits + 1) / 64)`` little-endian ChaCha20 words."""
    key = os.urandom(32) if key is None else key
    words = (bits + 1 + 63) // 64
    stream = Cipher(algorithms.ChaCha20(key, b"\x00" * 16), mode=None).encryptor()
    raw = stream.update(b"\x00" * (8 * words * count))
    return np.frombuffer(raw, dtype="<u8").reshape(count, words)


def uniform_noise(count: int, bits: int, key: bytes | None = None) -> np.ndarray:
    """``count`` integers uniform on ``[-2^bits, 2^bits)`` from a ChaCha20 keystream.

    A power-of-two width needs no rejection: each draw is ``bits + 1``
    keystream bits exactly. ``key`` (32 bytes) is for seeded tests; by
    default a fresh key comes from ``os.urandom``. Returns ``int64`` below
    63 bits, Python integers (``object``) beyond.
    """
    draws = _keystream_words(count, bits, key)
    words = draws.shape[1]
    if bits < _NATIVE_BITS:
        mask = np.uint64((1 << (bits + 1)) - 1)
        return (draws[:, 0] & mask).astype(np.int64) - np.int64(1 << bits)
    top = bits + 1 - 64 * (words - 1)
    # Wide draws: Python integers, assembled word by word in numpy's object loops.
    value = (draws[:, -1] & np.uint64((1 << top) - 1)).astype(object)
    for word in range(words - 2, -1, -1):
        value = value * (1 << 64) + draws[:, word].astype(object)
    out: np.ndarray = value - (1 << bits)
    return out


# Draws of fewer bits fit an int64 with room for the sign.
_NATIVE_BITS = 62


def _residues(noise: np.ndarray, moduli: list[int]) -> np.ndarray:
    """The noise polynomial in RNS form: one row of residues per limb."""
    if noise.dtype == np.int64:
        return np.stack([np.mod(noise, np.int64(q)).astype(np.uint64) for q in moduli])
    return np.stack([(noise % q).astype(np.uint64) for q in moduli])


def noise_residues(
    count: int, bits: int, moduli: list[int], key: bytes | None = None
) -> np.ndarray:
    """The residues of :func:`uniform_noise` (same key, same draws) modulo each ``q``.

    Why not ``_residues(uniform_noise(...))``: past 62 bits that goes through
    Python integers, about 20 ms per 16384 coefficients and four limbs. Here
    the draw is split into 32-bit words ``w_k`` (``U = Σ w_k·2^(32k) - 2^bits``)
    and each limb is ``Σ w_k·(2^(32k) mod q) - 2^bits mod q``, reduced with a
    floating-point quotient estimate: ``w·c < 2^93``, the estimate is off by at
    most one, and the remainder, computed modulo 2^64, is exact because it lies
    in ``[-q, 2q)`` with ``q < 2^61``. Integers all the way; the doubles only
    estimate quotients.
    """
    if bits < _NATIVE_BITS:
        return _residues(uniform_noise(count, bits, key), moduli)
    draws = _keystream_words(count, bits, key)
    top = bits + 1 - 64 * (draws.shape[1] - 1)
    draws = draws.copy()
    draws[:, -1] &= np.uint64((1 << top) - 1)
    halves = []
    for word in range(draws.shape[1]):
        halves.append(draws[:, word] & np.uint64(0xFFFFFFFF))
        halves.append(draws[:, word] >> np.uint64(32))
    out = np.empty((len(moduli), count), dtype=np.uint64)
    for row, q in enumerate(moduli):
        if q >= 1 << 61:
            raise ValueError("noise_residues needs primes below 2^61")
        acc = np.zeros(count, dtype=np.uint64)
        for k, half in enumerate(halves):
            acc = _add_mod(acc, _mul_mod(half, pow(2, 32 * k, q), q), q)
        out[row] = _add_mod(acc, np.full(count, (-(1 << bits)) % q, dtype=np.uint64), q)
    return out


def _mul_mod(x: np.ndarray, c: int, q: int) -> np.ndarray:
    """``x·c mod q`` for ``x < 2^32``, ``c < q < 2^61`` (uint64 arrays, wrapping)."""
    quotient = np.floor(x.astype(np.float64) * (c / q)).astype(np.uint64)
    rem = (x * np.uint64(c) - quotient * np.uint64(q)).view(np.int64)
    rem = np.where(rem < 0, rem + np.int64(q), rem)
    rem = np.where(rem >= np.int64(q), rem - np.int64(q), rem)
    return rem.astype(np.uint64)


def _add_mod(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    total = a + b  # both below q < 2^61: no wrap
    return np.where(total >= np.uint64(q), total - np.uint64(q), total)


# SEAL's serialisation header: magic 0xA15E, header size 16, version 4.x, no
# compression, then the total size (8 bytes, filled in).
_MAGIC = b"\x5e\xa1\x10"
_NONE = 0


def _seal_ciphertext(
    parms_id: list[int], residues: np.ndarray, degree: int, scale: float, version: bytes
) -> bytes:
    """A SEAL ``Ciphertext`` of size 2 in coefficient form: ``(residues, 1)``.

    ``c1 = 1`` (the constant polynomial, in every limb) because SEAL refuses to
    transform a "transparent" ciphertext (``c1 = 0``); :class:`Flooder`
    subtracts ``(0, 1)`` afterwards, so what is added is exactly ``(U, 0)``.

    The sealapi bindings expose no coefficient setter, so the ciphertext is
    built in SEAL's own uncompressed serialisation (Ciphertext::save_members:
    parms_id, is_ntt_form, size, N, limbs, scale, correction factor, then
    the DynArray of ``2·limbs·N`` words, itself with a header) and loaded.
    """
    limbs = residues.shape[0]
    one = np.zeros((limbs, degree), dtype=np.uint64)
    one[:, 0] = 1
    data = np.concatenate([residues.reshape(-1), one.reshape(-1)])
    array = np.uint64(data.size).tobytes() + data.astype("<u8").tobytes()
    array = _header(version, 16 + len(array)) + array
    members = b"".join(
        (
            np.asarray(parms_id, dtype="<u8").tobytes(),
            b"\x00",  # not NTT form
            np.asarray([2, degree, limbs], dtype="<u8").tobytes(),
            np.float64(scale).tobytes(),
            np.uint64(1).tobytes(),  # correction factor (BGV only; 1 elsewhere)
            array,
        )
    )
    return _header(version, 16 + len(members)) + members


def _header(version: bytes, size: int) -> bytes:
    return _MAGIC + version + bytes([_NONE, 0, 0]) + np.uint64(size).tobytes()


class Flooder:
    """Adds flood noise to ciphertexts of one SEAL context."""

    def __init__(self, seal: sealapi.SEALContext, evaluator: sealapi.Evaluator):
        self._seal = seal
        self._evaluator = evaluator
        self._version = _saved_version(sealapi.Ciphertext(seal))
        # Per level: the NTT form of (0, 1), subtracted after each flood.
        self._ones: dict[tuple[int, ...], sealapi.Ciphertext] = {}

    def flood(self, cipher: sealapi.Ciphertext, bits: int, key: bytes | None = None) -> None:
        """Add ``U`` uniform on ``[-2^bits, 2^bits)`` to every coefficient, in place."""
        level = self._seal.get_context_data(cipher.parms_id())
        moduli = [m.value() for m in level.parms().coeff_modulus()]
        degree = cipher.poly_modulus_degree()
        residues = noise_residues(degree, bits, moduli, key)
        noise = self._ntt(cipher.parms_id(), residues, degree, cipher.scale)
        self._evaluator.add_inplace(cipher, noise)
        self._evaluator.sub_inplace(cipher, self._one(cipher, moduli))

    def _ntt(
        self, parms_id: list[int], residues: np.ndarray, degree: int, scale: float
    ) -> sealapi.Ciphertext:
        noise = _load(
            self._seal, _seal_ciphertext(parms_id, residues, degree, scale, self._version)
        )
        self._evaluator.transform_to_ntt_inplace(noise)
        return noise

    def _one(self, cipher: sealapi.Ciphertext, moduli: list[int]) -> sealapi.Ciphertext:
        level = tuple(cipher.parms_id())
        one = self._ones.get(level)
        if one is None or one.scale != cipher.scale:
            degree = cipher.poly_modulus_degree()
            zero = np.zeros((len(moduli), degree), dtype=np.uint64)
            one = self._ntt(cipher.parms_id(), zero, degree, cipher.scale)
            self._ones[level] = one
        return one


# A memory-backed directory for the noise's round trip through a file, when there is
# one; files in it come from mkstemp (unpredictable names, mode 0600).
_SHM = "/dev/shm"  # noqa: S108
_SCRATCH = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


def _saved_version(cipher: sealapi.Ciphertext) -> bytes:
    """SEAL's serialisation version bytes, read from a ciphertext it saved."""
    fd, path = tempfile.mkstemp(prefix="unseen-flood-", dir=_SCRATCH)
    os.close(fd)
    try:
        cipher.save(path)
        with open(path, "rb") as handle:
            head = handle.read(16)
    finally:
        os.unlink(path)
    return head[3:5]


def _load(seal: sealapi.SEALContext, data: bytes) -> sealapi.Ciphertext:
    """Load SEAL bytes (the binding reads from a path only).

    The bytes hold the flood's noise, which must stay the holder's: the file is
    private (``mkstemp``: mode 0600), in memory where Linux offers ``/dev/shm``,
    and removed at once.
    """
    fd, path = tempfile.mkstemp(prefix="unseen-flood-", dir=_SCRATCH)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    try:
        cipher = sealapi.Ciphertext(seal)
        cipher.load(seal, path)
    finally:
        os.unlink(path)
    return cipher
