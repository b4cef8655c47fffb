"""A table's minimum score batch: a score request names at least that many distinct
entities (default 1, a single loan applicant), refused at the holder otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.config import load_tables, parse_config
from unseen.engine.errors import ConfigError, RemoteError
from unseen.engine.query.model import parse_model

SCHEMA = [("account", "VARCHAR"), ("balance", "DOUBLE")]
ROWS = [(f"acct-{i:03d}", 100.0 + i) for i in range(200)]
MODEL = {"entity": "account", "features": [{"table": "accounts", "column": "balance", "weight": 2}]}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    path = write_shard(tmp_path_factory.mktemp("batch") / "accounts.csv", SCHEMA, ROWS)
    fed = start_federation({"bank": {"accounts": path}})
    yield fed
    fed.close()


def test_default_batch_of_one_scores_a_single_applicant(fed, key):
    result = fed.client(key).score(parse_model(MODEL), ["acct-007"])
    assert np.isclose(result.rows[0][1], 2 * 107.0, atol=1e-6)


def test_a_table_with_a_minimum_batch_refuses_smaller_requests(fed, key):
    node = fed.holders["bank"]
    node.tables["accounts"] = dataclasses.replace(node.tables["accounts"], min_score_batch=3)
    try:
        client = fed.client(key)
        with pytest.raises(RemoteError) as info:
            # Repeating one applicant does not make a batch.
            client.score(parse_model(MODEL), ["acct-001", "acct-002", "acct-001"])
        assert info.value.code == "PERMISSION_DENIED"
        assert "at least 3 distinct entities" in str(info.value)
        result = client.score(parse_model(MODEL), ["acct-001", "acct-002", "acct-003"])
        assert [r[1] for r in result.rows] == pytest.approx([202.0, 204.0, 206.0], abs=1e-6)
    finally:
        node.tables["accounts"] = dataclasses.replace(node.tables["accounts"], min_score_batch=1)


def test_min_score_batch_is_read_from_the_config_file(tmp_path):
    table = {"source": str(write_shard(tmp_path / "a.csv", SCHEMA, ROWS)), "min_score_batch": 25}
    open_node = {"governance": {"require_vouchers": False}}
    config = parse_config({**open_node, "tables": {"accounts": table}})
    _, infos = load_tables(config)
    assert infos["accounts"].min_score_batch == 25
    with pytest.raises(ConfigError, match="min_score_batch"):
        parse_config({**open_node, "tables": {"accounts": dict(table, min_score_batch=0)}})
