"""Vertical logistic regression (issue 15.2) with real TenSEAL, checked against numpy.

The parties exchange serialised ciphertexts only; the coordinator's step is
the key-less :func:`unseen.engine.training.vertical_lr.sum_ciphertexts`. Trained weights must
equal the same Taylor-approximated objective trained on pooled plaintext.
"""

from __future__ import annotations

import numpy as np
import pytest

from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import HolderError, RemoteError
from unseen.engine.training.joint_training import LocalRelay, run_training
from unseen.engine.training.vertical_lr import (
    BankTrainer,
    HolderTrainer,
    Layout,
    TrainSpec,
    batch_indices,
    mask_scale,
    plaintext_training,
    standardise,
)
from unseen.oracle.quality import auc


def _world(seed: int, n: int, widths=(3, 4, 2)):
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(rng.uniform(-5, 50), rng.uniform(0.5, 9), (n, f)) for f in widths]
    scaled = [standardise(b)[0] for b in blocks]
    truth = [rng.normal(0, 1, f) for f in widths]
    logit = -1.0 + sum(x @ t for x, t in zip(scaled, truth, strict=True))
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return blocks, labels


def _parties(key, blocks, labels, spec, validation=0):
    cut = len(labels) - validation
    holders = [
        HolderTrainer(f"h{i}", key.public, b[:cut], b[cut:], spec, carries_intercept=i == 0)
        for i, b in enumerate(blocks)
    ]
    return BankTrainer(key.secret, labels[:cut], labels[cut:], spec), holders


@pytest.fixture(scope="module")
def key():
    return AnalystKey.generate()


@pytest.mark.parametrize(
    "spec",
    [
        TrainSpec(iterations=6, learning_rate=0.5),
        TrainSpec(iterations=7, learning_rate=0.8, l2=0.01, batch_size=700, seed=3),
        TrainSpec(iterations=6, learning_rate=0.5, negative_weight=1.0),
    ],
    ids=["full-batch", "mini-batch-l2", "unweighted"],
)
def test_weights_equal_plaintext_training_of_the_same_objective(key, spec):
    blocks, labels = _world(1, 2000)
    bank, holders = _parties(key, blocks, labels, spec)
    run = run_training(bank, LocalRelay(holders, key.public, spec.weighted), spec)
    weights, intercept = plaintext_training(blocks, labels, spec, spec.iterations)
    for holder, expected in zip(holders, weights, strict=True):
        assert np.abs(holder.weights - expected).max() < 1e-6
    assert abs(run.intercept - intercept) < 1e-6
    assert np.abs(weights[0]).max() > 0.05  # it did learn something
    assert run.iterations == spec.iterations and len(run.seconds_per_iteration) == spec.iterations
    assert set(run.holders) == {"h0", "h1", "h2"}


def test_auc_matches_plaintext_logistic_regression(key):
    # One world, split: the test entities follow the same truth as the training ones.
    world, outcomes = _world(2, 9000)
    blocks, labels = [b[:3000] for b in world], outcomes[:3000]
    test_blocks, test_labels = [b[3000:] for b in world], outcomes[3000:]
    spec = TrainSpec(iterations=15, learning_rate=1.0)
    bank, holders = _parties(key, blocks, labels, spec)
    run = run_training(bank, LocalRelay(holders, key.public, spec.weighted), spec)
    # Each holder scores fresh entities with its own statistics and weights.
    joint = run.intercept + sum(
        h.whitening.apply(t) @ h.weights for t, h in zip(test_blocks, holders, strict=True)
    )
    # Plaintext logistic regression (exact sigmoid) on the pooled data, numpy.
    stats = [(b.mean(axis=0), b.std(axis=0)) for b in blocks]
    pooled = np.hstack([standardise(b)[0] for b in blocks])
    pooled_test = np.hstack([(t - m) / s for t, (m, s) in zip(test_blocks, stats, strict=True)])
    w, b = np.zeros(pooled.shape[1]), 0.0
    for _ in range(500):
        residual = 1 / (1 + np.exp(-(pooled @ w + b))) - labels
        w -= pooled.T @ residual / len(labels)
        b -= residual.mean()
    exact = auc(pooled_test @ w + b, test_labels)
    assert exact > 0.8  # a world with signal: the test entities follow the training truth
    assert abs(auc(joint, test_labels) - exact) < 0.005


