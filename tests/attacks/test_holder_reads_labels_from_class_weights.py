"""Attacker: a holder, and the coordinator, of a class-weighted training job
(real gRPC, real TenSEAL). Class weights ``c_i`` (1 for a default, 0.25 for a
repaid loan, normalised to mean 1) are the bank's labels in another form: a protocol that sent them
to holders in the clear — so that each could weight its own partial scores —
would hand every holder the label of every training entity.

Each records everything it receives over two jobs on the same entities and
features whose labels differ (the defaults first, then last) and tries to read
the labels: from any field outside the ciphertexts, from the ciphertexts'
number and sizes, by decrypting with the public context it holds, and by
re-encrypting the right guess of ``c`` to match what it got. It must learn
nothing: outside the ciphertexts the two transcripts are the same, and the
ciphertexts are fresh encryptions under the bank's key — which does decrypt
them to the labels (so they are what carries them). The masked gradients a
holder receives are left aside: unmasked, they are its own gradient
``X_hᵀ(c⊙d)/|B|``, the documented leak of hetero LR (docs/training.md).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto import ckks
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.vertical_lr import TrainSpec, class_weights

SCHEMA = [("uscc", "VARCHAR"), ("kwh", "DOUBLE"), ("peak", "DOUBLE")]
N, DEFAULTS = 120, 30
IDS = [f"9144{i:06d}" for i in range(N)]
SPEC = TrainSpec(iterations=2, learning_rate=0.5, negative_weight=0.25)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    rng = np.random.default_rng(3)
    rows = [(i, float(rng.lognormal(9, 0.5)), float(rng.normal(40, 9))) for i in IDS]
    path = write_shard(tmp_path_factory.mktemp("labels") / "power.csv", SCHEMA, rows)
    fed = start_federation({"grid": {"power": path}})
    yield fed
    fed.close()


def _transcripts(fed, key, labels):
    """What the holder and the coordinator receive during one job."""
    holder, coordinator = [], []
    node, coord = fed.holders["grid"], fed.coordinator
    node_train, coord_train = node.train, coord.train

    def at_holder(call, *args, **kwargs):
        holder.append(call)
        return node_train(call, *args, **kwargs)

    def at_coordinator(call, *args, **kwargs):
        coordinator.append(call)
        return coord_train(call, *args, **kwargs)

    node.train, coord.train = at_holder, at_coordinator
    try:
        parts = [TrainFeatures("grid", "power", "uscc", ("kwh", "peak"))]
        fed.client(key).train(labels, parts, SPEC, validation=0.0)
    finally:
        node.train, coord.train = node_train, coord_train
    return holder, coordinator


def _outside_ciphertexts(calls):
    """Every field but the ciphertexts (and the holder's masked gradients), and the
    ciphertexts' number; the job id is random per job."""
    out = []
    for call in calls:
        fields = asdict(call)
        fields.pop("job_id")
        fields["gradients"] = {h: len(v) for h, v in fields["gradients"].items()}
        fields["ciphertexts"] = len(fields["ciphertexts"])
        out.append(fields)
    return out


def _sizes(calls):
    return np.array([len(c) for call in calls for c in call.ciphertexts], dtype=float)


def test_holders_and_the_coordinator_cannot_read_the_class_weights(grid, key):
    first = {i: float(n < DEFAULTS) for n, i in enumerate(IDS)}
    last = {i: float(n >= N - DEFAULTS) for n, i in enumerate(IDS)}
    seen_first = _transcripts(grid, key, first)
    seen_last = _transcripts(grid, key, last)
    for a, b in zip(seen_first, seen_last, strict=True):
        # Outside the ciphertexts (sizes included) the two jobs look the same.
        assert _outside_ciphertexts(a) == _outside_ciphertexts(b)
        # TenSEAL compresses what it serialises, and the coefficients of a fresh
        # ciphertext are uniform whatever it encrypts: sizes vary by a few hundred
        # bytes at random (two encryptions of one vector do too), never by labels.
        assert np.abs(_sizes(a) / _sizes(b) - 1).max() < 0.01

    holder_calls, coordinator_calls = seen_first
    partials = [c for c in holder_calls if c.step == "partial"]
    rounds = [c for c in coordinator_calls if c.step == "round"]
    assert len(partials) == len(rounds) == SPEC.iterations
    received = partials[0].ciphertexts  # the holder's Enc(c), one block
    assert len(received) == 1 and rounds[0].ciphertexts[1] == received[0]

    public = ckks.load_public_context(grid.coordinator.keys.public_bytes(key.key_id))
    y_first = np.array(list(first.values()))
    c_first = class_weights(y_first, SPEC, y_first)
    for data in [*received, *rounds[0].ciphertexts]:
        vector = ckks.load_ciphertext(public, data, ckks.slot_count(public))
        with pytest.raises(ValueError):  # the public context holds no secret key
            vector.decrypt()
    # Re-encrypting the right guess of c does not reproduce what the holder got.
    guess = np.zeros(ckks.slot_count(public))
    guess[:N] = c_first
    assert bytes(ckks.encrypt(public, guess).serialize()) != received[0]
    # The bank's key does read them: these ciphertexts are what carries the labels.
    assert np.allclose(ckks.decrypt(key.secret, received[0])[:N], c_first, atol=1e-6)
