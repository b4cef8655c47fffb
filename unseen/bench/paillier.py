"""The same scoring protocol with Paillier (python-paillier ``phe``, 2048-bit keys).

Paillier has no packing, so every step is per entity. The analyst encrypts
each weight once; each holder computes, per entity, ``prod_j Enc(w_j)^(x_j)``
over its features (scalar products and additions of ``phe``'s
EncryptedNumber, all at one fixed-point precision so no exponent alignment
is needed) and re-randomises the result (``obfuscate``, as the CKKS holders
do); the coordinator adds the holders' ciphertexts; the analyst decrypts.
Scoring the full entity counts would take hours, so a sample of entities is
timed per role and the totals are extrapolated linearly (every step is per
entity). The estimated wall time assumes the work spreads perfectly over the
machine's cores — a lower bound, which makes the speed-up claimed over
Paillier conservative.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["available", "extrapolate", "measure"]

# Fixed point, one exponent per kind, so sums never need exponent alignment. Weights
# carry more digits (their mantissa lives inside the ciphertext at no cost); the
# features' precision sets the size of the scalar each product raises to.
_WEIGHT_PRECISION = 1e-12
_FEATURE_PRECISION = 1e-6
KEY_BITS = 2048


def available() -> tuple[bool, bool]:
    """Whether ``phe`` is installed, and whether it uses gmpy2."""
    try:
        from phe import util
    except ImportError:
        return False, False
    return True, bool(getattr(util, "HAVE_GMP", False))


def measure(sample: np.ndarray, weights: np.ndarray, holders: Sequence[int]) -> dict[str, Any]:
    """Time the protocol on ``sample`` (entities x features); ``holders`` = features per holder.

    Returns per-entity seconds of each role, the weights' encryption time, the
    ciphertext size and the largest error against numpy on the sample.
    """
    from phe import EncodedNumber, EncryptedNumber, paillier

    clock = time.perf_counter
    began = clock()
    public, private = paillier.generate_paillier_keypair(n_length=KEY_BITS)
    keygen = clock() - began
    began = clock()
    encrypted = [public.encrypt(float(w), precision=_WEIGHT_PRECISION) for w in weights]
    encrypt_weights = clock() - began
    entities = sample.shape[0]
    holder_s = [0.0] * len(holders)
    coordinator_s = analyst_s = 0.0
    size = 0
    error = 0.0
    for row in sample:
        wire: list[tuple[int, int]] = []
        start = 0
        for h, count in enumerate(holders):
            began = clock()
            total = None
            for j in range(start, start + count):
                x = EncodedNumber.encode(public, float(row[j]), precision=_FEATURE_PRECISION)
                term = encrypted[j] * x
                total = term if total is None else total + term
            assert total is not None
            total.obfuscate()
            wire.append((total.ciphertext(), total.exponent))
            holder_s[h] += clock() - began
            start += count
        size = max(size, (wire[0][0].bit_length() + 7) // 8)
        began = clock()
        parts = [EncryptedNumber(public, c, e) for c, e in wire]
        combined = parts[0]
        for part in parts[1:]:
            combined = combined + part
        # Already random: a sum of re-randomised ciphertexts needs no new obfuscation.
        message = (combined.ciphertext(be_secure=False), combined.exponent)
        coordinator_s += clock() - began
        began = clock()
        value = private.decrypt(EncryptedNumber(public, *message))
        analyst_s += clock() - began
        error = max(error, abs(value - float(row @ weights)))
    per_entity = {
        "holders": [s / entities for s in holder_s],
        "coordinator": coordinator_s / entities,
        "analyst": analyst_s / entities,
    }
    return {
        "key_bits": KEY_BITS,
        "sample_entities": entities,
        "features_per_holder": list(holders),
        "keygen_s": keygen,
        "encrypt_weights_s": encrypt_weights,
        "per_entity_s": per_entity,
        "ciphertext_bytes": size,
        "max_abs_error_on_sample": error,
    }


def extrapolate(
    measured: dict[str, Any], entities: int, cores: int | None = None
) -> dict[str, Any]:
    """Total CPU seconds and a lower-bound wall estimate for ``entities`` entities."""
    cores = cores or os.cpu_count() or 1
    per = measured["per_entity_s"]
    per_entity = sum(per["holders"]) + per["coordinator"] + per["analyst"]
    cpu = entities * per_entity  # the weights are encrypted once, at registration
    return {
        "entities": entities,
        "cpu_s": cpu,
        "wall_s_estimate": cpu / cores,
        "bytes_per_entity_per_holder": measured["ciphertext_bytes"],
        "method": (
            f"timed {measured['sample_entities']} entities, extrapolated linearly; "
            f"wall = CPU / {cores} cores (perfect parallelism, a lower bound)"
        ),
    }
