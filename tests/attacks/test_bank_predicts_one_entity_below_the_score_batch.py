"""Attacker: the analyst (the bank) of a joint training job, against a holder whose table
requires every score to name at least ``min_score_batch`` = 5 distinct entities (its
owner does not want one subject's score computed alone).

``unseen score`` with one entity is refused. The bank instead trains a model jointly on
the holder's column ``w`` and then sends a ``predict`` for that model naming the one
entity it wants: the holder's partial ``x·w_h`` for that entity alone, added to no one
else's, which it decrypts — or makes that entity the whole validation set of a job,
whose joint scores it reads every iteration. It must learn nothing: both are scores and
the holder applies the same batch rule (refused with PERMISSION_DENIED, ledgered where
a ledger is kept); five entities are answered.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.shards import write_shard
from unseen.engine.errors import PolicyError, RemoteError
from unseen.engine.query.model import parse_model
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.training_client import predict_jointly, train_jointly
from unseen.engine.training.vertical_lr import TrainSpec


def test_a_prediction_names_as_many_entities_as_a_score_must(tmp_path, federation_factory, key):
    rows = [(f"e{i}", float(i % 7), float(i)) for i in range(40)]
    shard = write_shard(
        tmp_path / "t.csv", [("id", "VARCHAR"), ("v", "DOUBLE"), ("w", "DOUBLE")], rows
    )
    fed = federation_factory({"h": {"t": shard}})
    holder = fed.holders["h"]
    holder.tables["t"] = dataclasses.replace(holder.tables["t"], min_score_batch=5)
    fed.coordinator.catalog_ttl = 0
    client = fed.client(key)
    client.register_key()

    # The rule as the table's owner set it: a score of one entity is refused.
    one = parse_model(
        {
            "entity": "id",
            "features": [{"table": "t", "column": "w", "weight": 1.0, "default": 0.0}],
            "intercept": 0.0,
            "link": "identity",
        }
    )
    with pytest.raises((PolicyError, RemoteError), match="at least 5 distinct entities"):
        client.score(one, ["e3"])

    labels = {f"e{i}": float(i % 2) for i in range(40)}
    part = TrainFeatures("h", "t", "id", ("w",), True)
    model = train_jointly(client._peer, key, labels, [part], TrainSpec(iterations=2), validation=0)
    document = model.to_dict()
    with pytest.raises((PolicyError, RemoteError), match="at least 5 distinct entities"):
        predict_jointly(client._peer, key, document, ["e3"])
    with pytest.raises((PolicyError, RemoteError), match="at least 5 distinct entities"):
        predict_jointly(client._peer, key, document, ["e3"] * 5)

    # Nor as the validation set of a job, whose joint scores the bank reads each iteration.
    spec = TrainSpec(iterations=2, patience=1)
    with pytest.raises((PolicyError, RemoteError), match="at least 5 distinct entities"):
        train_jointly(client._peer, key, labels, [part], spec, validation=1 / 40)
    assert not holder.training.jobs and not fed.coordinator.training.relays
    train_jointly(client._peer, key, labels, [part], spec, validation=5 / 40)

    five = [f"e{i}" for i in range(3, 8)]
    scores, _ = predict_jointly(client._peer, key, document, five)
    assert scores.shape == (5,) and np.all((scores > 0) & (scores < 1))
