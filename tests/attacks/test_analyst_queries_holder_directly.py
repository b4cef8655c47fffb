"""Attacker: an analyst with its own valid analyst certificate, key and voucher.

What it sends: ``RegisterKey`` then ``PrepareAggregate`` (round 1, the RPC
that reads the data) or ``Aggregate`` (round 2) straight to one holder (not
through the coordinator), with its own key and a voucher issued to it and
bound to its certificate, hoping to decrypt that holder's own per-group
COUNT/SUM — a subtotal the federation's answer never shows.

What it must learn: nothing but the refusal. A holder behind mTLS answers
query RPCs (PrepareAggregate, Aggregate, PrepareModel, RegisterModel, Score)
only to a peer
certified as the coordinator; the refusal is PERMISSION_DENIED, given before
any data is read, and written to the holder's ledger.
"""

from __future__ import annotations

import grpc
import pytest

from tests.attacks.holder_pki import start_governed_holder
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.v1 import holder_pb2_grpc


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    governed = start_governed_holder(tmp_path_factory.mktemp("direct"))
    yield governed
    governed.close()


def test_analyst_certificate_cannot_aggregate_at_a_holder(holder, key: AnalystKey):
    alice = holder.files["alice"]
    before = len(holder.entries())
    with pytest.raises(grpc.RpcError) as info:
        holder.aggregate(
            alice, key, "SELECT g, SUM(v) FROM t GROUP BY g", [holder.voucher(key, "alice")]
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    entries = holder.entries()[before:]
    assert [(e.kind, e.outcome) for e in entries] == [("aggregate", "refused")]
    assert "only to the coordinator" in entries[0].reason
    assert entries[0].analyst == key.key_id


def test_analyst_certificate_cannot_ask_for_round_two_either(holder, key: AnalystKey):
    before = len(holder.entries())
    request = serde.mask_round_request(key.key_id, "q-direct", bytes(32), [], [])
    with create_channel(holder.address, holder.files["alice"]) as channel:
        stub = holder_pb2_grpc.HolderStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Aggregate(request, timeout=30))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    entries = holder.entries()[before:]
    assert [(e.kind, e.outcome) for e in entries] == [("aggregate", "refused")]


@pytest.mark.parametrize("rpc", ["PrepareModel", "RegisterModel", "Score"])
def test_analyst_certificate_cannot_use_the_scoring_rpcs(holder, key: AnalystKey, rpc):
    before = len(holder.entries())
    with create_channel(holder.address, holder.files["alice"]) as channel:
        stub = holder_pb2_grpc.HolderStub(channel)
        # An empty stream: the refusal must come from who calls, not from what is sent.
        with pytest.raises(grpc.RpcError) as info:
            call = getattr(stub, rpc)(iter(()), timeout=30)
            if rpc == "Score":
                list(call)  # a stream answers (or refuses) when read
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    kinds = {"PrepareModel": "prepare", "RegisterModel": "register_model", "Score": "score"}
    entries = holder.entries()[before:]
    assert [(e.kind, e.outcome) for e in entries] == [(kinds[rpc], "refused")]


def test_the_coordinator_certificate_is_still_answered(holder, key: AnalystKey):
    reply = holder.aggregate(
        holder.files["coord"],
        key,
        "SELECT g, SUM(v) FROM t GROUP BY g",
        [holder.voucher(key, "alice")],
        forwarded_subject="alice",
    )
    query_id, failing, receipts = serde.failing_groups_from_reply(reply)
    assert query_id == "q-direct" and failing == {} and len(receipts) == 1
    assert holder.entries()[-1].outcome == "answered"
