"""Encrypted linear scoring end to end, checked against the same model in numpy.

Vertical data at several holders (registry, grid, tax) plus one table two banks
host horizontally; entities missing at some holders take the defaults.
"""

from __future__ import annotations

import json
import math
import random

import duckdb
import numpy as np
import pytest

from tests.conftest import start_federation, unseen
from tests.shards import load_duckdb, write_shard
from unseen.engine.errors import ConfigError, PlanError, PolicyError, RemoteError
from unseen.engine.query.model import parse_model, read_entities
from unseen.federation import LocalFederation
from unseen.oracle.plaintext import plaintext_scores

REGISTRY = [("uscc", "VARCHAR"), ("founded", "BIGINT"), ("capital", "DOUBLE"), ("city", "VARCHAR")]
POWER = [("uscc", "VARCHAR"), ("month", "VARCHAR"), ("kwh", "DOUBLE")]
TAX = [("uscc", "VARCHAR"), ("quarter", "VARCHAR"), ("revenue", "DOUBLE"), ("arrears", "BIGINT")]
TRANSFERS = [("payee", "VARCHAR"), ("amount", "DOUBLE")]


def _world(seed: int, n: int):
    rng = random.Random(seed)
    ids = [f"91440{i:08d}X" for i in range(n)]
    registry = [
        (u, rng.randint(1990, 2022), rng.lognormvariate(13, 1.5), rng.choice("ABC"))
        for u in ids
        if rng.random() < 0.9
    ]
    power = [
        (u, f"2023-{m:02d}", rng.lognormvariate(10, 1.2))
        for u in ids
        if rng.random() < 0.8
        for m in range(1, 13)
        if rng.random() < 0.95
    ]
    tax = [
        (u, f"2023Q{q}", rng.lognormvariate(14, 2), int(rng.random() < 0.1))
        for u in ids
        if rng.random() < 0.7
        for q in range(1, 5)
    ]
    transfers = [[(rng.choice(ids), rng.uniform(1, 5000)) for _ in range(n)] for _ in range(2)]
    return ids, registry, power, tax, transfers


@pytest.fixture(scope="module")
def scoring_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    ids, registry, power, tax, transfers = _world(5, 1500)
    reference = duckdb.connect()
    load_duckdb(reference, REGISTRY, registry, "registry")
    load_duckdb(reference, POWER, power, "electricity")
    load_duckdb(reference, TAX, tax, "tax_filings")
    load_duckdb(reference, TRANSFERS, transfers[0] + transfers[1], "transfers")
    holders = {
        "samr": {"registry": write_shard(root / "registry.csv", REGISTRY, registry)},
        "grid": {"electricity": write_shard(root / "power.parquet", POWER, power)},
        "tax": {"tax_filings": write_shard(root / "tax.sqlite", TAX, tax, table="tax_filings")},
        "bank-a": {
            "transfers": write_shard(root / "ta.duckdb", TRANSFERS, transfers[0], table="transfers")
        },
        "bank-b": {"transfers": write_shard(root / "tb.csv", TRANSFERS, transfers[1])},
    }
    fed = start_federation(holders)
    yield fed, reference, ids
    fed.close()


MODEL = {
    "entity": "uscc",
    "features": [
        {"table": "registry", "column": "founded", "weight": -0.031, "default": 2010},
        {"table": "registry", "column": "capital", "weight": 2.5e-8, "transform": "log1p"},
        {
            "table": "electricity",
            "column": "kwh",
            "weight": 1.7e-5,
            "aggregate": "avg",
            "filter": "month >= '2023-07'",
            "default": 15000,
        },
        {
            "table": "electricity",
            "column": "kwh",
            "weight": -0.2,
            "aggregate": "avg",
            "filter": "month < '2023-07'",
            "transform": "log1p",
            "default": 9.5,
        },
        {"table": "tax_filings", "column": "revenue", "weight": 3.3e-9, "aggregate": "sum"},
        {"table": "tax_filings", "column": "arrears", "weight": 0.9, "aggregate": "sum"},
        {"table": "tax_filings", "column": "quarter", "weight": -0.05, "aggregate": "count"},
        {
            "table": "transfers",
            "column": "amount",
            "weight": 0.00021,
            "aggregate": "sum",
            "key": "payee",
        },
    ],
    "intercept": 58.0,
    "link": "logistic",
}


