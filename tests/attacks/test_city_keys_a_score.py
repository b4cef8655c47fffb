"""Attacker: the analyst. In quick-start mode it sends a score request whose model
names a dimension — ``"entity": "city"`` — as the entity key, with a filtered
``sum(amount)`` feature, and scores the city whose filtered group has 3 rows.

An aggregate query suppresses that group (k = 5); a score must not hand it out
either. The analyst must learn nothing: the holder refuses to key entities by a
column that is not an identifier, and the message says to use GROUP BY instead.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.data.scoring import check_features
from unseen.engine.errors import PolicyError, RemoteError
from unseen.engine.query.model import FeatureSpec, parse_model

SCHEMA = [("account", "VARCHAR"), ("city", "VARCHAR"), ("amount", "DOUBLE")]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    rng = random.Random(8)
    rows = [(f"acct-{i:04d}", "Guangzhou", rng.uniform(10, 900)) for i in range(400)]
    rows += [(f"acct-9{i:03d}", "Zhaoqing", v) for i, v in enumerate((1234.5, 77.25, 9000.0))]
    path = write_shard(tmp_path_factory.mktemp("citykey") / "payments.csv", SCHEMA, rows)
    fed = start_federation({"bank": {"payments": path}})
    yield fed
    fed.close()


MODEL = {
    "entity": "city",
    "features": [
        {
            "table": "payments",
            "column": "amount",
            "weight": 1.0,
            "aggregate": "sum",
            "filter": "amount > 50",
        }
    ],
}


def test_a_city_cannot_key_a_score(bank, key):
    client = bank.client(key)
    # On the original code this returned the 3-row filtered sum of Zhaoqing.
    with pytest.raises((PolicyError, RemoteError)) as info:
        client.score(parse_model(MODEL), ["Zhaoqing"])
    assert "GROUP BY" in str(info.value)
    assert "10311" not in str(info.value)


def test_the_holder_refuses_a_city_key_whatever_the_client_checks(bank, key):
    node = bank.holders["bank"]
    city = node.tables["payments"].column("city")
    assert city is not None and not city.allows("entity")
    forged = FeatureSpec(table="payments", column="amount", key="city", aggregate="sum")
    with pytest.raises(PolicyError, match="GROUP BY"):
        check_features([forged], node.tables)


def test_an_identifier_still_keys_a_score(bank, key):
    model = dict(MODEL, entity="account")
    result = bank.client(key).score(parse_model(model), ["acct-9000", "acct-0001"])
    assert np.isclose(result.rows[0][1], 1234.5, atol=1e-6)
