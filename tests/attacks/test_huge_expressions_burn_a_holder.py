"""An analyst sends a holder a plan whose measure is one enormous (but shallow) expression.

Attacker: an analyst with a key registered at a holder. It sends: an ``Aggregate`` whose
measure is a balanced sum of 24 000 products ``v * i`` — about 96 000 expression nodes, 17
levels deep, under a megabyte on the wire. Before the fix this was within the limits (depth
40, 100 000 nodes); a SQLite holder spent ~90 CPU-seconds and 1.9 GB on it and kept running
after the caller's deadline. It must learn nothing, and the holder must refuse the plan
before decoding it into objects or building any SQL: a plan has at most
``Limits.max_nodes`` (1 000) expression nodes, counted on the wire message. The holder stays
cheap (a bounded number of CPU-seconds and MiB) and keeps answering other callers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.attacks.target import Target, start_target
from tests.hostile import MemoryWatch
from unseen.engine.query.expr import Binary, BinaryOp, Column, Expr, InList, Literal
from unseen.engine.query.plan import AggregatePlan, Encoding, Limits, Measure
from unseen.engine.transport import serde
from unseen.v1 import query_pb2


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with start_target(tmp_path_factory.mktemp("expressions")) as started:
        started.register_key("h1")
        yield started


def balanced_sum(leaves: int) -> Expr:
    level: list[Expr] = [Binary(BinaryOp.MUL, Column("v"), Literal(i)) for i in range(leaves)]
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [Binary(BinaryOp.ADD, *pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return level[0]


def _request(target: Target, measure: Expr, where: Expr | None = None) -> bytes:
    plan = AggregatePlan("t", where, (), (Measure(measure, Encoding.INTEGER),))
    return query_pb2.AggregateRequest(
        key_id=target.key.key_id, plan=serde.plan_to_proto(plan)
    ).SerializeToString()


def _attack(target: Target, request: bytes) -> tuple[str, str, float, int]:
    """Fire at h1 while an honest query runs; (status, details, CPU-s spent, RSS growth)."""
    cpu, rss = target.cpu("h1"), target.rss("h1")
    honest: list[list[str]] = []
    with MemoryWatch({"h1": target.pid("h1")}, interval=0.05) as watch:
        worker = threading.Thread(target=lambda: honest.append(target.problems()))
        worker.start()
        code, details = target.call("h1", "Aggregate", request, deadline=30)
        worker.join()
    spent, growth = target.cpu("h1") - cpu, watch.window_peak()["h1"] - rss
    print(f"{code} {details[:80]!r}: h1 spent {spent:.1f} CPU-s, grew by {growth >> 20} MiB")
    assert honest == [[]], honest  # the honest analyst's answer was right
    return code, details, spent, growth


def test_a_96k_node_measure_is_refused_cheaply(target: Target):
    request = _request(target, balanced_sum(24_000))
    code, details, cpu, growth = _attack(target, request)
    assert code == "INVALID_ARGUMENT", (code, details)
    assert f"more than {Limits().max_nodes} nodes" in details
    # The honest query's own work is in these numbers too; the attack once cost ~90 s, 1.9 GB.
    assert cpu < 10, f"h1 spent {cpu:.1f} CPU-s"
    assert growth < 128 << 20, f"h1 grew by {growth >> 20} MiB"


def test_many_in_lists_are_limited_together(target: Target):
    # Each list is within the per-list limit of old; together they were 40 000 bound values.
    lists = [InList(Column("id"), tuple(f"x{i}-{j}" for j in range(8_000)), True) for i in range(5)]
    where: Expr = lists[0]
    for other in lists[1:]:
        where = Binary(BinaryOp.AND, where, other)
    code, details, _, _ = _attack(target, _request(target, Column("v"), where))
    assert code == "INVALID_ARGUMENT", (code, details)
    assert f"more than {Limits().max_in_values} values" in details


def test_a_measure_at_the_node_limit_is_answered(target: Target):
    # 250 products and 249 sums of them: 999 nodes, within the limit, and answered.
    code, details, _, _ = _attack(target, _request(target, balanced_sum(250)))
    assert code == "OK", details
