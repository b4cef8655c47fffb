"""Prometheus metrics on every node: a scrape after real queries counts them by RPC and
outcome, times them, counts refusals by class, gauges the key and model caches and each
voucher's quota and privacy budget left, and holds no data."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.dp_world import build_dp_world
from tests.governance_fixtures import ACCOUNTS, CITIES
from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.config import load_config
from unseen.engine.governance.voucher import SignedVoucher
from unseen.engine.transport.telemetry import NodeMetrics
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SCHEMA = [("region", "VARCHAR"), ("amount", "DOUBLE")]
SECRET_REGION = "Zanzibar-7731"
SECRET_AMOUNT = 123457.25
DP_SQL = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city"


def _scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def test_nodes_count_time_and_classify_calls_without_any_data(tmp_path: Path, key):
    rows = [(SECRET_REGION, SECRET_AMOUNT)] * 6 + [("north", 10.5)] * 7
    table = write_shard(tmp_path / "t.csv", SCHEMA, rows)
    holder_metrics, coordinator_metrics = (
        NodeMetrics("holder", "h1"),
        NodeMetrics("coordinator", "c"),
    )
    node = HolderNode.quickstart("h1", {"t": table})
    holder, holder_port = serve_holder(node, "127.0.0.1:0", metrics=holder_metrics)
    # A second holder without the table masks h1's answer (no holder answers alone).
    peer, peer_port = serve_holder(HolderNode.quickstart("h2", {}), "127.0.0.1:0")
    coordinator = Coordinator.connect([f"127.0.0.1:{holder_port}", f"127.0.0.1:{peer_port}"])
    server, port = serve_coordinator(coordinator, "127.0.0.1:0", metrics=coordinator_metrics)
    client = Client(f"127.0.0.1:{port}", key=key)
    try:
        holder_scrape = holder_metrics.serve("127.0.0.1:0")
        coordinator_scrape = coordinator_metrics.serve("127.0.0.1:0")
        result = client.query("SELECT region, SUM(amount) AS s FROM t GROUP BY region")
        assert sorted(r[0] for r in result.rows) == sorted(["north", SECRET_REGION])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10
                )
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("an unknown service must be NOT_FOUND")

        text, samples = _scrape(coordinator_scrape)
        assert samples[("unseen_requests_total", (("code", "OK"), ("rpc", "Aggregate")))] == 1
        assert samples[("unseen_request_seconds_count", (("rpc", "Aggregate"),))] == 1
        assert samples[("unseen_refusals_total", (("reason", "not_found"),))] == 1
        assert samples[("unseen_requests_total", (("code", "NOT_FOUND"), ("rpc", "Check")))] == 1
        assert samples[("unseen_keys_cached", ())] == 1
        holder_text, holder_samples = _scrape(holder_scrape)
        assert (
            holder_samples[("unseen_requests_total", (("code", "OK"), ("rpc", "Aggregate")))] == 1
        )
        assert holder_samples[("unseen_keys_cached", ())] == 1
        assert holder_samples[("unseen_node_info", (("name", "h1"), ("role", "holder")))] == 1
        for scraped in (text, holder_text):
            assert SECRET_REGION not in scraped
            assert "123457" not in scraped and "1.2345725e" not in scraped
    finally:
        client.close()
        server.stop(grace=None).wait()
        coordinator.close()
        holder.stop(grace=None).wait()
        peer.stop(grace=None).wait()
        node.pool.close()
        holder_metrics.close()
        coordinator_metrics.close()


def test_holders_gauge_quota_and_privacy_budget_left_per_voucher_and_no_data(tmp_path: Path, key):
    """A governed dp federation: each charge sets the voucher's quota and rho left, by
    voucher id, and nothing the tables hold (cities, accounts, officers) is scraped."""
    world = build_dp_world(tmp_path / "world")
    vouchers = [
        world.voucher(h, key.key_id, privacy_rho="2", quota=5) for h in ("bank-a", "bank-b", "grid")
    ]
    ids = {
        SignedVoucher.decode(v).voucher.holder: SignedVoucher.decode(v).voucher_id for v in vouchers
    }
    servers, nodes, metrics = [], [], {}
    try:
        addresses = []
        for name, path in world.configs.items():
            node = HolderNode.from_config(load_config(path))
            metrics[name] = NodeMetrics("holder", name)
            server, port = serve_holder(node, "127.0.0.1:0", metrics=metrics[name])
            servers.append(server)
            nodes.append(node)
            addresses.append(f"127.0.0.1:{port}")
        coordinator = Coordinator.connect(addresses)
        coordinator_metrics = NodeMetrics("coordinator", "c")
        server, port = serve_coordinator(coordinator, "127.0.0.1:0", metrics=coordinator_metrics)
        servers.insert(0, server)
        client = Client(f"127.0.0.1:{port}", key=key, vouchers=vouchers)
        try:
            client.query(DP_SQL)
            client.query(DP_SQL)
        finally:
            client.close()
            coordinator.close()
        scraped = {n: _scrape(m.serve("127.0.0.1:0")) for n, m in metrics.items()}
        scraped["coordinator"] = _scrape(coordinator_metrics.serve("127.0.0.1:0"))
        for bank in ("bank-a", "bank-b"):
            _text, samples = scraped[bank]
            label = (("voucher", ids[bank]),)
            # Two answered queries of five; each charged rho 1/2 of 2.
            assert samples[("unseen_voucher_quota_left", label)] == 3
            assert samples[("unseen_voucher_rho_left", label)] == 1.0
            assert not any(
                name.startswith("unseen_voucher") and labels != label for name, labels in samples
            )
        assert not any(n.startswith("unseen_voucher") for n, _ in scraped["grid"][1])
        assert scraped["coordinator"][1][("unseen_models_cached", ())] == 0
        for text, _samples in scraped.values():
            for value in (*CITIES, *ACCOUNTS[:3], "acct-", "officer-"):
                assert value not in text
    finally:
        for server in servers:
            server.stop(grace=None).wait()
        for node in nodes:
            if node.gov.ledger is not None:
                node.gov.ledger.close()
        for m in metrics.values():
            m.close()
