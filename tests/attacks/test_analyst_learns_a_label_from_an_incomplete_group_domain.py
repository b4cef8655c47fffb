"""Attack: the analyst leaves a label out of a derived key's domain and reads the error.

Attacker: the analyst. It sends (by hand, past the client) a plan grouping by
``CASE WHEN salary > 100000 THEN 'rich' ELSE 'other' END`` whose domain lists
only ``'other'``. A holder that ran it would fail with "values outside the
plan's group domain" exactly when one row is rich: one person's salary range
learnt from an error, past k.

It must learn nothing: the holder checks, before running anything, that a
derived key's domain holds every value the key can take (every CASE label,
every calendar unit of the column's published range) and refuses the plan
with the same message whatever the data. The rule is
``_check_derived_domain`` in ``unseen/engine/query/plan.py``; without it this test fails
(the refusal then depends on the data). On the original code CASE keys did
not exist.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards
from unseen.engine.errors import PlanError
from unseen.engine.query.expr import Binary, BinaryOp, Case, Column, Extract, Literal
from unseen.engine.query.plan import AggregatePlan, GroupColumn

SCHEMA = [("salary", "BIGINT"), ("hired", "DATE")]
RICH = Case(
    ((Binary(BinaryOp.GT, Column("salary"), Literal(100000)), Literal("rich")),), Literal("other")
)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("labels")
    rows = [(1000 * i, dt.date(2020, 1, 1) + dt.timedelta(days=i)) for i in range(1, 40)]
    rows.append((250000, dt.date(2023, 6, 1)))  # the one rich person, hired in 2023
    holders, _ = write_shards(SCHEMA, {"h0": (root / "h0.parquet", rows)})
    # A second holder without the table masks h0's answer (no holder answers alone).
    fed = start_federation({**holders, "peer": {}}, k=3)
    yield fed
    fed.close()


@pytest.mark.parametrize(
    "group",
    [
        GroupColumn("bucket", ("other",), RICH),
        GroupColumn("year", (2020,), Extract("year", Column("hired"))),
    ],
    ids=["case_label_left_out", "year_left_out"],
)
def test_an_incomplete_derived_domain_is_refused_whatever_the_data(federation, key, group):
    client = federation.client(key)
    key_id = client.register_key()
    plan = AggregatePlan("t", None, (group,), ())
    with pytest.raises(PlanError, match="leaves out values the key can take"):
        federation.holders["h0"].prepare_aggregate(key_id, plan, "q-attack")


def test_the_complete_domain_is_answered_with_k(federation, key):
    result = federation.client(key).query(
        "SELECT CASE WHEN salary > 100000 THEN 'rich' ELSE 'other' END AS b, COUNT(*) "
        "FROM t GROUP BY b ORDER BY b"
    )
    assert result.rows == [["other", 39], ["rich", None]]  # one rich row: suppressed by k
    assert result.meta["suppressed"] == [
        {"group": {"CASE WHEN salary > 100000 THEN 'rich' ELSE 'other' END": "rich"}, "reason": "k"}
    ]
