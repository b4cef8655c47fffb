"""Attacker: analyst B, colluding with the coordinator (which sees every model id it
relays), against a governed holder that scores in worker processes (``--workers``).

B holds a voucher of its own for the grid holder: two entities only, and one approved
model (weight 1 on ``kwh``: the raw feature). Analyst A holds a voucher for ten
entities and its own approved model. B sends, straight to the holder (with mTLS it
would go through the colluding coordinator's certificate):

* its approved weights under four made-up model ids, each scored for its own two
  entities (authorised: the digests are approved), which pushes A's model out of the
  worker's cache of loaded models;
* its approved weights under A's model id (learned from the coordinator), scored once
  for its own entities, so the worker loads B's weights under A's id.

When A scores again, the holder re-registers A's weights under that id, authorises and
charges A's voucher — and the worker answers from B's cached weights under B's key.
The coordinator hands the ciphertexts to B, who must learn ``kwh`` of all ten of A's
entities (eight outside its own voucher), while A silently receives garbage.

It must learn nothing: a model is cached in the workers (and its encoded features are
namespaced) by what it is — analyst key, id and weight digests — not by the id a
caller chose, so A's request is computed with A's weights under A's key.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.governance_fixtures import ACCOUNTS, build_world
from unseen.engine.client import Client
from unseen.engine.config import load_config
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.query.model import parse_model
from unseen.engine.transport.peers import HolderPeer, ModelUpload
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder


def _model(weight: float) -> dict:
    return {
        "entity": "account",
        "features": [{"table": "power", "column": "kwh", "weight": weight, "default": 0.0}],
        "intercept": 0.0,
        "link": "identity",
    }


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("borrowed"), ("grid",))
    node = HolderNode.from_config(load_config(world.configs["grid"]), workers=1)
    holder, port = serve_holder(node, "127.0.0.1:0")
    address = f"127.0.0.1:{port}"
    coordinator = Coordinator.connect([address])
    coordinator.catalog_ttl = 0.0
    server, cport = serve_coordinator(coordinator, "127.0.0.1:0")
    yield world, address, f"127.0.0.1:{cport}", coordinator
    server.stop(grace=None).wait()
    holder.stop(grace=None).wait()
    coordinator.close()
    node.pool.close()
    if node.gov.ledger is not None:
        node.gov.ledger.close()


def _kwh(world, ids):
    rows = dict(world.reference.execute("SELECT account, kwh FROM power").fetchall())
    return np.array([rows.get(i, 0.0) for i in ids])


def test_a_borrowed_model_id_scores_nothing_for_its_borrower(grid):
    world, holder_address, address, coordinator = grid
    victims, own = ACCOUNTS[:10], ACCOUNTS[:2]
    key_a, key_b = AnalystKey.generate(), AnalystKey.generate()

    model_a = parse_model(_model(-2e-4))
    client_a = Client(address, key=key_a, vouchers=world.vouchers(key_a.key_id, ["grid"]))
    approval_a, weights_a = world.approve(client_a, model_a)
    client_a.vouchers = world.vouchers(key_a.key_id, ["grid"], model=approval_a, entities=victims)

    model_b = parse_model(_model(1.0))
    client_b = Client(address, key=key_b, vouchers=world.vouchers(key_b.key_id, ["grid"]))
    approval_b, weights_b = world.approve(client_b, model_b)
    vouchers_b = world.vouchers(key_b.key_id, ["grid"], model=approval_b, entities=own)
    specs = client_b.feature_specs(model_b, client_b.catalog())
    try:
        first = client_a.score(model_a, victims, weights_a)
        expected_a = -2e-4 * _kwh(world, victims)
        assert np.allclose([r[1] for r in first.rows], expected_a, atol=1e-6)
        # The curious coordinator relayed A's model id.
        model_id = first.meta["model_id"]
        assert any(mid == model_id for _, mid in coordinator.models._models)

        peer = HolderPeer(holder_address)
        try:

            def b_scores(mid: str) -> list[bytes]:
                upload = ModelUpload(
                    key_b.key_id, mid, tuple(specs), weights_b.exponents, weights_b.weights
                )
                peer.register_model(upload)
                return list(peer.score(key_b.key_id, mid, own, vouchers_b).blocks())

            for i in range(4):
                b_scores(hashlib.sha256(b"b%d" % i).hexdigest())
            b_scores(model_id)

            # A scores again: its client and the coordinator re-register its weights.
            again = client_a.score(model_a, victims, weights_a)
            # The coordinator replays A's request (A's vouchers) and keeps the blocks.
            blocks = list(peer.score(key_a.key_id, model_id, victims, client_a.vouchers).blocks())
        finally:
            peer.close()
        read = ckks.decrypt(key_b.secret, blocks[0])[: len(victims)]
        leaked = np.abs(read - _kwh(world, victims)) < 1e-3 * np.maximum(1.0, _kwh(world, victims))
        assert not leaked[2:].any(), "B read kwh of entities outside its voucher"
        assert np.allclose([r[1] for r in again.rows], expected_a, atol=1e-6)
    finally:
        client_a.close()
        client_b.close()