def test_scores_match_numpy_for_a_three_department_model(scoring_world, key):
    fed, reference, ids = scoring_world
    rng = random.Random(1)
    entities = [*rng.sample(ids, 1200), "unknown-entity", ids[0], ids[0]]  # repeats are fine
    result = fed.client(key).score(parse_model(MODEL), entities)
    assert [r[0] for r in result.rows] == entities  # input order
    ours = np.array([r[1] for r in result.rows])
    expected = plaintext_scores(reference, parse_model(MODEL), entities)
    assert np.max(np.abs(ours - expected)) < 1e-6
    assert result.meta["ciphertexts"] == 1
    assert sorted(result.meta["holders"]) == ["bank-a", "bank-b", "grid", "samr", "tax"]


def test_identity_link_scores_of_many_blocks(scoring_world, key):
    fed, reference, ids = scoring_world
    model = dict(MODEL, link="identity", intercept=0.5)
    entities = ids * 6  # 9000 entities: two ciphertext blocks of 8192 slots
    result = fed.client(key).score(parse_model(model), entities)
    ours = np.array([r[1] for r in result.rows])
    expected = plaintext_scores(reference, parse_model(model), entities)
    assert result.meta["ciphertexts"] == 2
    assert np.max(np.abs(ours - expected)) < 1e-6 * max(1.0, float(np.max(np.abs(expected))))


def test_one_holder_model_and_registration_once(scoring_world, key):
    fed, reference, ids = scoring_world
    model = {
        "entity": "uscc",
        "features": [{"table": "registry", "column": "founded", "weight": 1.0, "default": -1}],
        "link": "identity",
    }
    client = fed.client(key)
    first = client.score(parse_model(model), ids[:50])
    assert first.meta["holders"] == ["samr"]
    expected = plaintext_scores(reference, parse_model(model), ids[:50])
    assert np.max(np.abs(np.array([r[1] for r in first.rows]) - expected)) < 1e-6
    client.model_bytes_sent = 0
    client.score(parse_model(model), ids[50:90])
    assert client.model_bytes_sent == 0  # the weights were not sent again


@pytest.mark.parametrize(
    "feature, error, message",
    [
        ({"table": "nowhere", "column": "x"}, PlanError, "no holder serves a table nowhere"),
        ({"table": "registry", "column": "nothing"}, PlanError, "has no column nothing"),
        ({"table": "registry", "column": "city"}, PlanError, "not a number"),
        (
            {"table": "transfers", "column": "amount", "aggregate": "avg", "key": "payee"},
            PlanError,
            "must be additive",
        ),
        ({"table": "registry", "column": "founded", "key": "capital"}, PlanError, "has no entity"),
    ],
)
def test_bad_models_are_refused_before_anything_runs(scoring_world, key, feature, error, message):
    fed, _, ids = scoring_world
    model = {"entity": "uscc", "features": [dict(feature, weight=1.0)]}
    if feature.get("key") == "capital":
        model["features"][0]["key"] = "no_such_key"
    with pytest.raises(error, match=message):
        fed.client(key).score(parse_model(model), ids[:5])


@pytest.mark.parametrize(
    "data, message",
    [
        ({"features": []}, "needs 'entity'"),
        ({"entity": "u", "features": [{"table": "t", "column": "c"}]}, "needs 'weight'"),
        (
            {"entity": "u", "features": [{"table": "t", "column": "c", "weight": "x"}]},
            "must be a number",
        ),
        (
            {
                "entity": "u",
                "features": [{"table": "t", "column": "c", "weight": 1, "aggregate": "median"}],
            },
            "aggregate is 'median'",
        ),
        (
            {
                "entity": "u",
                "features": [{"table": "t", "column": "c", "weight": 1}],
                "link": "probit",
            },
            "link is 'probit'",
        ),
    ],
)
def test_malformed_model_files_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_model(data)


def test_holder_refuses_a_feature_its_policy_forbids(tmp_path, federation_factory, key):
    rows = [(f"e{i}", i) for i in range(20)]
    fed = federation_factory(
        {"h": {"t": write_shard(tmp_path / "t.csv", [("id", "VARCHAR"), ("v", "BIGINT")], rows)}}
    )
    fed.holders["h"].tables["t"] = type(fed.holders["h"].tables["t"])(
        "t",
        tuple(
            c if c.name != "v" else type(c)(c.name, c.type, c.uses - {"score"}, c.domain)
            for c in fed.holders["h"].tables["t"].columns
        ),
        5,
    )
    fed.coordinator.catalog_ttl = 0
    with pytest.raises((PolicyError, RemoteError), match="may not feed scores"):
        fed.client(key).score(
            parse_model(
                {"entity": "id", "features": [{"table": "t", "column": "v", "weight": 1.0}]}
            ),
            ["e1"],
        )


