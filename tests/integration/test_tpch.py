"""TPC-H Q1 and Q6 verbatim over ``lineitem`` sharded across three holders.

Real gRPC on loopback, real TenSEAL, real DuckDB at each holder (Parquet and
DuckDB shards); every answer is checked against DuckDB over the pooled rows,
exactly for the DECIMAL sums (products of DECIMAL(15,2) columns summed at
scale 4 and 6) and the counts, within 1e-6 for the averages.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards
from tests.tpch import LINEITEM, Q1, Q6, lineitem_rows

K = 5
# Orders per holder: 500 x 3 is TPC-H scale factor 0.001 (about 6 000 lines); 5000 is SF 0.01.
# 1500: the small (N, F) group of Q1 (about 2.6% of lines) then has, at every holder, more
# than twice the quantities Q1 publishes per group, so the moments rule
# (unseen.engine.privacy.suppression) lets it through; at 500 it has 13 rows at one holder and is
# suppressed.
ORDERS = int(os.environ.get("UNSEEN_TPCH_ORDERS", "1500"))


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tpch")
    suffixes = (".parquet", ".parquet", ".duckdb")
    holders, reference = write_shards(
        LINEITEM,
        {
            f"h{i}": (
                root / f"lineitem{i}{suffix}",
                lineitem_rows(ORDERS, seed=i, first_order=1 + ORDERS * i),
            )
            for i, suffix in enumerate(suffixes)
        },
        table="lineitem",
    )
    fed = start_federation(holders, k=K)
    yield fed, reference
    fed.close()


def test_q1_is_answered_exactly(tpch, key):
    fed, reference = tpch
    result, theirs, verdict = reference.check(fed.client(key), Q1, K)
    assert verdict.ok, verdict.problems
    assert len(result.rows) == len(theirs) == 4  # (A,F) (N,F) (N,O) (R,F)
    for ours, plain in zip(result.rows, theirs, strict=True):
        # The four sums are DECIMALs and must be equal to the last digit.
        for i in (2, 3, 4, 5):
            assert isinstance(ours[i], Decimal) and ours[i] == plain[i]
        assert ours[5].as_tuple().exponent == -6  # scale 2+2+2, as DuckDB types it


def test_q6_is_answered_exactly(tpch, key):
    fed, reference = tpch
    result, theirs, verdict = reference.check(fed.client(key), Q6, K)
    assert verdict.ok, verdict.problems
    assert result.rows[0][0] == theirs[0][0] and theirs[0][0] > 0
