"""An analyst sends a holder a plan whose measure is one enormous (but shallow) expression.

Attacker: an analyst with a key registered at a holder. It sends: a ``PrepareAggregate`` (round
1 of a masked aggregate, the round that reads the data) whose measure is a balanced sum of 24
000 products ``v * i`` — about 96 000 expression nodes, 17 levels deep, under a megabyte on the
wire. Before the fix this was within the limits (depth 40, 100 000 nodes); a SQLite holder
spent ~90 CPU-seconds and 1.9 GB on it and kept running after the caller's deadline. It must
learn nothing, and the holder must refuse the plan before decoding it into objects or building
any SQL: a plan has at most ``Limits.max_nodes`` (1 000) expression nodes, counted on the wire
message. The holder stays cheap (a bounded number of CPU-seconds and MiB) and keeps answering
other callers. Round 2 (``Aggregate`` with a mask round) answers round 1's plan and carries
none; a plan stuffed into it is counted against the same limits, before decoding, and refused
with the same words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from tests.attacks.target import Target, start_target
from tests.hostile import MemoryWatch
from unseen.engine.client import Client
from unseen.engine.crypto import bfv
from unseen.engine.privacy.masks import reduce_slots
from unseen.engine.query.expr import Binary, BinaryOp, Column, Expr, InList, Literal
from unseen.engine.query.layout import layout_for, unpack
from unseen.engine.query.plan import AggregatePlan, Encoding, Limits, Measure
from unseen.engine.transport import serde
from unseen.v1 import mask_pb2, query_pb2


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


def _request(
    target: Target, measure: Expr, where: Expr | None = None, round_two: bool = False
) -> bytes:
    """Round 1's request for the plan; with ``round_two``, a round-2 request carrying it."""
    plan = AggregatePlan("t", where, (), (Measure(measure, Encoding.INTEGER),))
    request = query_pb2.AggregateRequest(
        key_id=target.key.key_id, plan=serde.plan_to_proto(plan), request_id="q-attack"
    )
    if round_two:
        request.mask.CopyFrom(mask_pb2.MaskRound(nonce=bytes(32)))
    return request.SerializeToString()


def _attack(
    target: Target, request: bytes, method: str = "PrepareAggregate"
) -> tuple[str, str, float, int]:
    """Fire at h1 while an honest query runs; (status, details, CPU-s spent, RSS growth)."""
    cpu, rss = target.cpu("h1"), target.rss("h1")
    honest: list[list[str]] = []
    with MemoryWatch({"h1": target.pid("h1")}, interval=0.05) as watch:
        worker = threading.Thread(target=lambda: honest.append(target.problems()))
        worker.start()
        code, details = target.call("h1", method, request, deadline=30)
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


def test_a_96k_node_plan_in_round_two_is_refused_cheaply(target: Target):
    request = _request(target, balanced_sum(24_000), round_two=True)
    code, details, cpu, growth = _attack(target, request, "Aggregate")
    assert code == "INVALID_ARGUMENT", (code, details)
    assert f"more than {Limits().max_nodes} nodes" in details
    assert cpu < 10, f"h1 spent {cpu:.1f} CPU-s"
    assert growth < 128 << 20, f"h1 grew by {growth >> 20} MiB"


def test_many_in_lists_in_round_two_are_limited_together(target: Target):
    lists = [InList(Column("id"), tuple(f"x{i}-{j}" for j in range(8_000)), True) for i in range(5)]
    where: Expr = lists[0]
    for other in lists[1:]:
        where = Binary(BinaryOp.AND, where, other)
    request = _request(target, Column("v"), where, round_two=True)
    code, details, _, _ = _attack(target, request, "Aggregate")
    assert code == "INVALID_ARGUMENT", (code, details)
    assert f"more than {Limits().max_in_values} values" in details


def test_a_plan_within_the_limits_in_round_two_is_still_refused(target: Target):
    # Round 2 answers the plan round 1 kept: one sent along is never used, even a small one.
    request = _request(target, balanced_sum(250), round_two=True)
    code, details, _, _ = _attack(target, request, "Aggregate")
    assert code == "INVALID_ARGUMENT", (code, details)
    assert "carries no plan" in details


def test_a_measure_at_the_node_limit_is_answered_in_both_rounds(target: Target):
    # Through the coordinator: round 1 reads with the 999-node plan, round 2 answers it masked.
    plan = AggregatePlan("t", None, (), (Measure(balanced_sum(250), Encoding.INTEGER, 0, True),))
    with Client(target.fed.address, key=target.key, timeout=60) as client:
        reply = client.aggregate(plan)
    slots = np.concatenate([bfv.decrypt(target.key.aggregate_secret, c) for c in reply.ciphertexts])
    (group,) = unpack(plan, layout_for(plan), reduce_slots(slots))
    ((total,),) = target.reference.con.cursor().sql("SELECT SUM(v) FROM t").fetchall()
    assert group.measures[0].total == sum(range(250)) * total
