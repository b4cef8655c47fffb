"""Attack: the analyst turns a column it may only aggregate into a filter inside a measure.

Attacker: the analyst (malicious, crafts plans and SQL). The holder's policy
lets column ``salary`` be *aggregated* (SUM, AVG, VAR ...) but not used to
*filter*: the owner publishes totals, not who earns more than a threshold.
The analyst sends measures and group keys whose conditions read ``salary``:
``COUNT(*) FILTER (WHERE salary > t)``, ``SUM(CASE WHEN salary > t THEN 1 END)``,
``COUNT(NULLIF(salary, t))`` and ``GROUP BY CASE WHEN salary > t ...``. Each
equals ``WHERE salary > t``; by bisecting ``t`` it would learn the salary
distribution, and with the row counts one person's salary.

It must learn nothing: the holder refuses each plan (PERMISSION_DENIED naming
the column and the ``filter`` use) before touching data, and plain
``SUM(salary)`` keeps working. The plans are built by hand, sent through the
coordinator and handed to each holder directly (as a colluding coordinator
would), so the refusal does not depend on the friendly client.

On the original code the constructs did not exist (CASE, FILTER and derived
GROUP BY keys were refused by the SQL front end), so this attack became
possible only with them; the rule is ``_TypeChecker.condition`` in
``unseen/engine/query/plan.py`` (deleting its ``self.use = "filter"`` makes this test fail).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import Federation
from tests.shards import write_shards
from unseen.engine.errors import PolicyError, RemoteError
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.expr import Binary, BinaryOp, Case, Column, Func, Literal
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SCHEMA = [("dept", "VARCHAR"), ("salary", "BIGINT")]
ABOVE = Binary(BinaryOp.GT, Column("salary"), Literal(5000))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("aggonly")
    rows = [("a" if i % 2 else "b", 1000 * i) for i in range(1, 41)]
    holders, _ = write_shards(
        SCHEMA,
        {"h0": (root / "h0.parquet", rows[:20]), "h1": (root / "h1.parquet", rows[20:])},
    )
    nodes, servers, addresses = {}, {}, {}
    for name, tables in holders.items():
        node = HolderNode.quickstart(name, tables, k=3)
        # The owner's policy: salary may be aggregated, never used to filter or group.
        table = node.tables["t"]
        columns = tuple(
            dataclasses.replace(c, uses=frozenset({"aggregate"}), bounds=None)
            if c.name == "salary"
            else c
            for c in table.columns
        )
        # A new TableInfo, not dataclasses.replace: replace would keep the old column index.
        node.tables["t"] = TableInfo(table.name, columns, table.min_group_size)
        server, port = serve_holder(node, "127.0.0.1:0")
        nodes[name], servers[name], addresses[name] = node, server, f"127.0.0.1:{port}"
    coordinator = Coordinator.connect(list(addresses.values()))
    server, port = serve_coordinator(coordinator, "127.0.0.1:0")
    fed = Federation(f"127.0.0.1:{port}", nodes, servers, addresses, coordinator, server)
    yield fed
    fed.close()


def _plan(measure_expr=None, group: GroupColumn | None = None) -> AggregatePlan:
    measures = ()
    if measure_expr is not None:
        measures = (Measure(measure_expr, Encoding.INTEGER, 0, want_sum=True),)
    return AggregatePlan("t", None, (group,) if group else (), measures)


ATTACKS = {
    "count_filter": _plan(Case(((ABOVE, Literal(1)),))),
    "sum_case": _plan(Case(((ABOVE, Literal(1)),), Literal(0))),
    "nullif": _plan(Func("nullif", (Column("salary"), Literal(5000)))),
    "group_by_case": _plan(
        group=GroupColumn(
            "bucket", ("high", "low"), Case(((ABOVE, Literal("high")),), Literal("low"))
        )
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_federation_refuses_a_condition_on_an_aggregate_only_column(federation, key, name):
    client = federation.client(key)
    with pytest.raises((PolicyError, RemoteError)) as info:
        client.aggregate(ATTACKS[name])
    message = str(info.value)
    assert "salary" in message and "filter" in message
    if isinstance(info.value, RemoteError):
        assert info.value.grpc_code == "PERMISSION_DENIED"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_holder_itself_refuses_before_touching_data(federation, key, name):
    """A coordinator colluding with the analyst forwards the plan anyway: the holder decides."""
    client = federation.client(key)
    key_id = client.register_key()
    for node in federation.holders.values():
        with pytest.raises(PolicyError, match=r"salary.*filter"):
            node.prepare_aggregate(key_id, ATTACKS[name], "q-attack")  # round 1 reads the data


def test_the_same_sql_is_refused_before_it_leaves(federation, key):
    client = federation.client(key)
    for sql in (
        "SELECT COUNT(*) FILTER (WHERE salary > 5000) FROM t",
        "SELECT SUM(CASE WHEN salary > 5000 THEN 1 ELSE 0 END) FROM t",
        "SELECT CASE WHEN salary > 5000 THEN 'high' ELSE 'low' END, COUNT(*) FROM t "
        "GROUP BY CASE WHEN salary > 5000 THEN 'high' ELSE 'low' END",
    ):
        with pytest.raises((PolicyError, RemoteError), match="salary"):
            client.query(sql)


def test_aggregating_the_column_still_works(federation, key):
    result = federation.client(key).query("SELECT SUM(salary), COUNT(salary) FROM t")
    assert result.rows == [[sum(1000 * i for i in range(1, 41)), 40]]
