"""Attacker: the analyst (the bank), starting a joint training job through the coordinator.

The holder's policy keeps column ``v`` from models (its uses lack ``score``).
The bank's own client would refuse a derived feature on it against the catalog,
so the attacker skips that check and sends a ``start`` whose derived feature
definitions (``TrainFeatures.definitions``, as they travel) aggregate ``v``.
Trained, the holder's weights on ``v`` would let the bank read it back through
joint scores of its validation entities or predictions. It must learn nothing:
the holder checks every derived feature against its own policy and refuses the
job before reading a row; no job is left behind.
"""

from __future__ import annotations

import pytest

from tests.shards import write_shard
from unseen.engine.errors import PolicyError, RemoteError
from unseen.engine.query.model import FeatureSpec
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.training_client import train_jointly
from unseen.engine.training.vertical_lr import TrainSpec


def test_a_derived_feature_on_a_column_kept_from_models_is_refused(
    tmp_path, federation_factory, key
):
    rows = [(f"e{i}", float(i % 7), float(i)) for i in range(40)]
    shard = write_shard(
        tmp_path / "t.csv", [("id", "VARCHAR"), ("v", "DOUBLE"), ("w", "DOUBLE")], rows
    )
    fed = federation_factory({"h": {"t": shard}})
    holder = fed.holders["h"]
    table = holder.tables["t"]
    holder.tables["t"] = type(table)(
        "t",
        tuple(
            c if c.name != "v" else type(c)(c.name, c.type, c.uses - {"score"}, c.domain)
            for c in table.columns
        ),
        5,
    )
    fed.coordinator.catalog_ttl = 0
    client = fed.client(key)
    client.register_key()
    labels = {f"e{i}": float(i % 2) for i in range(40)}
    forged = TrainFeatures("h", "t", "id", ("v",), True, (FeatureSpec("t", "v", "id", "sum"),))
    with pytest.raises((PolicyError, RemoteError), match="may not feed scores"):
        train_jointly(client._peer, key, labels, [forged], TrainSpec(iterations=2), validation=0.0)
    assert not holder.training.jobs and not fed.coordinator.training.relays

    # The same job on a column the policy lets feed models is answered.
    allowed = TrainFeatures("h", "t", "id", ("w",), True, (FeatureSpec("t", "w", "id", "sum"),))
    model = train_jointly(
        client._peer, key, labels, [allowed], TrainSpec(iterations=2), validation=0.0
    )
    assert model.run.iterations == 2
