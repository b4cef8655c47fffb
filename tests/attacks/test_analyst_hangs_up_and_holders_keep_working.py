"""An analyst starts expensive queries at the coordinator and hangs up at once.

Attacker: an analyst with a registered key. It sends the coordinator an ``Aggregate`` that is
within every size limit yet expensive at the holder (a measure of ~960 nodes over 20 million
rows) with a long deadline, then cancels its call as soon as the holder is at work, as often
as it likes. Before the fix the coordinator's calls to the holders lived on, each with the
analyst's long deadline, so one cheap hang-up bought a holder's full round 1 (many
CPU-seconds of DuckDB work) that nobody would read. It must learn nothing, and the holders'
work must stop when the analyst's call ends (the holder's round 1 ends CallCancelled, not
answered): the coordinator's fan-out runs in the analyst's
call scope (``unseen.engine.transport.cancellation``) and cancels its outgoing holder calls with
it, so the
holder's own call scope interrupts the running DuckDB query.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest

from tests.attacks.test_huge_expressions_burn_a_holder import balanced_sum
from tests.hostile import method_path
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import CallCancelled
from unseen.engine.query.plan import AggregatePlan, Encoding, Measure
from unseen.engine.transport import serde
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

ROWS = 20_000_000


class Spy:
    """Wraps a holder's round 1: tells when it starts and how it ended."""

    def __init__(self, node: HolderNode):
        self.started, self.ended = threading.Event(), threading.Event()
        self.outcome: list[object] = []
        self._prepare = node.prepare_aggregate

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        try:
            result = self._prepare(*args, **kwargs)
        except BaseException as exc:
            self.outcome.append(exc)
            raise
        else:
            self.outcome.append("answered")
            return result
        finally:
            self.ended.set()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HolderNode, str]]:
    path = tmp_path_factory.mktemp("hangup") / "t.parquet"
    duckdb.sql(f"COPY (SELECT range % 97 AS v FROM range({ROWS})) TO '{path}' (FORMAT parquet)")
    # h0 hosts the table; a peer hosting nothing masks its answer (two holders take part).
    nodes = [HolderNode.quickstart("h0", {"t": Path(path)}), HolderNode.quickstart("peer", {})]
    servers, addresses = [], []
    for node in nodes:
        server, port = serve_holder(node, "127.0.0.1:0")
        servers.append(server)
        addresses.append(f"127.0.0.1:{port}")
    coordinator = Coordinator.connect(addresses)
    cserver, cport = serve_coordinator(coordinator, "127.0.0.1:0")
    try:
        yield nodes[0], f"127.0.0.1:{cport}"
    finally:
        cserver.stop(None).wait()
        coordinator.close()
        for server in servers:
            server.stop(None).wait()
        for node in nodes:
            node.pool.close()


def test_the_holder_stops_when_the_analyst_hangs_up(
    world: tuple[HolderNode, str], monkeypatch: pytest.MonkeyPatch
):
    node, address = world
    key = AnalystKey.generate()
    with Client(address, key=key, timeout=60) as client:
        key_id = client.register_key()
    spy = Spy(node)
    monkeypatch.setattr(node, "prepare_aggregate", spy)
    plan = AggregatePlan("t", None, (), (Measure(balanced_sum(240), Encoding.INTEGER),))
    request = serde.aggregate_request(key_id, plan).SerializeToString()
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_stream(method_path("coordinator", "Aggregate"))(request, timeout=600)
        # Wait (on the test's own timeout) until the holder reads, then hang up.
        assert spy.started.wait(120), "the holder never started round 1"
        call.cancel()
        with pytest.raises(grpc.RpcError) as info:
            list(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert spy.ended.wait(600), "the holder never ended round 1"
    (outcome,) = spy.outcome
    # Stopped, not answered: in DuckDB (interrupted) or before it started, as the race goes.
    # (That the interrupt itself works is test_work_outlives_the_deadline's to show.)
    assert isinstance(outcome, CallCancelled), outcome
    cause = outcome.__cause__
    assert cause is None or isinstance(cause, duckdb.InterruptException), repr(cause)
