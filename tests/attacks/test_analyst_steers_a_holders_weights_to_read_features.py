"""Attacker: the analyst (the bank), with a valid analyst certificate, during a joint
training job it started.

It calls a holder's Train RPC directly instead of through the coordinator:
``partial``, then ``products`` with its own "residual" (an encryption of zero),
so the decrypted products are the holder's masks and it knows their sums; then
``update`` with a masked gradient it chose, which moves the holder's weights by
an amount it knows (a unit vector); then ``validate``, whose decryption is the
validation entities' scores under those known weights: one feature column of
the holder's data, per entity. It must learn nothing: a holder answers training
steps only from the coordinator's certificate.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError
from unseen.engine.training.train_job import TrainCall, TrainFeatures, spec_to_json
from unseen.engine.training.vertical_lr import Layout, TrainSpec
from unseen.engine.transport.peers import HolderPeer
from unseen.engine.transport.tls import make_bundle
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder


def test_analyst_cannot_call_a_holders_training_steps_directly(tmp_path):
    roles = [("h0", "holder"), ("coord", "coordinator"), ("alice", "analyst")]
    files = make_bundle(tmp_path / "pki", roles)
    rng = np.random.default_rng(9)
    ids = [f"E{i:03d}" for i in range(60)]
    secret_column = rng.normal(50, 10, len(ids))
    rows = [(i, float(v), float(rng.normal())) for i, v in zip(ids, secret_column, strict=True)]
    schema = [("uscc", "VARCHAR"), ("kwh", "DOUBLE"), ("x", "DOUBLE")]
    path = write_shard(tmp_path / "h0.csv", schema, rows)
    node = HolderNode.quickstart("h0", {"power": path})
    hserver, hport = serve_holder(node, "127.0.0.1:0", files["h0"])
    coordinator = Coordinator.connect([f"localhost:{hport}"], tls=files["coord"])
    cserver, cport = serve_coordinator(coordinator, "127.0.0.1:0", files["coord"])
    key = AnalystKey.generate()
    client = Client(f"localhost:{cport}", key=key, tls=files["alice"])
    direct = HolderPeer(f"localhost:{hport}", tls=files["alice"])
    try:
        client.register_key()
        spec = TrainSpec(iterations=3, learning_rate=1.0, patience=1)
        train, valid = ids[:40], ids[40:]
        job = "ab" * 16
        features = (TrainFeatures("h0", "power", "uscc", ("kwh", "x"), True),)
        start = TrainCall(
            job, "start", key_id=key.key_id, spec=spec_to_json(spec), features=features,
            ids=tuple(train), validation_ids=tuple(valid),
        )  # fmt: skip
        client._peer.train(start)  # a legitimate job, through the coordinator

        with pytest.raises(RemoteError) as refused:
            direct.train(TrainCall(job, "partial", 0))
            # Were it answered, the rest of the attack reads a feature column:
            zero = ckks.encrypt(key.secret, np.zeros(ckks.PARAMS.slots)).serialize()
            masked = direct.train(TrainCall(job, "products", 0, ciphertexts=(bytes(zero),)))
            layout = Layout.for_batch(len(train), ckks.PARAMS.slots)
            sums = np.zeros(layout.replicas)
            for data in masked.ciphertexts:
                sums += layout.segment_sums(ckks.decrypt(key.secret, data), len(train))
            # Masks of kwh, x and the intercept's constant column; w becomes -1 * e_kwh.
            chosen = [sums[0] + 1.0, sums[1]]
            direct.train(TrainCall(job, "update", 0, gradients={"h0": chosen}))
            scores = direct.train(TrainCall(job, "validate", 0)).ciphertexts
            read = -ckks.decrypt(key.secret, scores[0])[: len(valid)]
            mean, std = secret_column[:40].mean(), secret_column[:40].std()
            assert np.allclose(read * std + mean, secret_column[40:], atol=1e-4)
            pytest.fail("the analyst read a holder's feature column through direct training calls")
        assert refused.value.code == "PERMISSION_DENIED"
        assert "only through the coordinator" in str(refused.value)
    finally:
        direct.close()
        client.close()
        cserver.stop(None).wait()
        coordinator.close()
        hserver.stop(None).wait()
