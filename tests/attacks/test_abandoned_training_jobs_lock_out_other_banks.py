"""Attacker: an analyst (a bank) of a federation that trains joint models.

It sends eight ``start`` steps through the coordinator — eight jobs, each with the
holder's own column, authorised like any start — and never sends another step. Both
the coordinator and the holder keep at most eight jobs at once, so every other bank's
training would be refused ("runs 8 training jobs already") until the nodes restart.

It must not lock anyone out: a job that has seen no step for ``JOB_IDLE_SECONDS`` is
dropped (and its holders told to drop it) when a new job needs its place, so another
bank's job then trains and scores as it would alone.
"""

from __future__ import annotations

import secrets
import time

import numpy as np

from tests.shards import write_shard
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.training.train_job import TrainCall, TrainFeatures, spec_to_json
from unseen.engine.training.training_client import predict_jointly, train_jointly
from unseen.engine.training.vertical_lr import TrainSpec
from unseen.nodes import training


def test_abandoned_jobs_give_way_to_another_banks_job(
    tmp_path, federation_factory, key, monkeypatch
):
    monkeypatch.setattr(training, "JOB_IDLE_SECONDS", 0.5, raising=False)
    rows = [(f"e{i}", float(i % 7), float(i)) for i in range(40)]
    shard = write_shard(
        tmp_path / "t.csv", [("id", "VARCHAR"), ("v", "DOUBLE"), ("w", "DOUBLE")], rows
    )
    fed = federation_factory({"h": {"t": shard}})
    part = TrainFeatures("h", "t", "id", ("w",), True)
    attacker = fed.client(key)
    attacker.register_key()
    ids = tuple(f"e{i}" for i in range(40))
    for _ in range(training.MAX_JOBS):
        attacker._peer.train(
            TrainCall(
                secrets.token_hex(16),
                "start",
                key_id=key.key_id,
                spec=spec_to_json(TrainSpec(iterations=30)),
                features=(part,),
                ids=ids,
            )
        )
    assert len(fed.holders["h"].training.jobs) == training.MAX_JOBS
    time.sleep(1.0)  # the attacker's jobs go idle

    bank = AnalystKey.generate()
    client = fed.client(bank)
    client.register_key()
    labels = {f"e{i}": float(i % 2) for i in range(40)}
    model = train_jointly(client._peer, bank, labels, [part], TrainSpec(iterations=3), 0.0)
    assert model.run.iterations == 3
    scores, _ = predict_jointly(client._peer, bank, model.to_dict(), list(ids[:8]))
    assert scores.shape == (8,) and np.all((scores > 0) & (scores < 1))
    # The idle jobs were dropped at the holder, not merely skipped at the coordinator.
    assert len(fed.holders["h"].training.jobs) < training.MAX_JOBS