def test_logistic_link_is_stable_on_both_tails():
    model = parse_model(
        {
            "entity": "u",
            "features": [{"table": "t", "column": "c", "weight": 1}],
            "link": "logistic",
        }
    )
    assert model.apply_link(800.0) == 1.0 and model.apply_link(-800.0) == pytest.approx(0.0)
    assert model.apply_link(0.0) == 0.5
    assert math.isclose(model.apply_link(-30.0), 1 / (1 + math.exp(30)), rel_tol=1e-12)


def test_worker_processes_give_the_same_scores(tmp_path, federation_factory, key):
    """The holder's HE work in spawned worker processes, over many blocks."""
    rng = random.Random(3)
    ids = [f"id{i}" for i in range(10_000)]
    rows = [(u, rng.uniform(-1e4, 1e4), rng.randint(0, 9)) for u in ids if rng.random() < 0.9]
    schema = [("uid", "VARCHAR"), ("x", "DOUBLE"), ("k", "BIGINT")]
    reference = duckdb.connect()
    load_duckdb(reference, schema, rows, "t")
    fed = federation_factory(
        {"h": {"t": write_shard(tmp_path / "t.parquet", schema, rows)}}, workers=2
    )
    model = {
        "entity": "uid",
        "features": [
            {"table": "t", "column": "x", "weight": 0.00123, "default": 7.5},
            {"table": "t", "column": "k", "weight": -0.5},
        ],
        "intercept": 0.25,
    }
    result = fed.client(key).score(parse_model(model), ids)
    expected = plaintext_scores(reference, parse_model(model), ids)
    assert result.meta["ciphertexts"] == 2  # 10,000 entities in blocks of 8192
    assert np.max(np.abs(np.array([r[1] for r in result.rows]) - expected)) < 1e-6


def test_entities_files_one_per_line_or_csv(tmp_path):
    (tmp_path / "a.txt").write_text("uscc\nE1\n\nE2 \n")
    (tmp_path / "b.csv").write_text("name,uscc\nx,E3\ny,E4\n")
    (tmp_path / "c.txt").write_text("E5\nE6\n")
    assert read_entities(tmp_path / "a.txt", "uscc") == ["E1", "E2"]
    assert read_entities(tmp_path / "b.csv", "uscc") == ["E3", "E4"]
    assert read_entities(tmp_path / "c.txt", "uscc") == ["E5", "E6"]
    with pytest.raises(ConfigError, match="no column 'uscc'"):
        (tmp_path / "d.csv").write_text("a,b\n1,2\n")
        read_entities(tmp_path / "d.csv", "uscc")


def test_a_block_where_every_feature_is_zero_still_adds_up(tmp_path, federation_factory, key):
    rows = [(f"z{i}", 0.0) for i in range(50)] + [(f"n{i}", float(i)) for i in range(50)]
    fed = federation_factory(
        {
            "h": {
                "t": write_shard(tmp_path / "t.parquet", [("id", "VARCHAR"), ("x", "DOUBLE")], rows)
            }
        }
    )
    model = parse_model(
        {
            "entity": "id",
            "features": [{"table": "t", "column": "x", "weight": 2.0}],
            "intercept": 1.0,
        }
    )
    result = fed.client(key).score(model, [f"z{i}" for i in range(50)] + ["missing"])
    assert max(abs(r[1] - 1.0) for r in result.rows) < 1e-6


