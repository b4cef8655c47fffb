"""Attacker: the analyst. It sends PrepareModel requests naming one entity at a time,
with features chosen as probes — the plain ``amount`` and ``sum(amount)`` filtered to
each city — and reads the per-feature power-of-two bounds the holders return.

It must learn nothing about the entity: the bounds are the same whichever entity
(or entities) the request names, so they cannot reveal its city or its amount.
"""

from __future__ import annotations

import random

import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.query.model import parse_model

SCHEMA = [("account", "VARCHAR"), ("city", "VARCHAR"), ("amount", "DOUBLE")]
CITIES = ["Guangzhou", "Shenzhen", "Foshan"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    rng = random.Random(3)
    rows = [
        (f"acct-{i:04d}", rng.choice(CITIES), round(rng.lognormvariate(6, 2), 2))
        for i in range(300)
    ]
    path = write_shard(tmp_path_factory.mktemp("prepare") / "accounts.csv", SCHEMA, rows)
    fed = start_federation({"bank": {"accounts": path}})
    yield fed, rows
    fed.close()


def _probe_model() -> dict:
    features = [{"table": "accounts", "column": "amount", "weight": 1.0}]
    features += [
        {
            "table": "accounts",
            "column": "amount",
            "weight": 1.0,
            "aggregate": "sum",
            "filter": f"city = '{city}'",
        }
        for city in CITIES
    ]
    return {"entity": "account", "features": features}


def _prepare(fed, client, entity: str) -> list[int]:
    specs = client.feature_specs(parse_model(_probe_model()), client.catalog())
    exponents, _ = client.prepare(specs, [entity])  # PrepareModel through the coordinator
    return exponents


def test_one_entity_prepare_reveals_neither_city_nor_amount(bank, key):
    fed, rows = bank
    client = fed.client(key)
    client.register_key()
    small = min(rows, key=lambda r: r[2])
    large = max(rows, key=lambda r: r[2])
    other_city = next(r for r in rows if r[1] != small[1])
    profiles = {r[0]: _prepare(fed, client, r[0]) for r in (small, large, other_city)}
    # On the original code the bounds follow the entity: 2^e of its amount, and a
    # nonzero exponent only for its own city's filtered sum.
    assert len({tuple(p) for p in profiles.values()}) == 1, profiles
    assert _prepare(fed, client, "no-such-account") == profiles[small[0]]
