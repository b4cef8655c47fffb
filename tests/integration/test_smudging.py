"""Scoring under the default key, which has room for smudging: every partial score
flooded at 30 bits of statistical security, the scores still within 1e-6 of numpy.

The former N = 8192 key (218 bits) could not do both (docs/threat-model.md); the
default N = 16384 key (290 data bits) does. Real gRPC, real TenSEAL, real
DuckDB: two holders, a model over both, compared with the same model in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto.flooding import SECURITY_BITS
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.query.model import parse_model

COUNT = 600
_rng = np.random.default_rng(11)
IDS = [f"acct-{i:04d}" for i in range(COUNT)]
KWH = _rng.uniform(0.0, 5000.0, COUNT).round(2)
INCOME = _rng.lognormal(10.0, 1.0, COUNT).round(2)
MODEL = {
    "entity": "account",
    "features": [
        {"table": "power", "column": "kwh", "weight": 0.003},
        {"table": "tax", "column": "income", "weight": -2.5e-5},
    ],
    "intercept": 0.25,
}


@pytest.fixture(scope="module")
def wide_key() -> AnalystKey:
    return AnalystKey.generate()  # the default parameters: what unseen keys new makes


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    root = tmp_path_factory.mktemp("smudging")
    power = write_shard(
        root / "power.csv",
        [("account", "VARCHAR"), ("kwh", "DOUBLE")],
        list(zip(IDS, KWH.tolist(), strict=True)),
    )
    tax = write_shard(
        root / "tax.csv",
        [("account", "VARCHAR"), ("income", "DOUBLE")],
        list(zip(IDS, INCOME.tolist(), strict=True)),
    )
    fed = start_federation({"grid": {"power": power}, "bureau": {"tax": tax}})
    yield fed
    fed.close()


def test_scores_are_smudged_at_30_bits_and_still_within_1e6(federation, wide_key):
    client = federation.client(wide_key)
    result = client.score(parse_model(MODEL), IDS)
    got = np.array([row[1] for row in result.rows])
    expected = 0.25 + 0.003 * KWH - 2.5e-5 * INCOME
    assert np.max(np.abs(got - expected)) < 1e-6
    for name in ("grid", "bureau"):
        scorers = list(federation.holders[name].pool._inline.values())
        assert scorers and all(s.plan.smudging for s in scorers)
        assert all(s.flood.security >= SECURITY_BITS for s in scorers)