def test_cli_scores_100k_entities_over_three_holders_like_plaintext(tmp_path):
    """The done-when check: `unseen score` for 100 000 entities, a model spanning three holders."""
    n = 100_000
    con = duckdb.connect()
    holders, tables = (
        {},
        {
            "grid": (
                "SELECT 'E' || lpad(i::VARCHAR, 7, '0') AS uscc, "
                "(i * 7919) % 100000 * 1.5 AS kwh FROM range(95000) t(i)"
            ),
            "tax": (
                "SELECT 'E' || lpad((i * 3)::VARCHAR, 7, '0') AS uscc, "
                "((i * 104729) % 997)::BIGINT AS arrears, (i % 13) * 1e5 AS revenue "
                "FROM range(40000) t(i)"
            ),
            "samr": (
                "SELECT 'E' || lpad(i::VARCHAR, 7, '0') AS uscc, 1980 + (i % 40) AS founded "
                "FROM range(100000) t(i) WHERE i % 10 <> 3"
            ),
        },
    )
    for holder, sql in tables.items():
        path = tmp_path / f"{holder}.parquet"
        con.sql(sql).write_parquet(str(path))
        name = {"grid": "electricity", "tax": "tax_filings", "samr": "registry"}[holder]
        holders[holder] = {name: path}
        con.sql(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    model = {
        "entity": "uscc",
        "intercept": -1.2,
        "link": "logistic",
        "features": [
            {"table": "electricity", "column": "kwh", "weight": 1.3e-5, "default": 20000},
            {"table": "tax_filings", "column": "arrears", "weight": 0.004},
            {"table": "tax_filings", "column": "revenue", "weight": -2e-7, "transform": "log1p"},
            {"table": "registry", "column": "founded", "weight": -0.0007, "default": 2000},
        ],
    }
    (tmp_path / "model.json").write_text(json.dumps(model))
    entities = [f"E{i:07d}" for i in range(n)]
    (tmp_path / "entities.txt").write_text("\n".join(entities) + "\n")
    made = unseen("keys", "new", "--out", tmp_path / "key")
    assert made.returncode == 0, made.stderr
    with LocalFederation(holders, tmp_path / "logs") as fed:
        done = unseen(
            "score",
            "--coordinator",
            fed.address,
            "--model",
            tmp_path / "model.json",
            "--entities",
            tmp_path / "entities.txt",
            "--format",
            "json",
            "--key",
            tmp_path / "key",
            timeout=600,
        )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [r[0] for r in out["rows"]] == entities
    ours = np.array([r[1] for r in out["rows"]])
    expected = plaintext_scores(con, parse_model(model), entities)
    assert np.max(np.abs(ours - expected)) < 1e-6
    assert sorted(out["meta"]["holders"]) == ["grid", "samr", "tax"]


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_random_models_on_random_vertical_data_match_numpy(seed, tmp_path, federation_factory, key):
    """Differential: random per-holder tables, random models (features, aggregates, filters,
    transforms, defaults, weights of any magnitude), checked against the plaintext model."""
    rng = random.Random(seed)
    ids = [f"u{i}" for i in range(3000)]
    reference = duckdb.connect()
    holders, columns = {}, []
    for h in range(3):
        table = f"t{h}"
        schema = [("id", "VARCHAR"), ("day", "BIGINT"), ("a", "DOUBLE"), ("b", "BIGINT")]
        rows = [
            (
                u,
                rng.randint(1, 30),
                rng.lognormvariate(rng.choice([0, 5, 10]), 1.5)
                * rng.choice([1, -1] if h == 2 else [1]),
                rng.randint(-9, 10 ** rng.randint(1, 6)),
            )
            for u in ids
            if rng.random() < 0.8
            for _ in range(rng.choice([1, 1, 3]))
        ]
        fmt = (".parquet", ".csv", ".sqlite")[h]
        holders[f"h{h}"] = {
            table: write_shard(tmp_path / f"{table}{fmt}", schema, rows, table=table)
        }
        load_duckdb(reference, schema, rows, table)
        columns += [(table, "a"), (table, "b")]
    fed = federation_factory(holders)
    client = fed.client(key)
    for _ in range(4):
        features = []
        for table, column in rng.sample(columns, rng.randint(1, 6)):
            aggregate = rng.choice(["sum", "avg", "count", "min", "max"])
            feature = {
                "table": table,
                "column": column,
                "aggregate": aggregate,
                "weight": rng.uniform(-1, 1) * 10 ** rng.randint(-6, 1),
                "default": rng.choice([0, 0, rng.uniform(-5, 5)]),
            }
            if rng.random() < 0.4:
                feature["filter"] = f"day <= {rng.randint(1, 30)}"
            if aggregate in ("count", "sum") and column == "b" and rng.random() < 0.3:
                feature["transform"] = "log1p"
                feature["aggregate"] = "count"
            features.append(feature)
        model = {
            "entity": "id",
            "features": features,
            "intercept": rng.uniform(-2, 2),
            "link": rng.choice(["identity", "logistic"]),
        }
        entities = [*rng.sample(ids, 500), "nobody"]
        result = client.score(parse_model(model), entities)
        ours = np.array([r[1] for r in result.rows])
        expected = plaintext_scores(reference, parse_model(model), entities)
        scale = max(1.0, float(np.max(np.abs(expected))))
        assert np.max(np.abs(ours - expected)) < 1e-6 * scale, model
