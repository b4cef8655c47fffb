"""An analyst makes a holder work for answers nobody will wait for.

Attacker: an analyst with a key registered at a holder. It sends: a ``PrepareAggregate`` (round
1 of a masked aggregate: the round that reads the data) that is within every size limit yet
expensive (a measure of ~960 nodes over 20 million rows, many
CPU-seconds of DuckDB work) with a deadline of one second, as often as it likes. Before the
fix the holder computed (and encrypted) every such answer to the end, long after the caller
had been told DEADLINE_EXCEEDED, so cheap requests bought unbounded holder CPU. It must learn
nothing, and the holder must stop the work when the caller's deadline passes: the call's
scope is cancelled and the running DuckDB query interrupted
(``unseen.engine.transport.cancellation``), which
the holder logs as a refusal with CallCancelled instead of keeping a prepared round 1; then
it answers the next caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest

from tests.attacks.test_huge_expressions_burn_a_holder import balanced_sum
from tests.hostile import method_path
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import CallCancelled
from unseen.engine.query.expr import Expr
from unseen.engine.query.plan import AggregatePlan, Encoding, Measure
from unseen.engine.transport import serde
from unseen.nodes.holder import HolderNode, serve_holder
from unseen.v1 import query_pb2

ROWS = 20_000_000


@pytest.fixture(scope="module")
def holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HolderNode, str]]:
    path = tmp_path_factory.mktemp("big") / "t.parquet"
    duckdb.sql(
        "COPY (SELECT range % 97 AS v, ['a', 'b', 'c'][range % 3 + 1] AS g "
        f"FROM range({ROWS})) TO '{path}' (FORMAT parquet)"
    )
    node = HolderNode.quickstart("h0", {"t": Path(path)})
    server, port = serve_holder(node, "127.0.0.1:0")
    try:
        yield node, f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()
        node.pool.close()


def _prepare(address: str, request: bytes, deadline: float) -> str:
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary(method_path("h0", "PrepareAggregate"))(request, timeout=deadline)
        except grpc.RpcError as exc:
            return exc.code().name
    return "OK"


def _request(key_id: str, measure: Expr, query_id: str) -> bytes:
    plan = AggregatePlan("t", None, (), (Measure(measure, Encoding.INTEGER),))
    return query_pb2.AggregateRequest(
        key_id=key_id, plan=serde.plan_to_proto(plan), request_id=query_id
    ).SerializeToString()


def _outcome(caplog: pytest.LogCaptureFixture, node: HolderNode, query_id: str) -> str | None:
    for record in caplog.records:
        if record.getMessage() == "PrepareAggregate refused: CallCancelled":
            return "stopped"
    if query_id in node.pending:  # round 1 ran to the end and waits for round 2
        return "answered"
    return None


def test_the_holder_stops_an_aggregate_when_its_deadline_passes(
    holder: tuple[HolderNode, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    node, address = holder
    raised: list[BaseException] = []
    prepare = node.prepare_aggregate

    def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            return prepare(*args, **kwargs)
        except BaseException as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(node, "prepare_aggregate", spy)
    key = AnalystKey.generate()
    key_id = node.keys.register(key.public)
    caplog.set_level(logging.INFO)
    request = _request(key_id, balanced_sum(240), "q-slow")
    assert _prepare(address, request, deadline=1) == "DEADLINE_EXCEEDED"
    # Wait for the holder to end the call one way or the other (unbounded work, once, took
    # minutes; the test's own timeout is the only clock here).
    outcome = None
    while outcome is None:
        time.sleep(0.1)
        outcome = _outcome(caplog, node, "q-slow")
    assert outcome == "stopped", outcome
    # Stopped inside DuckDB, not after the query ran to its end: the engine was interrupted.
    (stopped,) = raised
    assert isinstance(stopped, CallCancelled), stopped
    assert isinstance(stopped.__cause__, duckdb.InterruptException), repr(stopped.__cause__)
    # And the next caller is answered (its round 1 kept for round 2).
    assert _prepare(address, _request(key_id, balanced_sum(1), "q-next"), deadline=120) == "OK"
    assert "q-next" in node.pending
