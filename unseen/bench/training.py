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

import numpy as np

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


def measure(entities: int, features: int, holders: int, iterations: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    widths = [features // holders + (1 if i < features % holders else 0) for i in range(holders)]
    blocks = [rng.normal(size=(entities, w)) for w in widths]
    labels = (rng.random(entities) < 0.2).astype(float)
    key = AnalystKey.generate()
    spec = TrainSpec(iterations=iterations, learning_rate=0.5)
    parties = [
        HolderTrainer(f"h{i}", key.public, b, b[:0], spec, carries_intercept=i == 0)
        for i, b in enumerate(blocks)
    ]
    relay = LocalRelay(parties, key.public)
    bank = BankTrainer(key.secret, labels, labels[:0], spec)
    run = run_training(bank, relay, spec)
    started = time.perf_counter()
    plaintext_training(blocks, labels, spec, iterations)
    plain = (time.perf_counter() - started) / iterations
    encrypted = float(np.mean(run.seconds_per_iteration))
    return {
        "entities": entities,
        "features": features,
        "holders": holders,
        "seconds_per_iteration": encrypted,
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
    bank encrypts its label part per entity, each holder encrypts its partial per
    entity, the coordinator adds them, each holder computes ``X_hᵀ[[d]]`` (a scalar
    product and an addition per entity and feature) plus a mask, and the bank
    decrypts one value per feature. Every step is per entity (or per entity and
    feature), so the figure for ``entities`` is a linear extrapolation, as in the
    scoring bench; wall time is the sum over roles on one core.
    """
    from phe import paillier

    rng = np.random.default_rng(1)
    x = rng.normal(size=(sample, features))
    d_plain = rng.normal(size=sample)
    public, private = paillier.generate_paillier_keypair(n_length=2048)
    clock = time.perf_counter
    began = clock()
    label = [public.encrypt(float(v)) for v in d_plain]  # the bank's part
    bank = clock() - began
    began = clock()
    widths = [features // holders + (1 if i < features % holders else 0) for i in range(holders)]
    partials = [[public.encrypt(float(v)) for v in d_plain] for _ in range(holders)]
    holder_encrypt = clock() - began
    began = clock()
    residual = [sum((p[i] for p in partials), label[i]) for i in range(sample)]
    coordinator = clock() - began
    began = clock()
    gradients = []
    start = 0
    for width in widths:
        for j in range(start, start + width):
            total = residual[0] * float(x[0, j])
            for i in range(1, sample):
                total += residual[i] * float(x[i, j])
            gradients.append(total + float(rng.uniform(-(2**16), 2**16)))
        start += width
    holder_products = clock() - began
    began = clock()
    for g in gradients:
        private.decrypt(g)
    bank += clock() - began
    per_entity = (
        bank - (clock() - began) + holder_encrypt + coordinator + holder_products
    ) / sample
    return {"sample": sample, "seconds_per_entity": per_entity, "decrypt_seconds": clock() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--features", type=int, default=9)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--paillier-sample", type=int, default=0, help="0: skip Paillier")
    args = parser.parse_args()
    figures: dict[str, float] = measure(args.entities, args.features, args.holders, args.iterations)
    if args.paillier_sample:
        paillier = paillier_iteration(args.paillier_sample, args.features, args.holders)
        estimate = paillier["seconds_per_entity"] * args.entities + paillier["decrypt_seconds"]
        figures["paillier_seconds_per_iteration_estimate"] = estimate
        figures["ratio_paillier_to_ckks"] = estimate / figures["seconds_per_iteration"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
