"""Prometheus metrics on every node: a scrape after real queries counts them by RPC and
outcome, times them, counts refusals by class, gauges the key cache, and holds no data."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.transport.telemetry import NodeMetrics
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SCHEMA = [("region", "VARCHAR"), ("amount", "DOUBLE")]
SECRET_REGION = "Zanzibar-7731"
SECRET_AMOUNT = 123457.25


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
