"""Hierarchical federation: city coordinators (``--as-holder``) under a provincial one.

Real gRPC on loopback, real TenSEAL, every answer compared with DuckDB over the
pooled rows (suppression included): a reduced province of 3 cities over 2 or 3
holders each in quick-start, and 2 cities x 2 holders governed (mTLS on every
channel, vouchers naming every leaf as the federation, ledgers at every leaf
and every city) for the audit chain.
"""

from __future__ import annotations

import json

import grpc
import pytest

from unseen.engine.governance.audit import check_receipts, follow_relays
from unseen.engine.governance.ledger import Receipt, read_ledger
from unseen.engine.transport.peers import HolderPeer
from unseen.engine.transport.rpc import create_channel
from unseen.province import (
    QUERIES,
    SMALL_INDUSTRY,
    check_query,
    start_province,
    write_province,
)
from unseen.v1 import align_pb2, holder_pb2_grpc


@pytest.fixture(scope="module")
def quick(tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("province")
    data = write_province(work / "data", cities=3)
    province = start_province(data, work)
    yield data, province
    province.close()


@pytest.fixture(scope="module")
def governed(tmp_path_factory, key):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("governed-province")
    data = write_province(work / "data", cities=2, holders=lambda i: 2)
    province = start_province(data, work, governed=True, analyst=key)
    yield data, province
    province.close()


@pytest.mark.parametrize("sql", QUERIES)
def test_the_province_answers_as_duckdb_over_the_pooled_rows(quick, key, sql):
    data, province = quick
    with province.client(key) as client:
        result, problems = check_query(client, data, sql)
    assert not problems
    assert result.rows
    # The answer names the leaf holders inside it, behind their cities.
    assert set(result.meta["holders"]) == set(data.shards)


def test_a_group_small_at_one_leaf_is_suppressed_in_the_provincial_answer(quick, key):
    data, province = quick
    sql = "SELECT industry, COUNT(*) AS n, SUM(kwh) AS kwh FROM power GROUP BY industry"
    with province.client(key) as client:
        result = client.query(sql)
    rows = {row[0]: row[1:] for row in result.rows}
    assert rows[SMALL_INDUSTRY] == [None, None]
    reasons = {s["group"]["industry"]: s.get("reason") for s in result.meta["suppressed"]}
    assert reasons[SMALL_INDUSTRY] == "k"
    # Plaintext has the group (2 rows at one leaf of the first city): suppression, not absence.
    pooled = data.con.execute(
        "SELECT COUNT(*) FROM power WHERE industry = ?", [SMALL_INDUSTRY]
    ).fetchone()
    assert pooled == (2,)


def test_a_city_publishes_its_leaves_mask_keys_and_none_of_its_own(quick):
    data, province = quick
    city = next(iter(data.cities))
    peer = HolderPeer(province.city_addresses[city])
    try:
        catalog = peer.catalog()
    finally:
        peer.close()
    assert catalog.holder == city
    assert catalog.mask_key is None
    leaves = {leaf: province.holders[leaf].mask_identity for leaf in data.cities[city]}
    assert {p.holder: p for p in catalog.leaves} == leaves
    table = catalog.table("power")
    assert table is not None and set(table.holders) == set(data.cities[city])


def test_a_city_refuses_scoring_rpcs_with_unimplemented(quick):
    data, province = quick
    channel = create_channel(province.city_addresses[next(iter(data.cities))])
    try:
        with pytest.raises(grpc.RpcError) as info:
            holder_pb2_grpc.HolderStub(channel).Align(align_pb2.AlignRequest(), timeout=10)
    finally:
        channel.close()
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "relays only aggregates" in info.value.details()


@pytest.mark.parametrize("sql", QUERIES[:3])
def test_a_governed_province_answers_over_mtls_under_vouchers(governed, key, sql):
    data, province = governed
    with province.client(key) as client:
        _, problems = check_query(client, data, sql)
    assert not problems


def test_audit_follows_a_provincial_receipt_down_to_city_and_holder_ledgers(governed, key):
    data, province = governed
    with province.client(key) as client:
        result = client.query(QUERIES[0])
    receipts = [Receipt.decode(json.dumps(r)) for r in result.meta["receipts"]]
    ledgers = [read_ledger(path) for path in province.ledgers.values()]
    keys = {name: k.public_key for name, k in province.ledger_keys.items()}
    report = check_receipts(receipts, ledgers, keys)
    assert report.ok, [f.detail for f in report.findings if f.status != "ok"]
    # Every city's receipt and every leaf's: each level ledgered this query.
    assert {r.holder for r in receipts} == set(data.cities) | set(data.shards)
    relays = follow_relays(receipts, ledgers)
    assert [r.status for r in relays] == ["ok"] * len(data.cities)
    for relay in relays:
        assert {r.holder for r in relay.below} == set(data.cities[relay.receipt.holder])
    # A leaf's receipt dropped from the answer: the city's ledger no longer agrees.
    city = relays[0]
    dropped = [r for r in receipts if r != city.below[0]]
    assert follow_relays(dropped, ledgers)[0].status == "broken"
