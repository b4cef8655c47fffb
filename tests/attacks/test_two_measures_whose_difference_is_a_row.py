"""Two measures of one query whose difference is one row's value.

Attacker: an analyst, through the coordinator, with valid vouchers. It sends
``SELECT SUM(amount / spike + id * 1000), SUM(id * 1000)``: each measure on
its own passes the p% rule (the ``id * 1000`` term spreads it over every
row), but their difference is row 777's amount.

What it learns depends on how the table is served:

* exact mode (quick-start here; governed exact tables alike): row 777's
  amount, to within rounding. This is the documented limit of primary
  suppression (docs/threat-model.md, *Linear combinations of measures*): the
  rule judges each measure on its own, and a rule on the span of the measures
  is not implemented. The test asserts the limit so that a fix shows up here.
* dp mode: nothing beyond the stated noise. A dp table takes only bare,
  clamped columns as measures, so the spike pair and its CASE spelling are
  refused before any data is read; the same goal reached as two queries
  (dp's differencing machinery, tests/dp_world.py) misses the target by the
  stated noise, which is larger than the target itself.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.dp_world import RHO, build_dp_world, dp_vouchers
from tests.governance_fixtures import start_in_process
from tests.shards import write_shards
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError

LOANS = [("id", "BIGINT"), ("city", "VARCHAR"), ("amount", "BIGINT")]
SPIKE = "(1 + 1e15 * (id - 777) * (id - 777))"
PAIR = f"SELECT SUM(amount / {SPIKE} + id * 1000), SUM(id * 1000) FROM loans"
TARGET = "acct-007"
REPEATS = 10


def _rows(start: int, n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    return [
        (i, ("Alpha", "Beta")[i % 2], rng.randint(1_000, 900_000)) for i in range(start, start + n)
    ]


def test_exact_mode_publishes_the_difference_the_documented_limit(tmp_path, key):
    holders, reference = write_shards(
        LOANS,
        {
            "bank-a": (tmp_path / "a.csv", _rows(0, 600, 1)),
            "bank-b": (tmp_path / "b.sqlite", _rows(600, 900, 2)),
        },
        table="loans",
    )
    fed = start_federation(holders)
    try:
        result, _, verdict = reference.check(fed.client(key), PAIR, 5)
    finally:
        fed.close()
    assert verdict.ok, verdict.problems
    (secret,) = reference.con.sql("SELECT amount FROM loans WHERE id = 777").fetchall()[0]
    assert result.meta["suppressed"] == []
    with_spike, without = result.rows[0]
    assert abs((with_spike - without) - secret) < 1


@pytest.fixture(scope="module")
def dp_federation(tmp_path_factory):
    world = build_dp_world(tmp_path_factory.mktemp("dp-pair"))
    federation = start_in_process(world)
    yield world, federation
    federation.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT SUM(amount / (1 + 1e15 * (amount - 5) * (amount - 5)) + amount), SUM(amount) "
        "FROM loans",
        f"SELECT SUM(CASE WHEN account = '{TARGET}' THEN amount ELSE 0 END + amount), "
        "SUM(amount) FROM loans",
    ],
)
def test_dp_mode_refuses_measures_that_are_not_bare_columns(dp_federation, key: AnalystKey, sql):
    world, federation = dp_federation
    client = federation.client(key, dp_vouchers(world, key.key_id, str(RHO)))
    with pytest.raises(RemoteError, match="not an expression"):
        client.query(sql)


def test_dp_mode_leaves_the_difference_buried_in_the_stated_noise(dp_federation):
    world, federation = dp_federation
    key = AnalystKey.generate()
    client = federation.client(key, dp_vouchers(world, key.key_id, str(2 * REPEATS * RHO)))
    (truth,) = world.reference.execute(
        "SELECT SUM(amount) FROM loans WHERE account = ?", [TARGET]
    ).fetchone()
    errors, stated = [], []
    for _ in range(REPEATS):
        everyone = client.query("SELECT SUM(amount) FROM loans")
        others = client.query(f"SELECT SUM(amount) FROM loans WHERE account <> '{TARGET}'")
        errors.append(float(everyone.rows[0][0] - others.rows[0][0] - truth))
        stated.append(math.hypot(everyone.meta["dp"]["sd"][0][0], others.meta["dp"]["sd"][0][0]))
    sd = stated[0]
    # The difference is the target plus noise of the stated sd, and that sd exceeds the target.
    assert sd > abs(truth)
    assert np.std(errors) > 0.3 * sd
    assert max(abs(e) for e in errors) > 0