def test_early_stopping_keeps_the_best_validation_iteration(key):
    blocks, labels = _world(3, 1500)
    spec = TrainSpec(iterations=12, learning_rate=8.0, patience=2)  # a rate that overshoots
    bank, holders = _parties(key, blocks, labels, spec, validation=400)
    run = run_training(bank, LocalRelay(holders, key.public, spec.weighted), spec)
    best = int(np.argmin(run.losses))
    assert run.iterations == best + 1
    assert len(run.losses) < spec.iterations  # it stopped early
    # The kept weights are the plaintext run's after best + 1 iterations.
    cut = len(labels) - 400
    expected, intercept = plaintext_training(
        [b[:cut] for b in blocks], labels[:cut], spec, best + 1
    )
    for holder, weights in zip(holders, expected, strict=True):
        assert np.abs(holder.weights - weights).max() < 1e-6
    assert abs(run.intercept - intercept) < 1e-6


class _Leaves(HolderTrainer):
    """A holder whose link drops after ``left`` iterations."""

    left = 2

    def masked_products(self, iteration, residual):
        if iteration >= self.left:
            raise RemoteError("UNAVAILABLE", "connection reset")
        return super().masked_products(iteration, residual)


def test_a_holder_leaving_mid_training_fails_the_job_and_keeps_nothing(key):
    blocks, labels = _world(4, 800)
    spec = TrainSpec(iterations=5)
    bank, holders = _parties(key, blocks, labels, spec)
    holders[2] = _Leaves("h2", key.public, blocks[2], blocks[2][:0], spec)
    with pytest.raises(HolderError) as failed:
        run_training(bank, LocalRelay(holders, key.public, spec.weighted), spec)
    assert failed.value.holder == "h2" and failed.value.code == "UNAVAILABLE"
    assert "iteration 3" in str(failed.value)
    for holder in holders:  # every holder dropped the job's weights
        assert not holder.weights.any() and not holder.history


def test_layout_packs_features_by_replica_and_batches_cover_the_epoch():
    layout = Layout.for_batch(1000, 4096)
    assert (layout.width, layout.replicas) == (1000, 4)
    block = np.arange(15.0).reshape(3, 5)
    vectors = layout.columns(block)
    assert len(vectors) == 2
    assert list(vectors[0][1000:1003]) == [1.0, 6.0, 11.0]
    assert list(layout.segment_sums(vectors[1], 3)[:2]) == [4 + 9 + 14, 0.0]
    spec = TrainSpec(batch_size=300, seed=5)
    seen = np.concatenate([batch_indices(1000, spec, t) for t in range(4)])
    assert sorted(seen.tolist()) == list(range(1000))


def test_training_bench_smoke_size_reports_its_figures():
    from unseen.bench.training import measure

    figures = measure(entities=300, features=4, holders=2, iterations=1)
    assert figures["bytes_per_iteration"] > 0 and figures["seconds_per_iteration"] > 0
    # The public key alone (N = 16384, six primes: about 1.5 MB), no Galois keys (~35 MB).
    assert figures["public_context_bytes"] < 2 << 20
    assert figures["fate_seconds_per_epoch"] == 136.0


def test_paillier_training_bench_computes_the_same_gradients_at_a_tiny_size():
    from unseen.bench.training import paillier_estimate, paillier_iteration

    measured = paillier_iteration(sample=4, features=2, holders=2)
    assert measured["max_abs_error_on_sample"] < 1e-3  # decrypted X^T d equals numpy's
    figures = paillier_estimate(measured, entities=1000, features=2, holders=2)
    assert figures["paillier_seconds_per_iteration_estimate"] > 0
    assert figures["paillier_bytes_per_iteration"] == 512 * (1000 * 5 + 2 * 3)


def test_a_key_with_little_room_left_scales_masks_and_signal_together():
    # At N = 8192 (60 + 50 + 50 bits, scale 2^50) a class-weighted product has 2^9 of
    # room after its two rescales: the ±2^16 masks would wrap around the modulus.
    narrow = AnalystKey.generate(ckks.CkksParams(8192, (60, 50, 50, 58), 50))
    spec = TrainSpec(iterations=5, learning_rate=0.5, batch_size=600, seed=2)
    bound, factor = mask_scale(narrow.secret, spec.product_depth)
    assert factor < 1 and bound == factor * 2.0**16
    blocks, labels = _world(5, 1500)
    bank, holders = _parties(narrow, blocks, labels, spec)
    run = run_training(bank, LocalRelay(holders, narrow.public, spec.weighted), spec)
    weights, intercept = plaintext_training(blocks, labels, spec, spec.iterations)
    for holder, expected in zip(holders, weights, strict=True):
        assert np.abs(holder.weights - expected).max() < 1e-6
    assert abs(run.intercept - intercept) < 1e-6
