"""Attacker: an analyst with a second coordinator that reaches only some holders.

Quick-start: the analyst starts its own coordinator with ``--holder h0`` only and
asks it the city query; the old protocol returned ``h0``'s own subtotals
(``Alpha``: 40 rows, a group the federation suppresses). ``h0`` must refuse to
answer without at least one other participating holder.

Governed (mTLS from one CA, vouchers naming the federation ``h0, h1, h2``): a
coordinator certified by the CA but started with ``h0`` and ``h1`` only would
get their sum, in which ``Alpha`` (40 + 40 rows, the 3 rows at ``h2`` missing)
is no longer suppressed. Each holder must refuse: the participants are not the
holders the voucher names. A direct caller listing a mask key it made itself
for a peer is refused too: that key is not certified as a holder's.
"""

from __future__ import annotations

import datetime as dt
import os

import grpc
import pytest

from tests.attacks._city import SQL, write_city
from unseen.engine.client import Client
from unseen.engine.crypto import bfv
from unseen.engine.errors import RemoteError
from unseen.engine.governance.access import Governance
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.privacy.masks import MaskKey, Participant
from unseen.engine.query.plan import SlotCodec
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.engine.transport.tls import make_bundle
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder
from unseen.v1 import catalog_pb2, holder_pb2_grpc


def test_a_coordinator_with_one_holder_gets_no_answer(tmp_path, federation_factory, key):
    fed = federation_factory(write_city(tmp_path))
    rogue = Coordinator.connect([fed.holder_addresses["h0"]])
    server, port = serve_coordinator(rogue, "127.0.0.1:0")
    try:
        with Client(f"127.0.0.1:{port}", key=key) as client, pytest.raises(RemoteError) as info:
            client.query(SQL)
        assert info.value.code == "PERMISSION_DENIED"
        assert "at least 2" in info.value.reason
    finally:
        server.stop(None).wait()
        rogue.close()


@pytest.fixture
def governed(tmp_path, key):  # type: ignore[no-untyped-def]
    files = make_bundle(
        tmp_path / "pki",
        [
            ("h0", "holder"),
            ("h1", "holder"),
            ("h2", "holder"),
            ("coord", "coordinator"),
            ("rogue", "coordinator"),
            ("alice", "analyst"),
        ],
    )
    issuer = SigningKey.generate()
    addresses, servers = {}, []
    for name, tables in write_city(tmp_path / "data").items():
        node = HolderNode.quickstart(name, tables)
        node.governance = Governance(
            name, VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key})
        )
        server, port = serve_holder(node, "127.0.0.1:0", files[name])
        servers.append(server)
        addresses[name] = f"localhost:{port}"
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    vouchers = [
        issue(
            issuer,
            grantee=key.key_id,
            holder=name,
            scope={"loans": {"city": ["group"], "amount": ["aggregate"]}},
            purpose="attack test",
            not_after=until,
            grantee_subject="alice",
            federation=["h0", "h1", "h2"],
        ).encode()
        for name in addresses
    ]
    coordinators = []

    def coordinator(names, cert):  # type: ignore[no-untyped-def]
        coord = Coordinator.connect([addresses[n] for n in names], tls=files[cert])
        server, port = serve_coordinator(coord, "127.0.0.1:0", files[cert])
        coordinators.append((coord, server))
        return Client(f"localhost:{port}", key=key, tls=files["alice"], vouchers=vouchers)

    yield coordinator, files, addresses, vouchers
    for coord, server in coordinators:
        server.stop(None).wait()
        coord.close()
    for server in servers:
        server.stop(None).wait()


def test_the_governed_federation_answers_and_a_subset_is_refused(governed):
    coordinator, *_ = governed
    with coordinator(["h0", "h1", "h2"], "coord") as client:
        rows = {row[0]: row[1:] for row in client.query(SQL).rows}
    assert rows["Alpha"] == [None, None]
    assert rows["Beta"][0] == 30
    with coordinator(["h0", "h1"], "rogue") as client, pytest.raises(RemoteError) as info:
        client.query(SQL)
    assert info.value.code == "PERMISSION_DENIED"
    assert "not the holders the voucher names" in info.value.reason


def test_a_peer_key_the_caller_made_is_refused(governed, key):
    _, files, addresses, vouchers = governed
    # The analyst's own certificate and voucher, straight to h0.
    channel = create_channel(addresses["h0"], files["alice"])
    stub = holder_pb2_grpc.HolderStub(channel)
    stub.RegisterKey(serde.key_chunks(key.public), timeout=30)
    catalog = serde.catalog_from_proto(stub.GetCatalog(catalog_pb2.GetCatalogRequest(), timeout=10))
    plan = compile_sql(SQL, catalog, SlotCodec(slots=bfv.PARAMS.slots)).plan
    query_id = os.urandom(8).hex()
    request = serde.aggregate_request(key.key_id, plan, vouchers, request_id=query_id)
    try:
        stub.PrepareAggregate(request, timeout=30)
    except grpc.RpcError as exc:
        # Holders that answer query RPCs only to the coordinator stop it here.
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        return
    fakes = [Participant(name, MaskKey.generate().public) for name in ("h1", "h2")]
    masked = serde.mask_round_request(
        key.key_id, query_id, os.urandom(32), [catalog.mask_key, *fakes], []
    )
    with pytest.raises(grpc.RpcError) as info:
        next(stub.Aggregate(masked, timeout=30))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "trusted CA" in info.value.details()
    channel.close()
