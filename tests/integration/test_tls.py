"""Mutual TLS on every channel, plaintext only on loopback, certificate-bound vouchers."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.errors import ConfigError, RemoteError
from unseen.engine.governance.access import Governance
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.transport.rpc import create_channel, create_server
from unseen.engine.transport.tls import make_bundle
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder
from unseen.v1 import catalog_pb2, coordinator_pb2_grpc

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    files = make_bundle(
        root / "ok",
        [
            ("h0", "holder"),
            ("h1", "holder"),
            ("coord", "coordinator"),
            ("alice", "analyst"),
            ("mallory", "analyst"),
        ],
    )
    intruder = make_bundle(root / "other", [("eve", "analyst")])["eve"]
    return files, intruder


@pytest.fixture(scope="module")
def tls_federation(pki, tmp_path_factory):
    files, _ = pki
    root = tmp_path_factory.mktemp("tlsdata")
    issuer = SigningKey.generate()
    servers, addresses = [], []
    for i in range(2):
        rows = [("a", j) for j in range(10)] + [("b", j) for j in range(10)]
        node = HolderNode.quickstart(
            f"h{i}", {"t": write_shard(root / f"h{i}.parquet", SCHEMA, rows)}
        )
        node.governance = Governance(
            f"h{i}",
            VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key}),
        )
        server, port = serve_holder(node, "127.0.0.1:0", files[f"h{i}"])
        servers.append(server)
        addresses.append(f"localhost:{port}")
    coordinator = Coordinator.connect(addresses, tls=files["coord"])
    cserver, cport = serve_coordinator(coordinator, "127.0.0.1:0", files["coord"])
    yield f"localhost:{cport}", issuer
    cserver.stop(None).wait()
    coordinator.close()
    for server in servers:
        server.stop(None).wait()


def _vouchers(issuer, key, subject):
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    return [
        issue(
            issuer,
            grantee=key.key_id,
            holder=f"h{i}",
            scope={"t": {"g": ["group"], "v": ["aggregate"]}},
            purpose="test",
            not_after=until,
            grantee_subject=subject,
        ).encode()
        for i in range(2)
    ]


def test_mtls_query_with_a_certificate_bound_voucher(pki, tls_federation, key):
    files, _ = pki
    address, issuer = tls_federation
    with Client(
        address, key=key, tls=files["alice"], vouchers=_vouchers(issuer, key, "alice")
    ) as client:
        result = client.query("SELECT g, SUM(v), COUNT(*) FROM t GROUP BY g ORDER BY g")
    assert result.rows == [["a", 90, 20], ["b", 90, 20]]


def test_voucher_bound_to_another_certificate_is_refused(pki, tls_federation, key):
    files, _ = pki
    address, issuer = tls_federation
    with (
        Client(
            address, key=key, tls=files["mallory"], vouchers=_vouchers(issuer, key, "alice")
        ) as client,
        pytest.raises(RemoteError) as info,
    ):
        client.query("SELECT SUM(v) FROM t")
    assert info.value.code == "PERMISSION_DENIED"
    assert "bound to certificate subject alice" in info.value.reason
    assert "presented mallory" in info.value.reason


def test_clients_without_a_ca_signed_certificate_are_turned_away(pki, tls_federation, key):
    _, intruder = pki
    address, _ = tls_federation
    with (
        Client(address, key=key, tls=intruder, timeout=5) as client,
        pytest.raises(RemoteError) as info,
    ):
        client.catalog()
    assert info.value.code == "UNAVAILABLE"
    # Plaintext to a TLS server: the handshake never completes.
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as plain:
        coordinator_pb2_grpc.CoordinatorStub(channel).GetCatalog(
            catalog_pb2.GetCatalogRequest(), timeout=5
        )
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_is_refused_off_loopback():
    with pytest.raises(ConfigError, match=r"refusing to serve plaintext on 0\.0\.0\.0:0"):
        create_server("0.0.0.0:0", [], [])
    with pytest.raises(ConfigError, match=r"refusing a plaintext channel to 10\.1\.2\.3:7000"):
        create_channel("10.1.2.3:7000")
