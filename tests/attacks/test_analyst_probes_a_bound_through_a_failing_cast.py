"""Attack: the analyst learns whether one row exceeds a bound from a cast that fails on it.

Attacker: the analyst. It sends a plan (built by hand, so no client-side check
stands in the way) whose measure is ``CAST(salary AS DECIMAL(5,0))``: DuckDB
refuses the whole query as soon as one row holds 100000 or more, and its error
quotes that row's value. Without a rule the answer to "does anyone earn six
figures?" (and the figure) would come back as an error, past k and every
suppression rule.

It must learn nothing: the holder refuses the plan by its types alone,
before it runs any SQL, with the same message whatever the data holds; only
casts that cannot overflow (``DECIMAL(38,s)``, ``DOUBLE``) run. The rule is
``_cast_cannot_fail`` in ``unseen/engine/query/plan.py``; deleting its check makes this
test fail (the engine's error then carries ``123457``). On the original code
a CAST of a column was refused by the SQL front end and had no wire form.
"""

from __future__ import annotations

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards
from unseen.engine.errors import PlanError, UnseenError
from unseen.engine.query.expr import Cast, Column
from unseen.engine.query.plan import AggregatePlan, Encoding, Measure

SCHEMA = [("dept", "VARCHAR"), ("salary", "BIGINT")]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cast")
    rows = [("a", 1000 * i) for i in range(1, 30)] + [("a", 123457)]
    holders, _ = write_shards(SCHEMA, {"h0": (root / "h0.parquet", rows)})
    fed = start_federation({**holders, "peer": {}}, k=3)
    yield fed
    fed.close()


def _plan(target: str) -> AggregatePlan:
    measure = Measure(Cast(Column("salary"), target), Encoding.DECIMAL, 0, want_sum=True)
    return AggregatePlan("t", None, (), (measure,))


def test_a_cast_that_could_overflow_is_refused_before_any_sql_runs(federation, key):
    client = federation.client(key)
    key_id = client.register_key()
    node = federation.holders["h0"]
    with pytest.raises(PlanError, match="could overflow") as info:
        node.prepare_aggregate(key_id, _plan("DECIMAL(5,0)"), "q-attack")
    assert "123457" not in str(info.value)
    with pytest.raises(UnseenError) as remote:  # and through the coordinator
        client.aggregate(_plan("DECIMAL(5,0)"))
    assert "123457" not in str(remote.value) and "could overflow" in str(remote.value)


def test_a_cast_that_cannot_overflow_is_answered(federation, key):
    result = federation.client(key).query("SELECT SUM(CAST(salary AS DECIMAL(38,0))) FROM t")
    assert int(result.rows[0][0]) == sum(1000 * i for i in range(1, 30)) + 123457
