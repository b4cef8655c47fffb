"""Attacker: an analyst, through the coordinator, with any key and (governed) voucher.

What it sends: one aggregate whose measures are built to be a single row's
value and (nearly) zero for every other row — ``SUM(amount / (1 + 1e15 *
(id - 777) * (id - 777)))`` — over a group of thousands of rows that easily
passes k, hoping to read row 777's amount and rate from the "aggregate";
and the same plus a constant (``SUM(1000 + spike)`` less 1000 times the
count is the spike).

What it must learn: that the cell was suppressed, and why ("dominance"),
nothing else. Each holder applies the p% rule (unseen.engine.privacy.suppression) to the
absolute row contributions of every SUM/AVG/VAR measure in every group.
Ordinary statistics over the same table (sums and averages of amounts by
city) still come back, equal to DuckDB's. Two measures whose *difference*
is the spike are the known limit of this rule:
tests/attacks/test_two_measures_whose_difference_is_a_row.py.
"""

from __future__ import annotations

import random

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards

LOANS = [("id", "BIGINT"), ("city", "VARCHAR"), ("amount", "BIGINT"), ("rate", "DOUBLE")]
CITIES = ("Alpha", "Beta", "Gamma")
SPIKE = "(1 + 1e15 * (id - 777) * (id - 777))"


def _rows(start: int, n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    return [
        (i, CITIES[i % 3], rng.randint(1_000, 900_000), round(rng.uniform(0.02, 0.2), 6))
        for i in range(start, start + n)
    ]


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    root = tmp_path_factory.mktemp("spike")
    # Row 777 lives at the SQLite holder; the other holder reads CSV through DuckDB.
    holders, reference = write_shards(
        LOANS,
        {
            "bank-a": (root / "a.csv", _rows(0, 600, 1)),
            "bank-b": (root / "b.sqlite", _rows(600, 900, 2)),
        },
        table="loans",
    )
    fed = start_federation(holders)
    yield fed, reference
    fed.close()


def _secret(reference, column: str) -> float:
    return reference.con.sql(f"SELECT {column} FROM loans WHERE id = 777").fetchall()[0][0]


def test_spike_over_the_whole_table_is_suppressed(loans, key):
    fed, reference = loans
    sql = f"SELECT SUM(amount / {SPIKE}), SUM(rate / {SPIKE}), COUNT(*) FROM loans"
    result, _, verdict = reference.check(fed.client(key), sql, 5)
    assert verdict.ok, verdict.problems
    assert result.rows == [[None, None, None]]
    assert result.meta["suppressed"] == [{"group": {}, "reason": "dominance"}]
    assert _secret(reference, "amount") not in [v for row in result.rows for v in row]


def test_spike_within_one_city_is_suppressed(loans, key):
    fed, reference = loans
    amount = _secret(reference, "amount")
    sql = (
        f"SELECT city, SUM(rate / (1 + 1e15 * (amount - {amount}) * (amount - {amount}))) "
        "FROM loans WHERE city = 'Alpha' GROUP BY city"
    )
    result, _, verdict = reference.check(fed.client(key), sql, 5)
    assert verdict.ok, verdict.problems
    assert result.rows == [["Alpha", None]]
    assert result.meta["suppressed"] == [{"group": {"city": "Alpha"}, "reason": "dominance"}]


@pytest.mark.parametrize("offset", ["1000 + ", "1000 - "])
def test_a_constant_offset_does_not_hide_the_spike(loans, key, offset):
    # SUM(c + spike) - c * COUNT(*) is the spike: the rule also judges x - min and max - x.
    fed, reference = loans
    sql = f"SELECT SUM({offset}amount / {SPIKE}), COUNT(*) FROM loans"
    result, _, verdict = reference.check(fed.client(key), sql, 5)
    assert verdict.ok, verdict.problems
    assert result.rows == [[None, None]]
    assert result.meta["suppressed"] == [{"group": {}, "reason": "dominance"}]


def test_ordinary_statistics_still_pass(loans, key):
    fed, reference = loans
    sql = (
        "SELECT city, COUNT(*), SUM(amount), AVG(rate), STDDEV_SAMP(amount), "
        "SUM(amount * (1 - rate)) AS revenue FROM loans GROUP BY city ORDER BY city"
    )
    result, theirs, verdict = reference.check(fed.client(key), sql, 5)
    assert verdict.ok, verdict.problems
    assert result.meta["suppressed"] == []
    assert [row[0] for row in result.rows] == list(CITIES) and len(theirs) == 3
