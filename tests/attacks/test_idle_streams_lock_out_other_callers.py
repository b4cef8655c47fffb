"""An analyst holds every call slot of a node with request streams that never finish.

Attacker: an analyst (certificate ``mallory``) who can reach the coordinator and a holder.
It sends: 64 ``RegisterKey`` client streams to each, every one sending its first key chunk
and then nothing, with a long deadline (before the fix, a node admitted 64 calls in all, so
this locked a holder out for as long as the streams lasted: every other call, from anyone,
was answered RESOURCE_EXHAUSTED). It must learn nothing, and it must not deny service:

* concurrency is limited per caller identity (certificate name under mTLS, peer address
  otherwise) as well as globally, so while mallory's streams are held another analyst's
  query through the coordinator is answered, correctly;
* a request stream that sends nothing for the configured idle time
  (``UNSEEN_STREAM_IDLE_SECONDS``) is cancelled by the server, so even a caller sharing the
  attacker's identity gets the node back long before the attacker's deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.attacks.held_streams import HeldStreams
from tests.shards import Reference, write_shards
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.transport.tls import TlsFiles, channel_credentials, make_bundle
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]
SQL = "SELECT g, COUNT(*), SUM(v) FROM t GROUP BY g ORDER BY g"
STREAMS = 64  # the global admission limit of unseen.engine.transport.rpc.create_server


@dataclass
class Nodes:
    coordinator: str  # address
    holder: str
    reference: Reference
    tls: dict[str, TlsFiles] | None


def _start(root: Path, tls: dict[str, TlsFiles] | None) -> Iterator[Nodes]:
    rows = [(g, v) for g in ("a", "b") for v in range(10)]
    holders, reference = write_shards(SCHEMA, {"h0": (root / "h0.parquet", rows)})
    # h0's answer is masked by a peer's (an aggregate needs two holders); the peer hosts nothing.
    nodes = {
        "h0": HolderNode.quickstart("h0", holders["h0"]),
        "peer": HolderNode.quickstart("peer", {}),
    }
    servers, addresses = [], {}
    host = "localhost" if tls else "127.0.0.1"  # certificates name localhost
    for name, node in nodes.items():
        server, port = serve_holder(node, "127.0.0.1:0", tls[name] if tls else None)
        servers.append(server)
        addresses[name] = f"{host}:{port}"
    coordinator = Coordinator.connect(list(addresses.values()), tls=tls["coord"] if tls else None)
    cserver, cport = serve_coordinator(coordinator, "127.0.0.1:0", tls["coord"] if tls else None)
    try:
        yield Nodes(f"{host}:{cport}", addresses["h0"], reference, tls)
    finally:
        cserver.stop(None).wait()
        coordinator.close()
        for server in servers:
            server.stop(None).wait()
        for node in nodes.values():
            node.pool.close()


def _credentials(nodes: Nodes, name: str) -> grpc.ChannelCredentials | None:
    return channel_credentials(nodes.tls[name]) if nodes.tls else None


def _wait_until_refused(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    """Return once a health check from this caller is shed: its streams hold all it may."""
    channel = (
        grpc.secure_channel(address, credentials)
        if credentials is not None
        else grpc.insecure_channel(address)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(200):
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return
            time.sleep(0.1)
    raise AssertionError(f"{address} never refused the attacker's extra calls")


def _answer_is_right(nodes: Nodes, key: AnalystKey, who: str | None) -> None:
    with Client(
        nodes.coordinator, key=key, timeout=30, tls=nodes.tls[who] if nodes.tls and who else None
    ) as client:
        verdict = nodes.reference.check(client, SQL, 5)[2]
    assert verdict.problems == [], verdict.problems


@pytest.fixture
def mtls_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Nodes]:
    # Streams stay held for the whole test: here the per-caller limit alone must help.
    monkeypatch.setenv("UNSEEN_STREAM_IDLE_SECONDS", "300")
    files = make_bundle(
        tmp_path / "pki",
        [
            ("h0", "holder"),
            ("peer", "holder"),
            ("coord", "coordinator"),
            ("alice", "analyst"),
            ("mallory", "analyst"),
        ],
    )
    yield from _start(tmp_path, files)


@pytest.fixture
def idle_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Nodes]:
    monkeypatch.setenv("UNSEEN_STREAM_IDLE_SECONDS", "1")
    yield from _start(tmp_path, None)


def test_held_streams_from_one_analyst_do_not_lock_out_another(mtls_nodes: Nodes):
    nodes = mtls_nodes
    mallory = _credentials(nodes, "mallory")
    public = AnalystKey.generate().public
    with (
        HeldStreams(nodes.holder, "h0", public, STREAMS, mallory, deadline=120) as at_holder,
        HeldStreams(nodes.coordinator, "coordinator", public, STREAMS, mallory) as at_coordinator,
    ):
        _wait_until_refused(nodes.holder, mallory)
        _wait_until_refused(nodes.coordinator, mallory)
        # Alice is a different caller at the coordinator; the coordinator a different one at h0.
        _answer_is_right(nodes, AnalystKey.generate(), "alice")
        assert at_holder.running() > 0 and at_coordinator.running() > 0  # still attacking
        shed = at_holder.codes(finished_only=True) + at_coordinator.codes(finished_only=True)
    assert set(shed) == {"RESOURCE_EXHAUSTED"}, sorted(set(shed))


def test_idle_streams_are_cancelled_and_the_node_comes_back(idle_nodes: Nodes):
    nodes = idle_nodes
    public = AnalystKey.generate().public
    # The attacker's deadline is long; the server's idle limit (1 s) ends the streams first.
    with HeldStreams(nodes.holder, "h0", public, STREAMS, deadline=90) as held:
        codes = held.codes()
    assert "CANCELLED" in codes, sorted(set(codes))
    assert set(codes) <= {"CANCELLED", "RESOURCE_EXHAUSTED"}, sorted(set(codes))
    # The same identity (every loopback caller is 127.0.0.1) is served again.
    _answer_is_right(nodes, AnalystKey.generate(), None)
