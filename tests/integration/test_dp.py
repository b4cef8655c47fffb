"""A governed federation serving ``loans`` with differential privacy, end to end.

Real gRPC on loopback, real TenSEAL, real DuckDB and SQLite at the banks. Each
noisy answer is compared with the same question answered in plaintext by
DuckDB, within the noise the answer itself states.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import pytest

from tests.dp_world import build_dp_world, dp_vouchers
from tests.governance_fixtures import entries, start_in_process
from tests.shards import write_shard
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.data.source import open_source
from unseen.engine.errors import RemoteError
from unseen.engine.privacy.budget import CHARGE_KIND, spent_by_voucher

SQL = "SELECT city, COUNT(*), SUM(amount), AVG(amount) FROM loans GROUP BY city ORDER BY city"


@pytest.fixture
def dp_federation(tmp_path):
    world = build_dp_world(tmp_path / "world")
    federation = start_in_process(world)
    yield federation
    federation.close()


def test_a_dp_answer_is_noisy_within_its_stated_sd_and_charged_at_each_holder(
    dp_federation, key: AnalystKey
):
    world = dp_federation.world
    client = dp_federation.client(key, dp_vouchers(world, key.key_id, "2"))
    result = client.query(SQL)
    exact = world.reference.execute(
        "SELECT city, COUNT(*), SUM(amount), AVG(amount) FROM loans GROUP BY city ORDER BY city"
    ).fetchall()
    dp = result.meta["dp"]
    assert dp["rho"] == pytest.approx(0.5)
    assert dp["holders"] == 2 and dp["unit"] == "account"
    assert [r[0] for r in result.rows] == [r[0] for r in exact]
    for row, truth, sds, spans in zip(result.rows, exact, dp["sd"], dp["interval95"], strict=True):
        assert sds[0] is None and spans[0] is None  # the group key is public, not noisy
        for column in (1, 2):
            # Every account's rows are within the bounds here, so the truth is DuckDB's.
            assert abs(row[column] - truth[column]) <= 6 * sds[column]
            low, high = spans[column]
            assert high - low == pytest.approx(2 * 1.959963984540054 * sds[column])
        assert row[1] != truth[1] or row[2] != truth[2]  # noise was added
    # Each bank charged its own ledger before answering, and reports its budget.
    budgets = {b["holder"]: b for b in dp["budget"]}
    assert set(budgets) == {"bank-a", "bank-b"}
    for bank in ("bank-a", "bank-b"):
        assert Fraction(budgets[bank]["spent"]) == Fraction(1, 2)
        charges = [e for e in entries(world.ledgers[bank]) if e.kind == CHARGE_KIND]
        assert len(charges) == 1 and charges[0].outcome == "answered"
    assert "differential privacy" in result.format("table")
    assert "budget at bank-a" in result.format("table")
    # A supervisor recomputes the spent budget from the ledger file alone.
    command = ["audit", "budget", str(world.ledgers["bank-a"]), "--format", "json"]
    audit = subprocess.run(
        [sys.executable, "-m", "unseen", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (row,) = json.loads(audit.stdout)["rows"]
    assert row[1:3] == [1, "1/2"]


def test_a_spent_budget_refuses_the_next_query_at_every_holder(dp_federation, key: AnalystKey):
    world = dp_federation.world
    client = dp_federation.client(key, dp_vouchers(world, key.key_id, "1"))
    for _ in range(2):
        client.query("SELECT COUNT(*) FROM loans")
    with pytest.raises(RemoteError, match="privacy budget"):
        client.query("SELECT COUNT(*) FROM loans")
    for bank in ("bank-a", "bank-b"):
        log = entries(world.ledgers[bank])
        assert log[-1].outcome == "refused" and "privacy budget" in log[-1].reason
        assert list(spent_by_voucher(log).values()) == [Fraction(1)]


def test_a_failed_query_is_charged(dp_federation, key: AnalystKey, tmp_path):
    world = dp_federation.world
    client = dp_federation.client(key, dp_vouchers(world, key.key_id, "5"))
    # bank-a's data goes bad after start-up (its file lost the amount column): the
    # local engine fails after the charge, and the charge stands.
    broken = write_shard(tmp_path / "broken.csv", [("account", "VARCHAR")], [("acct-000",)])
    dp_federation.holders["bank-a"].sources["loans"] = open_source("loans", broken)
    with pytest.raises(RemoteError):
        client.query("SELECT SUM(amount) FROM loans")
    log = entries(world.ledgers["bank-a"])
    assert [(e.kind, e.outcome) for e in log[-2:]] == [
        (CHARGE_KIND, "answered"),
        ("aggregate", "failed"),
    ]
    assert list(spent_by_voucher(log).values()) == [Fraction(1, 2)]


def test_an_unboundable_plan_is_refused_before_charge_or_data(dp_federation, key: AnalystKey):
    world = dp_federation.world
    client = dp_federation.client(key, dp_vouchers(world, key.key_id, "5"))
    with pytest.raises(RemoteError, match="differential privacy"):
        client.query("SELECT SUM(amount * 2) FROM loans")
    for bank in ("bank-a", "bank-b"):
        log = entries(world.ledgers[bank])
        assert log[-1].outcome == "failed" and not spent_by_voucher(log)


def test_a_voucher_without_a_budget_is_refused_before_data_is_read(dp_federation, key: AnalystKey):
    world = dp_federation.world
    client = dp_federation.client(key, world.vouchers(key.key_id))
    with pytest.raises(RemoteError, match="privacy budget"):
        client.query("SELECT COUNT(*) FROM loans")
    for bank in ("bank-a", "bank-b"):
        log = entries(world.ledgers[bank])
        assert log[-1].outcome == "refused"
        assert not [e for e in log if e.kind == CHARGE_KIND]
