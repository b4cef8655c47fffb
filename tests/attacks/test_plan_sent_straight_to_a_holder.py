"""Attacker: a coordinator (or anyone who reaches a holder on a plaintext loopback port).

What it sends: a plan straight to a holder's round 1 (``PrepareAggregate``), never checked by a
coordinator, grouping by a column whose policy does not allow grouping (a
floating-point column, groupable nowhere in quick-start) with a made-up
domain of its values.

What it must learn: nothing: the holder checks every plan against its own
catalog and policy before it builds any SQL, and refuses.
"""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.query.expr import Column
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.v1 import holder_pb2_grpc

SCHEMA = [("g", "VARCHAR"), ("rate", "DOUBLE"), ("v", "BIGINT")]


def test_a_holder_refuses_a_plan_its_policy_forbids(tmp_path, key):
    rows = [("a", 0.5, i) for i in range(10)] + [("a", 0.25, i) for i in range(10)]
    fed = start_federation({"h0": {"t": write_shard(tmp_path / "h0.parquet", SCHEMA, rows)}})
    try:
        plan = AggregatePlan(
            "t",
            None,
            (GroupColumn("rate", (0.25, 0.5)),),
            (Measure(Column("v"), Encoding.INTEGER),),
        )
        with create_channel(fed.holder_addresses["h0"]) as channel:
            stub = holder_pb2_grpc.HolderStub(channel)
            stub.RegisterKey(serde.key_chunks(key.public), timeout=30)
            with pytest.raises(grpc.RpcError) as info:
                stub.PrepareAggregate(
                    serde.aggregate_request(key.key_id, plan, request_id="q-straight"), timeout=30
                )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "rate" in (info.value.details() or "")
    finally:
        fed.close()
