"""A holder's training job accepts steps only in round order and within its budget."""

from __future__ import annotations

import numpy as np
import pytest

from tests.shards import write_shard
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import PlanError, PolicyError
from unseen.engine.training.train_job import TrainCall, TrainFeatures, spec_to_json
from unseen.engine.training.vertical_lr import TrainSpec
from unseen.nodes.holder import HolderNode


@pytest.fixture
def started(tmp_path):
    rows = [(f"E{i}", float(i), float(i % 3)) for i in range(30)]
    schema = [("uscc", "VARCHAR"), ("a", "DOUBLE"), ("b", "DOUBLE")]
    path = write_shard(tmp_path / "p.csv", schema, rows)
    node = HolderNode.quickstart("h0", {"power": path})
    key = AnalystKey.generate()
    node.keys.register(key.public)
    features = (TrainFeatures("h0", "power", "uscc", ("a", "b"), True),)
    spec = TrainSpec(iterations=2, patience=1, negative_weight=1.0)  # unweighted: no Enc(c)
    ids = tuple(f"E{i}" for i in range(20))
    node.train(TrainCall("j", "start", key_id=key.key_id, spec=spec_to_json(spec),
                         features=features, ids=ids, validation_ids=("E25", "E26")))  # fmt: skip
    return node, key


def _residual(key):
    return (bytes(ckks.encrypt(key.secret, np.zeros(ckks.PARAMS.slots)).serialize()),)


def test_steps_out_of_round_order_are_refused(started):
    node, key = started
    with pytest.raises(PlanError, match="cannot follow idle"):
        node.train(TrainCall("j", "products", 0, ciphertexts=_residual(key)))
    with pytest.raises(PlanError, match="cannot follow idle"):
        node.train(TrainCall("j", "update", 0, gradients={"h0": [0.0, 0.0]}))
    node.train(TrainCall("j", "partial", 0))
    node.train(TrainCall("j", "products", 0, ciphertexts=_residual(key)))
    with pytest.raises(PlanError, match="cannot follow products"):  # a second look at masks
        node.train(TrainCall("j", "products", 0, ciphertexts=_residual(key)))
    node.train(TrainCall("j", "update", 0, gradients={"h0": [0.0, 0.0]}))
    with pytest.raises(PlanError, match="cannot follow updated"):  # a second known shift
        node.train(TrainCall("j", "update", 0, gradients={"h0": [1.0, 0.0]}))
    node.train(TrainCall("j", "validate", 0))
    with pytest.raises(PlanError, match="cannot follow validated"):
        node.train(TrainCall("j", "validate", 0))


def test_the_iteration_budget_and_replays_are_refused(started):
    node, key = started
    for iteration in range(2):
        node.train(TrainCall("j", "partial", iteration))
        node.train(TrainCall("j", "products", iteration, ciphertexts=_residual(key)))
        node.train(TrainCall("j", "update", iteration, gradients={"h0": [0.0, 0.0]}))
    with pytest.raises(PlanError, match="budget is 2 iterations"):
        node.train(TrainCall("j", "partial", 2))
    with pytest.raises(PlanError, match="already run"):
        node.train(TrainCall("j", "partial", 1))
    with pytest.raises(PlanError, match="cannot follow updated"):  # nothing moved on
        node.train(TrainCall("j", "products", 1, ciphertexts=_residual(key)))


def test_an_analyst_certificate_is_refused(started):
    node, _ = started
    with pytest.raises(PolicyError, match="only through the coordinator"):
        node.train(TrainCall("j", "partial", 0), role="analyst")


def test_a_batch_too_small_to_hide_labels_is_refused(tmp_path):
    # A holder learns X_hᵀd per batch: over one entity that is the bank's label.
    with pytest.raises(PlanError, match="at least 10 entities"):
        TrainSpec(batch_size=1)
    rows = [(f"E{i}", float(i)) for i in range(30)]
    path = write_shard(tmp_path / "p.csv", [("uscc", "VARCHAR"), ("a", "DOUBLE")], rows)
    node = HolderNode.quickstart("h0", {"power": path})
    key = AnalystKey.generate()
    node.keys.register(key.public)
    features = (TrainFeatures("h0", "power", "uscc", ("a",), True),)
    start = TrainCall("j", "start", key_id=key.key_id, spec=spec_to_json(TrainSpec()),
                      features=features, ids=("E1", "E2", "E3"))  # fmt: skip
    with pytest.raises(PlanError, match="at least 10 entities"):
        node.train(start)


def test_class_weights_must_match_the_jobs_spec(started):
    node, key = started  # an unweighted job: Enc(c) has no place in it
    with pytest.raises(PlanError, match="unweighted job"):
        node.train(TrainCall("j", "partial", 0, ciphertexts=_residual(key)))
    features = (TrainFeatures("h0", "power", "uscc", ("a", "b"), True),)
    weighted = spec_to_json(TrainSpec(iterations=2, negative_weight=0.25))
    ids = tuple(f"E{i}" for i in range(20))
    node.train(
        TrainCall("w", "start", key_id=key.key_id, spec=weighted, features=features, ids=ids)
    )
    with pytest.raises(PlanError, match="class-weight ciphertexts"):
        node.train(TrainCall("w", "partial", 0))
