"""Attacker: an analyst on a plaintext loopback deployment (no mTLS).

What it sends: a ``PrepareAggregate`` (round 1, which reads the data) straight to a holder with the
analyst-subject header set to ``alice`` and a voucher bound to alice's
certificate, hoping the holder takes the header's word for who calls.

What it must learn: nothing: without a verified coordinator certificate a
holder believes no forwarded subject, so the voucher's certificate binding
refuses the request (PERMISSION_DENIED, ledgered).
"""

from __future__ import annotations

import grpc
import pytest

from tests.governance_fixtures import build_world, entries, start_in_process
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.engine.transport.tls import ANALYST_SUBJECT_HEADER
from unseen.v1 import holder_pb2_grpc


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    federation = start_in_process(build_world(tmp_path_factory.mktemp("header")))
    yield federation
    federation.close()


def test_a_forwarded_subject_is_not_believed_without_a_coordinator_certificate(fed, key):
    world, node = fed.world, fed.holders["bank-a"]
    voucher = world.voucher("bank-a", key.key_id, grantee_subject="alice")
    plan = compile_sql(
        "SELECT city, SUM(amount) FROM loans GROUP BY city",
        Catalog("bank-a", tuple(node.tables.values())),
    ).plan
    before = len(entries(world.ledgers["bank-a"]))
    with create_channel(fed.holder_addresses["bank-a"]) as channel:
        stub = holder_pb2_grpc.HolderStub(channel)
        stub.RegisterKey(serde.key_chunks(key.public), timeout=30)
        with pytest.raises(grpc.RpcError) as info:
            stub.PrepareAggregate(
                serde.aggregate_request(key.key_id, plan, [voucher], request_id="q-header"),
                timeout=30,
                metadata=((ANALYST_SUBJECT_HEADER, "alice"),),
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "bound to certificate subject alice" in (info.value.details() or "")
    logged = entries(world.ledgers["bank-a"], before)
    assert [(e.kind, e.outcome) for e in logged] == [("aggregate", "refused")]
