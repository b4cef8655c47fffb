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

from tests.conftest import unseen
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError
from unseen.engine.governance.audit import check_receipts, follow_relays
from unseen.engine.governance.ledger import LedgerRange, Receipt, read_ledger
from unseen.engine.governance.signing import SigningKey
from unseen.engine.privacy.masks import MaskKey, Participant
from unseen.engine.transport.peers import HolderPeer
from unseen.engine.transport.rpc import create_channel
from unseen.governance import fetch_ledger
from unseen.nodes.city import CityHolder
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder
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


SUPERVISOR = SigningKey.generate()


@pytest.fixture(scope="module")
def governed(tmp_path_factory, key):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("governed-province")
    data = write_province(work / "data", cities=2, holders=lambda i: 2)
    province = start_province(data, work, governed=True, analyst=key, supervisor=SUPERVISOR)
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


def test_unseen_audit_check_follows_the_receipts_down_from_the_cli(governed, key, tmp_path):
    data, province = governed
    with province.client(key) as client:
        result = client.query(QUERIES[1])
    receipts = tmp_path / "answer.receipts"
    receipts.write_text("".join(json.dumps(r) + "\n" for r in result.meta["receipts"]))
    args: list[object] = ["audit", "check", "--receipts", receipts]
    for path in province.ledgers.values():
        args += ["--ledger", path]
    for name, signing in province.ledger_keys.items():
        args += ["--holder-key", f"{name}={signing.public_key.to_text()}"]
    done = unseen(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    relays = [line for line in done.stdout.splitlines() if ": relay ok: " in line]
    assert len(relays) == len(data.cities)
    assert "all match the ledgers" in done.stdout


def test_a_leaf_that_is_down_fails_the_provincial_query_naming_it(tmp_path, key):
    data = write_province(tmp_path / "data", cities=2, holders=lambda i: 2)
    province = start_province(data, tmp_path)
    try:
        city, leaves = next(iter(data.cities.items()))
        with province.client(key) as client:
            client.query(QUERIES[0])  # every holder answered once: catalogs known
            province.stop_holder(leaves[1])
            with pytest.raises(RemoteError) as info:
                client.query(QUERIES[0])
    finally:
        province.close()
    assert info.value.code == "UNAVAILABLE"
    assert city in info.value.reason and leaves[1] in info.value.reason


def test_a_supervisor_fetches_city_and_leaf_ledgers_over_rpc_and_follows_the_relays(governed, key):
    data, province = governed
    with province.client(key) as client:
        result = client.query(QUERIES[2])
    receipts = [Receipt.decode(json.dumps(r)) for r in result.meta["receipts"]]
    addresses = {**province.city_addresses, **province.holder_addresses}
    tls = province.tls["supervisor"]
    ranges = []
    for name, address in addresses.items():
        holder, merged, _ = fetch_ledger(address, SUPERVISOR, tls=tls)
        assert holder == name
        ranges.append(LedgerRange.from_dict(merged))
    keys = {name: k.public_key for name, k in province.ledger_keys.items()}
    assert check_receipts(receipts, ranges, keys).ok
    relays = follow_relays(receipts, ranges)
    assert {r.receipt.holder for r in relays} == set(data.cities)
    assert all(r.status == "ok" for r in relays)


def test_levels_nest_a_region_of_cities_under_the_province(tmp_path, key):
    """Province → region (a city coordinator over two city coordinators) and a city → leaves."""
    data = write_province(tmp_path / "data", cities=3, holders=lambda i: 2)
    servers, coordinators = [], []

    def serve(coordinator: Coordinator, name: str | None) -> str:
        coordinators.append(coordinator)
        city = CityHolder(name, coordinator) if name else None
        server, port = serve_coordinator(coordinator, "127.0.0.1:0", city=city)
        servers.append(server)
        return f"127.0.0.1:{port}"

    try:
        cities = {}
        for city, leaves in data.cities.items():
            addresses = []
            for leaf in leaves:
                node = HolderNode.quickstart(leaf, {"power": data.shards[leaf]})
                server, port = serve_holder(node, "127.0.0.1:0")
                servers.append(server)
                addresses.append(f"127.0.0.1:{port}")
            cities[city] = serve(Coordinator.connect(addresses), city)
        names = list(cities)
        region = serve(Coordinator.connect([cities[n] for n in names[:2]]), "east")
        top = serve(Coordinator.connect([region, cities[names[2]]]), None)
        with Client(top, key=key) as client:
            for sql in QUERIES:
                result, problems = check_query(client, data, sql)
                assert not problems, sql
        assert set(result.meta["holders"]) == set(data.shards)
    finally:
        for coordinator in reversed(coordinators):
            coordinator.close()
        for server in reversed(servers):
            server.stop(None).wait()


def test_a_request_the_leaves_refuse_is_ledgered_at_the_city_and_at_each_leaf(governed, key):
    data, province = governed
    city = next(iter(data.cities))
    before = {n: read_ledger(p).head for n, p in province.ledgers.items()}
    client = province.client(key)
    client.vouchers = []  # no voucher: every leaf refuses
    with client, pytest.raises(RemoteError) as info:
        client.query(QUERIES[0])
    assert info.value.code == "PERMISSION_DENIED"
    (entry,) = read_ledger(province.ledgers[city], before[city] + 1).entries
    assert (entry.kind, entry.outcome) == ("relay", "refused")
    assert entry.reason.startswith("PERMISSION_DENIED from holder ")
    for leaf in data.cities[city]:
        refused = read_ledger(province.ledgers[leaf], before[leaf] + 1).entries
        assert [e.outcome for e in refused] == ["refused"]


def test_the_province_plans_from_cached_catalogs_and_refetches_when_a_leaf_key_changes(
    tmp_path, key
):
    """Issue 9 (performance): no catalog fan-out per provincial query, yet a leaf's
    new mask key (as after a restart behind its city) is never used stale."""
    data = write_province(tmp_path / "data", cities=2, holders=lambda i: 2)
    servers, coordinators, leaves, cities = [], [], {}, []
    try:
        addresses = []
        for city_name, names in data.cities.items():
            below = []
            for leaf in names:
                node = HolderNode.quickstart(leaf, {"power": data.shards[leaf]})
                leaves[leaf] = node
                server, port = serve_holder(node, "127.0.0.1:0")
                servers.append(server)
                below.append(f"127.0.0.1:{port}")
            coordinator = Coordinator.connect(below)
            coordinators.append(coordinator)
            city = CityHolder(city_name, coordinator)
            cities.append(city)
            server, port = serve_coordinator(coordinator, "127.0.0.1:0", city=city)
            servers.append(server)
            addresses.append(f"127.0.0.1:{port}")
        top = Coordinator.connect(addresses)
        coordinators.append(top)
        server, port = serve_coordinator(top, "127.0.0.1:0")
        servers.append(server)
        asked = []
        for city in cities:
            published = city.catalog
            city.catalog = lambda budget=None, p=published: asked.append(1) or p(budget)  # type: ignore[method-assign]
        with Client(f"127.0.0.1:{port}", key=key) as client:
            for _ in range(3):
                _, problems = check_query(client, data, QUERIES[0])
                assert not problems
            # The analyst's catalog and the first query's plan: one fetch per city.
            assert len(asked) == len(cities)
            restarted = leaves[next(iter(data.cities.values()))[1]]
            restarted.mask_key = MaskKey.generate()
            restarted._mask_identity = Participant(restarted.name, restarted.mask_key.public)
            result, problems = check_query(client, data, QUERIES[0])
            assert not problems and result.rows
            assert len(asked) == 2 * len(cities)  # the changed digest made it fetch again
    finally:
        for coordinator in reversed(coordinators):
            coordinator.close()
        for server in reversed(servers):
            server.stop(None).wait()
