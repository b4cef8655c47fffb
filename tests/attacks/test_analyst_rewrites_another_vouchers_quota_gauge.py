"""Attacker: an analyst (any key, no valid voucher) against a governed holder whose
``/metrics`` the operators watch for each voucher's quota left.

It sends a request carrying a forged voucher — signed by a key the holder does not
trust — that reuses a real voucher's id and claims a quota of a million. The holder
refuses and ledgers it; the attacker wants the scrape to show the *real* voucher with
999,999 queries left (hiding that it is nearly spent), or to push real vouchers out
of the bounded label set with made-up ids.

It must change nothing: a voucher's gauges are set only from vouchers a trusted
issuer signed.
"""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.governance_fixtures import ACCOUNTS, build_world
from unseen.engine.client import Client
from unseen.engine.config import load_config
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError
from unseen.engine.governance.voucher import SignedVoucher
from unseen.engine.query.model import parse_model
from unseen.engine.transport.telemetry import NodeMetrics
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

MODEL = {
    "entity": "account",
    "features": [{"table": "power", "column": "kwh", "weight": 1.0, "default": 0.0}],
    "intercept": 0.0,
    "link": "identity",
}


def _gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        s.labels["voucher"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "unseen_voucher_quota_left"
    }


def test_a_forged_voucher_does_not_set_a_real_vouchers_gauge(tmp_path):
    world = build_world(tmp_path, ("grid",))
    metrics = NodeMetrics("holder", "grid")
    node = HolderNode.from_config(load_config(world.configs["grid"]))
    holder, port = serve_holder(node, "127.0.0.1:0", metrics=metrics)
    coordinator = Coordinator.connect([f"127.0.0.1:{port}"])
    server, cport = serve_coordinator(coordinator, "127.0.0.1:0")
    scrape = metrics.serve("127.0.0.1:0")
    victim, attacker = AnalystKey.generate(), AnalystKey.generate()
    real = world.voucher("grid", victim.key_id, quota=5)
    real_id = SignedVoucher.decode(real).voucher_id
    forged = [
        world.voucher("grid", attacker.key_id, quota=1_000_000, issuer=world.rogue, voucher_id=v)
        for v in (real_id, "made-up-1")
    ]
    clients = [
        Client(f"127.0.0.1:{cport}", key=victim, vouchers=[real]),
        *(Client(f"127.0.0.1:{cport}", key=attacker, vouchers=[f]) for f in forged),
    ]
    try:
        specs = clients[0].feature_specs(parse_model(MODEL), clients[0].catalog())
        clients[0].prepare(specs, ACCOUNTS[:3])
        assert _gauges(scrape) == {real_id: 4.0}
        for client in clients[1:]:
            with pytest.raises(RemoteError) as info:
                client.prepare(specs, ACCOUNTS[:3])
            assert info.value.code == "PERMISSION_DENIED"
        assert _gauges(scrape) == {real_id: 4.0}
    finally:
        for client in clients:
            client.close()
        metrics.close()
        server.stop(grace=None).wait()
        holder.stop(grace=None).wait()
        coordinator.close()
        if node.gov.ledger is not None:
            node.gov.ledger.close()
