"""Joint training bench (issue 15.6): per-iteration time and bytes of vertical LR.

``python -m unseen.bench.training --entities 100000 --features 30 --holders 3``
runs the rotation-free protocol in one process (real TenSEAL; the coordinator's
key-less sum included, no network) beside the same iteration in plaintext numpy,
and prints one JSON object. CI runs a tiny size (tests/integration/test_bench.py
does not; the smoke test is tests/integration/test_vertical_lr.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.training.joint_training import LocalRelay, run_training
from unseen.engine.training.vertical_lr import (
    BankTrainer,
    HolderTrainer,
    TrainSpec,
    plaintext_training,
)

# FATE 2.0's published hetero-LR figure: 2 min 16 s per epoch, 100k rows x 330
# features, Paillier, 16 cores per party.
FATE_SECONDS_PER_EPOCH = 136.0


# Paillier ciphertexts are integers mod n^2: 512 bytes at 2048-bit keys.
PAILLIER_KEY_BITS = 2048
# Fixed point, one exponent per kind, so sums never need exponent alignment
# (as unseen.bench.paillier does for scoring): residual pieces and features.
_RESIDUAL_PRECISION = 1e-9
_FEATURE_PRECISION = 1e-6


def _widths(features: int, holders: int) -> list[int]:
    return [features // holders + (1 if i < features % holders else 0) for i in range(holders)]


def measure(
    entities: int,
    features: int,
    holders: int,
    iterations: int,
    negative_weight: float = TrainSpec.negative_weight,
) -> dict[str, float]:
    """The CKKS protocol (all parties in this process, one after another) and plaintext numpy.

    Seconds are wall time per iteration (``run_training``'s own clock) and this
    process's CPU time per iteration; on a shared machine the CPU figure is the
    steadier one. One full-batch iteration over every entity is one epoch.
    ``negative_weight`` 1 measures the unweighted round (one CKKS level less).
    """
    rng = np.random.default_rng(0)
    blocks = [rng.normal(size=(entities, w)) for w in _widths(features, holders)]
    labels = (rng.random(entities) < 0.2).astype(float)
    key = AnalystKey.generate()
    spec = TrainSpec(iterations=iterations, learning_rate=0.5, negative_weight=negative_weight)
    parties = [
        HolderTrainer(f"h{i}", key.public, b, b[:0], spec, carries_intercept=i == 0)
        for i, b in enumerate(blocks)
    ]
    relay = LocalRelay(parties, key.public, spec.weighted)
    bank = BankTrainer(key.secret, labels, labels[:0], spec)
    cpu = time.process_time()
    run = run_training(bank, relay, spec)
    cpu = (time.process_time() - cpu) / iterations
    started = time.perf_counter()
    plaintext_training(blocks, labels, spec, iterations)
    plain = (time.perf_counter() - started) / iterations
    encrypted = float(np.mean(run.seconds_per_iteration))
    return {
        "entities": entities,
        "features": features,
        "holders": holders,
        "negative_weight": negative_weight,
        "ckks_poly_modulus_degree": ckks.params_of(key.secret).poly_modulus_degree,
        "seconds_per_iteration": encrypted,
        "cpu_seconds_per_iteration": cpu,
        "bytes_per_iteration": relay.moved / iterations,
        "public_context_bytes": len(key.public),
        "plaintext_seconds_per_iteration": plain,
        "ratio_to_plaintext": encrypted / plain,
        "fate_seconds_per_epoch": FATE_SECONDS_PER_EPOCH,
        "ratio_to_fate_epoch": encrypted / FATE_SECONDS_PER_EPOCH,
    }


def paillier_iteration(sample: int, features: int, holders: int) -> dict[str, float]:
    """The same protocol with Paillier (phe, 2048-bit), timed on ``sample`` entities.

    Paillier adds under encryption, so no slot trick is needed: per iteration the
    bank encrypts its label part ``0.5 + b/4 - y_i`` per entity, each holder
    encrypts its ``x_i·w_h/4`` per entity, the coordinator adds them into
    ``[[d_i]]``, each holder computes ``Σ_i [[d_i]]·x_ij`` (a scalar product and an
    addition per entity and feature; the intercept holder also ``Σ_i [[d_i]]``)
    and adds a mask per feature, and the bank decrypts one value per feature —
    FATE's hetero-LR gradient step. Fixed-point encodings keep every sum at one
    exponent. Per-entity work (encryptions, additions, products) is extrapolated
    linearly from the sample, as in the scoring bench; per-feature work (masks,
    decryptions) is counted once. Returns CPU seconds per role and entity.
    """
    from phe import EncodedNumber, paillier

    rng = np.random.default_rng(1)
    x = rng.normal(size=(sample, features))
    label_part = rng.normal(size=sample)
    pieces = rng.normal(size=(holders, sample))
    public, private = paillier.generate_paillier_keypair(n_length=PAILLIER_KEY_BITS)
    clock = time.process_time
    began = clock()
    label = [public.encrypt(float(v), precision=_RESIDUAL_PRECISION) for v in label_part]
    bank_encrypt = clock() - began
    began = clock()
    partials = [
        [public.encrypt(float(v), precision=_RESIDUAL_PRECISION) for v in pieces[h]]
        for h in range(holders)
    ]
    holder_encrypt = clock() - began
    began = clock()
    residual = []
    for i in range(sample):
        total = label[i]
        for part in partials:
            total = total + part[i]
        residual.append(total)
    coordinator = clock() - began
    began = clock()
    columns = [
        [EncodedNumber.encode(public, float(v), precision=_FEATURE_PRECISION) for v in x[:, j]]
        for j in range(features)
    ]
    sums = []
    for j in range(features + 1):  # the last: the intercept's column of ones
        total = None
        for i in range(sample):
            term = residual[i] if j == features else residual[i] * columns[j][i]
            total = term if total is None else total + term
        sums.append(total)
    holder_products = clock() - began
    began = clock()
    masks = rng.uniform(-(2**16), 2**16, features + 1)
    masked = [s + float(m) for s, m in zip(sums, masks, strict=True) if s is not None]
    decrypted = np.array([private.decrypt(m) for m in masked]) - masks
    per_feature = clock() - began
    # The protocol's answer, checked: the gradient sums X^T d (and Σ d) in plaintext.
    expected = (label_part + pieces.sum(axis=0)) @ np.hstack([x, np.ones((sample, 1))])
    return {
        "sample": sample,
        "features": features,
        "key_bits": PAILLIER_KEY_BITS,
        "ciphertext_bytes": (2 * PAILLIER_KEY_BITS) // 8,
        "bank_seconds_per_entity": bank_encrypt / sample,
        "holders_seconds_per_entity": (holder_encrypt + holder_products) / sample,
        "coordinator_seconds_per_entity": coordinator / sample,
        "per_feature_seconds": per_feature,
        "max_abs_error_on_sample": float(np.abs(decrypted - expected).max()),
    }


def paillier_estimate(
    measured: dict[str, float], entities: int, features: int, holders: int
) -> dict[str, float]:
    """Seconds and bytes of one Paillier iteration over ``entities`` (linear extrapolation).

    Seconds are CPU seconds summed over the roles (one core each, one after
    another, as the CKKS figure is measured). Bytes: the bank's and each holder's
    ciphertext per entity to the coordinator, ``[[d]]`` to every holder, and one
    ciphertext per feature (and the intercept) back to the bank.
    """
    if measured["features"] != features:
        raise ValueError("extrapolate over entities only: time the same features")
    per_entity = (
        measured["bank_seconds_per_entity"]
        + measured["holders_seconds_per_entity"]
        + measured["coordinator_seconds_per_entity"]
    )
    size = measured["ciphertext_bytes"]
    return {
        "paillier_seconds_per_iteration_estimate": per_entity * entities
        + measured["per_feature_seconds"],
        "paillier_bytes_per_iteration": size * (entities * (1 + 2 * holders) + 2 * (features + 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--features", type=int, default=9)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument(
        "--negative-weight",
        type=float,
        default=TrainSpec.negative_weight,
        help="class weight of negatives (1: the unweighted protocol)",
    )
    parser.add_argument("--paillier-sample", type=int, default=0, help="0: skip Paillier")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    figures: dict[str, float] = measure(
        args.entities, args.features, args.holders, args.iterations, args.negative_weight
    )
    if args.paillier_sample:
        paillier = paillier_iteration(args.paillier_sample, args.features, args.holders)
        figures |= {f"paillier_{k}": v for k, v in paillier.items()}
        figures |= paillier_estimate(paillier, args.entities, args.features, args.holders)
        estimate = figures["paillier_seconds_per_iteration_estimate"]
        figures["ratio_paillier_to_ckks_cpu"] = estimate / figures["cpu_seconds_per_iteration"]
        figures["paillier_ratio_to_fate_epoch"] = estimate / FATE_SECONDS_PER_EPOCH
    text = json.dumps(figures, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
