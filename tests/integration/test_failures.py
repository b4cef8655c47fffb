"""A failing holder fails the query, by name, never with a partial sum."""

from __future__ import annotations

import pytest

from engine.errors import RemoteError
from tests.shards import write_shard

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]


@pytest.fixture
def three(tmp_path, federation_factory):
    rows = [("a", 1)] * 10 + [("b", 2)] * 10
    holders = {
        f"h{i}": {"t": write_shard(tmp_path / f"h{i}.parquet", SCHEMA, rows)} for i in range(3)
    }
    return federation_factory(holders)


def test_a_down_holder_is_named_and_no_partial_answer_is_given(three, key):
    client = three.client(key, timeout=20)
    assert client.query("SELECT SUM(v) FROM t").rows == [[90]]
    three.stop_holder("h1")
    three.coordinator.catalog_ttl = 0  # do not answer from the cached catalogs
    with pytest.raises(RemoteError) as info:
        client.query("SELECT SUM(v) FROM t")
    assert info.value.code == "UNAVAILABLE"
    assert "holder h1" in info.value.reason


def test_holder_that_lost_the_key_gets_it_again(three, key):
    client = three.client(key)
    client.register_key()
    for node in three.holders.values():
        node.keys = type(node.keys)()  # as after a holder restart
    assert client.query("SELECT COUNT(*) FROM t").rows == [[60]]


def test_coordinator_that_lost_the_key_asks_the_client_again(three, key):
    client = three.client(key)
    client.register_key()
    three.coordinator.keys = type(three.coordinator.keys)()
    assert client.query("SELECT COUNT(*), SUM(v) FROM t").rows == [[60, 90]]
