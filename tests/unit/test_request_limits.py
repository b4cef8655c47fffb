"""Size limits are enforced on the wire messages, before anything is decoded or allocated.

Each refusal here carries the message of the wire check (``unseen.engine.transport.serde``), which
differs
from the later, object-level check (``unseen.engine.query.plan.check_expression_size``), so these
tests
fail if the early check is removed and only the late one remains.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.shards import write_shard
from unseen.engine.data.source import open_source
from unseen.engine.errors import BusyError, PlanError
from unseen.engine.governance.policy import quickstart_table
from unseen.engine.query.expr import Binary, BinaryOp, Column, Expr, InList, Literal
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import (
    AggregatePlan,
    Encoding,
    GroupColumn,
    Limits,
    Measure,
    check_plan,
)
from unseen.engine.transport import serde
from unseen.engine.transport.memory_budget import ENTITY_OVERHEAD, MemoryBudget
from unseen.v1 import score_pb2

LIMITS = Limits()
KEY = "ab" * 32


def chain(nodes: int) -> Expr:
    """A balanced sum of columns with ``nodes`` nodes (odd)."""
    leaves: list[Expr] = [Column("v")] * ((nodes + 1) // 2)
    while len(leaves) > 1:
        pairs = [leaves[i : i + 2] for i in range(0, len(leaves), 2)]
        leaves = [Binary(BinaryOp.ADD, *p) if len(p) == 2 else p[0] for p in pairs]
    return leaves[0]


def plan_with(measure: Expr, where: Expr | None = None) -> AggregatePlan:
    return AggregatePlan("t", where, (), (Measure(measure, Encoding.INTEGER),))


def test_a_plan_at_the_node_limit_decodes():
    plan = plan_with(chain(LIMITS.max_nodes - 1))
    assert serde.plan_from_proto(serde.plan_to_proto(plan)) == plan


def test_a_plan_past_the_node_limit_is_refused_on_the_wire():
    msg = serde.plan_to_proto(plan_with(chain(LIMITS.max_nodes + 1)))
    with pytest.raises(PlanError, match=f"^expressions of more than {LIMITS.max_nodes} nodes$"):
        serde.plan_from_proto(msg)


def test_nodes_are_counted_over_the_filter_and_every_measure_together():
    half = chain(LIMITS.max_nodes // 2 + 1)
    msg = serde.plan_to_proto(plan_with(half, Binary(BinaryOp.GT, half, Literal(0))))
    with pytest.raises(PlanError, match="more than 1000 nodes"):
        serde.plan_from_proto(msg)


def test_in_values_are_counted_over_all_lists_on_the_wire():
    per_list = LIMITS.max_in_values // 2 + 1
    lists = [InList(Column("id"), tuple(f"{i}-{j}" for j in range(per_list))) for i in range(2)]
    msg = serde.plan_to_proto(plan_with(Column("v"), Binary(BinaryOp.OR, *lists)))
    with pytest.raises(PlanError, match=f"^IN lists of more than {LIMITS.max_in_values} values"):
        serde.plan_from_proto(msg)


def test_a_group_domain_product_past_the_limit_is_refused_on_the_wire():
    side = tuple(range(200))  # 200 x 200 = 40 000 groups, each domain within the limit
    plan = AggregatePlan(
        "t",
        None,
        (GroupColumn("a", side), GroupColumn("b", side)),
        (Measure(Column("v"), Encoding.INTEGER),),
    )
    with pytest.raises(PlanError, match=f"^the group domain has more than {LIMITS.max_groups}"):
        serde.plan_from_proto(serde.plan_to_proto(plan))


def test_the_object_level_check_counts_the_same_way(tmp_path):
    source = open_source("t", write_shard(tmp_path / "t.parquet", [("v", "BIGINT")], [(1,)] * 5))
    table = quickstart_table(source, 5)
    check_plan(plan_with(chain(LIMITS.max_nodes - 1)), table)
    with pytest.raises(PlanError, match=f"1001 nodes, more than {LIMITS.max_nodes}"):
        check_plan(plan_with(chain(LIMITS.max_nodes + 1)), table)


def _prepare(features: list[FeatureSpec], announced: int, ids: list[str]) -> Iterator:
    header = score_pb2.PrepareModelRequest(
        key_id=KEY, features=[serde.feature_to_proto(f) for f in features], entities=announced
    )
    yield score_pb2.PreparePart(header=header)
    yield score_pb2.PreparePart(entities=score_pb2.EntityChunk(ids=ids))


def test_feature_filters_are_sized_before_decoding():
    feature = FeatureSpec("t", "v", "id", "sum", chain(LIMITS.max_nodes + 1))
    with pytest.raises(PlanError, match="more than 1000 nodes"):
        serde.prepare_from_parts(_prepare([feature], 1, ["a"]), serde.MAX_ENTITIES)


def test_too_many_features_are_refused_before_decoding():
    features = [FeatureSpec("t", "v", "id")] * (serde.MAX_FEATURES + 1)
    with pytest.raises(PlanError, match=f"at most {serde.MAX_FEATURES} features"):
        serde.prepare_from_parts(_prepare(features, 1, ["a"]), serde.MAX_ENTITIES)


def test_entity_counts_are_refused_at_the_header_before_any_id_is_read():
    def parts() -> Iterator:
        yield from _prepare([FeatureSpec("t", "v", "id")], serde.MAX_ENTITIES + 1, [])
        raise AssertionError("an entity chunk was read")

    with pytest.raises(PlanError, match="at most 1000000 entities per request"):
        serde.prepare_from_parts(parts(), serde.MAX_ENTITIES)


def test_entity_bytes_are_counted_while_streaming():
    chunk = ["x" * 256] * 4096  # 1 MiB per chunk

    def parts() -> Iterator:
        header = score_pb2.PrepareModelRequest(
            key_id=KEY,
            features=[serde.feature_to_proto(FeatureSpec("t", "v", "id"))],
            entities=serde.MAX_ENTITIES,
        )
        yield score_pb2.PreparePart(header=header)
        for _ in range(80):  # 80 MiB would be sent; refused after 64
            yield score_pb2.PreparePart(entities=score_pb2.EntityChunk(ids=chunk))
        raise AssertionError("the whole stream was read")

    with pytest.raises(PlanError, match="entity ids beyond 64 MiB in one request"):
        serde.prepare_from_parts(parts(), serde.MAX_ENTITIES)


def test_a_node_wide_budget_refuses_what_concurrent_requests_would_hold_together():
    budget = MemoryBudget(10 << 20, "entity ids")
    chunk = ["y" * 200] * 4096  # 0.8 MiB of characters, ~1 MiB charged with the overhead

    def parts() -> Iterator:
        yield from _prepare([FeatureSpec("t", "v", "id")], 4096 * 8, chunk)
        for _ in range(7):
            yield score_pb2.PreparePart(entities=score_pb2.EntityChunk(ids=chunk))

    with budget.account() as first:
        ids = serde.prepare_from_parts(parts(), serde.MAX_ENTITIES, charge=first)[2]
        assert len(ids) == 4096 * 8
        held = budget.used
        assert held == 8 * 4096 * (200 + ENTITY_OVERHEAD)
        with (
            budget.account() as second,
            pytest.raises(BusyError, match="at most 10 MiB at once"),
        ):
            serde.prepare_from_parts(parts(), serde.MAX_ENTITIES, charge=second)
        assert budget.used == held  # the refused request gave back what it had charged
    assert budget.used == 0
    with budget.account() as third:
        assert len(serde.prepare_from_parts(parts(), serde.MAX_ENTITIES, charge=third)[2]) > 0
