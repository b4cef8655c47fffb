"""DECIMAL of any scale, and products of DECIMALs, summed exactly over three holders.

The plan declares each measure's scale the way DuckDB types it (a product's
scale is the sum of its factors' scales); holders pack exact integers at that
scale, so SUM(rate * qty) of DECIMAL(18,6) by DECIMAL(12,3) comes back as a
DECIMAL with 9 places equal to DuckDB's to the last digit.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards

SCHEMA = [
    ("region", "VARCHAR"),
    ("rate", "DECIMAL(18,6)"),
    ("qty", "DECIMAL(12,3)"),
    ("fine", "DECIMAL(38,12)"),
]
K = 3


def _rows(rng: random.Random, n: int) -> list[tuple]:
    return [
        (
            rng.choice(["north", "south"]),
            Decimal(rng.randint(-(10**9), 10**9)).scaleb(-6),
            None if rng.random() < 0.1 else Decimal(rng.randint(0, 10**7)).scaleb(-3),
            Decimal(rng.randint(-(10**20), 10**20)).scaleb(-12),
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("decimals")
    rng = random.Random(7)
    holders, reference = write_shards(
        SCHEMA,
        {
            f"h{i}": (root / f"d{i}{suffix}", _rows(rng, 80))
            for i, suffix in enumerate((".parquet", ".duckdb", ".parquet"))
        },
    )
    fed = start_federation(holders, k=K)
    yield fed, reference
    fed.close()


@pytest.mark.parametrize(
    "sql, scales",
    [
        ("SELECT region, SUM(rate * qty) FROM t GROUP BY region ORDER BY region", [9]),
        ("SELECT SUM(fine), SUM(fine * 2), SUM(rate - fine) FROM t", [12, 12, 12]),
        (
            "SELECT SUM(CASE WHEN qty > 5000 THEN rate * qty ELSE 0 END), "
            "SUM(COALESCE(qty, 0.5) * rate) FILTER (WHERE region = 'north') FROM t",
            [9, 9],
        ),
    ],
)
def test_sums_of_any_scale_are_exact(federation, key, sql, scales):
    fed, reference = federation
    result, theirs, verdict = reference.check(fed.client(key), sql, K)
    assert verdict.ok, verdict.problems
    sums = [v for v in result.rows[-1] if isinstance(v, Decimal)]
    assert [-v.as_tuple().exponent for v in sums] == scales
    assert sums == [v for v in theirs[-1] if isinstance(v, Decimal)]
