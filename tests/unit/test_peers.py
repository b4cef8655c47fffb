"""unseen.engine.transport.peers: the one NOT_FOUND retry, the one RpcError translation, reply
shapes.

The reply-shape tests talk to a real gRPC server on loopback that misbehaves on
purpose (a holder sending a second header, a ciphertext out of place, too few
ciphertexts, a score without a header): the peer refuses each with INTERNAL
naming the holder, before any of it reaches the coordinator's arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from unseen.engine.errors import RemoteError
from unseen.engine.query.plan import AggregatePlan
from unseen.engine.transport import serde
from unseen.engine.transport.peers import HolderPeer, retry_not_found, translated


class _Status(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_not_found_registers_once_and_retries_once():
    calls, recoveries = [], []

    def call() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RemoteError("NOT_FOUND", "unknown key")
        return "answer"

    assert retry_not_found(call, lambda: recoveries.append(1)) == "answer"
    assert len(calls) == 2 and len(recoveries) == 1


def test_a_second_not_found_is_not_retried_again():
    recoveries = []

    def call() -> str:
        raise RemoteError("NOT_FOUND", "unknown key")

    with pytest.raises(RemoteError):
        retry_not_found(call, lambda: recoveries.append(1))
    assert len(recoveries) == 1


def test_other_failures_are_not_retried():
    recoveries = []

    def call() -> str:
        raise RemoteError("PERMISSION_DENIED", "no voucher")

    with pytest.raises(RemoteError, match="no voucher"):
        retry_not_found(call, lambda: recoveries.append(1))
    assert recoveries == []


def test_a_failed_call_becomes_a_remote_error_naming_the_peer():
    with pytest.raises(RemoteError) as info, translated("holder grid (127.0.0.1:1)"):
        raise _Status(grpc.StatusCode.UNAVAILABLE, "connection refused")
    assert info.value.code == "UNAVAILABLE"
    assert info.value.reason.startswith("holder grid (127.0.0.1:1) is unavailable")
    assert isinstance(info.value.__cause__, grpc.RpcError)


def test_our_servers_reasons_pass_through():
    with pytest.raises(RemoteError) as info, translated("holder grid"):
        raise _Status(grpc.StatusCode.PERMISSION_DENIED, "holder grid: no voucher for power")
    assert info.value.code == "PERMISSION_DENIED" and info.value.reason == (
        "holder grid: no voucher for power"
    )


# -- reply shapes, against a real server that misbehaves ----------------------------

HEADER = serde.header_to_proto(2, (), ["x"])
CT = [serde.ciphertext_reply(i, b"c%d" % i) for i in range(2)]
SHAPES = {
    "ok": [HEADER, *CT],
    "no header": [CT[0]],
    "second header": [HEADER, CT[0], HEADER],
    "out of place": [HEADER, CT[0], CT[0]],
    "too few": [HEADER, CT[1]],
    "beyond the count": [HEADER, CT[0], CT[1], serde.ciphertext_reply(2, b"c2")],
}


@pytest.fixture
def misbehaving() -> Iterator[dict[str, Any]]:
    """A Holder service whose Aggregate streams ``script["replies"]`` verbatim."""
    script: dict[str, Any] = {"replies": []}

    def aggregate(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for reply in script["replies"]:
            yield reply.SerializeToString()

    def score(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            pass
        yield serde.score_reply_ciphertext(0, b"x").SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "unseen.v1.Holder",
        {
            "Aggregate": grpc.unary_stream_rpc_method_handler(aggregate),
            "Score": grpc.stream_stream_rpc_method_handler(score),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    script["address"] = f"127.0.0.1:{port}"
    yield script
    server.stop(None)


def _plan() -> AggregatePlan:
    from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
    from unseen.engine.query.plan import SlotCodec
    from unseen.engine.query.sql import compile_sql
    from unseen.engine.query.types import SqlType

    table = TableInfo("t", (ColumnInfo("v", SqlType("INTEGER"), frozenset({"aggregate"})),))
    return compile_sql("SELECT SUM(v) FROM t", Catalog("x", (table,)), SlotCodec()).plan


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_an_aggregate_reply_of_the_wrong_shape_is_refused_naming_the_holder(misbehaving, shape):
    misbehaving["replies"] = SHAPES[shape]
    peer = HolderPeer(misbehaving["address"])
    try:
        if shape == "ok":
            answer = peer.aggregate("k" * 64, _plan())
            assert answer.ciphertexts == [b"c0", b"c1"] and answer.holders == ("x",)
            return
        with pytest.raises(RemoteError) as info:
            peer.aggregate("k" * 64, _plan())
        assert info.value.code == "INTERNAL"
        assert info.value.reason.startswith(f"holder {misbehaving['address'][0]}")
    finally:
        peer.close()


def test_a_score_reply_without_a_header_is_refused(misbehaving):
    peer = HolderPeer(misbehaving["address"])
    try:
        with pytest.raises(RemoteError, match="without a header"):
            peer.score("k" * 64, "m" * 64, ["e1"])
    finally:
        peer.close()


def test_deadlines_are_capped_by_the_callers_budget():
    peer = HolderPeer("127.0.0.1:1")
    try:
        assert peer._deadline("aggregate") == 120.0
        assert peer._deadline("aggregate", 2.5) == 2.5
        assert peer._deadline("catalog", 1000.0) == 15.0
        peer.timeout = 7.0  # the analyst's --timeout replaces the defaults
        assert peer._deadline("score") == 7.0
    finally:
        peer.close()
