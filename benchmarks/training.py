"""Joint training bench (issue 15.6): per-iteration time and bytes of vertical LR.

``python -m benchmarks.training --entities 100000 --features 30 --holders 3``
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

from engine.joint_training import LocalRelay, run_training
from engine.keys import AnalystKey
from engine.vertical_lr import BankTrainer, HolderTrainer, TrainSpec, plaintext_training

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--features", type=int, default=9)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.entities, args.features, args.holders, args.iterations)))


if __name__ == "__main__":
    main()
