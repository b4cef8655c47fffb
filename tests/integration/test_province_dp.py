"""Differential privacy through two levels: noise shares are counted per leaf holder.

The governance test world's ``loans`` is a dp table at both banks with
``honest_holders = 2``. Both banks sit behind one city coordinator ("north"),
the grid behind another ("south", masks only), under one province. The province
sees one catalog hosting ``loans``, but two leaves add noise: the merge must
count leaves (or it would refuse the table as under-noised), and the analyst
must state each cell's sd from two shares. Each bank charges its own ledger.
Real gRPC, TenSEAL and DuckDB; the answer is compared with DuckDB within the
noise it states.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.dp_world import build_dp_world, dp_vouchers
from tests.governance_fixtures import entries
from unseen.engine.config import load_config
from unseen.engine.privacy.budget import CHARGE_KIND
from unseen.nodes.city import CityHolder
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SQL = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city ORDER BY city"


@pytest.fixture
def dp_province(tmp_path):  # type: ignore[no-untyped-def]
    world = build_dp_world(tmp_path / "world", honest=2)
    servers, coordinators, addresses = [], [], {}
    for name, path in world.configs.items():
        node = HolderNode.from_config(load_config(path))
        server, port = serve_holder(node, "127.0.0.1:0")
        servers.append(server)
        addresses[name] = f"127.0.0.1:{port}"
    cities = {}
    for city, leaves in (("north", ["bank-a", "bank-b"]), ("south", ["grid"])):
        coordinator = Coordinator.connect([addresses[h] for h in leaves])
        coordinators.append(coordinator)
        holder = CityHolder(city, coordinator)
        server, port = serve_coordinator(coordinator, "127.0.0.1:0", city=holder)
        servers.append(server)
        cities[city] = f"127.0.0.1:{port}"
    province = Coordinator.connect(list(cities.values()))
    coordinators.append(province)
    server, port = serve_coordinator(province, "127.0.0.1:0")
    servers.append(server)
    yield world, f"127.0.0.1:{port}"
    for coordinator in reversed(coordinators):
        coordinator.close()
    for server in reversed(servers):
        server.stop(None).wait()


def test_a_dp_answer_through_a_city_states_the_noise_of_every_leaf(dp_province, key):
    from unseen.engine.client import Client

    world, address = dp_province
    with Client(address, key=key, vouchers=dp_vouchers(world, key.key_id, "2")) as client:
        catalog = client.catalog()
        loans = catalog.table("loans")
        assert loans is not None and set(loans.holders) == {"bank-a", "bank-b"}
        result = client.query(SQL)
    dp = result.meta["dp"]
    assert dp["holders"] == 2 and dp["honest_holders"] == 2
    exact = world.reference.execute(SQL).fetchall()
    assert [r[0] for r in result.rows] == [r[0] for r in exact]
    for row, truth, sds in zip(result.rows, exact, dp["sd"], strict=True):
        for column in (1, 2):
            assert abs(row[column] - truth[column]) <= 6 * sds[column]
        assert row[1] != truth[1] or row[2] != truth[2]  # noise was added
    for bank in ("bank-a", "bank-b"):
        charges = [e for e in entries(world.ledgers[bank]) if e.kind == CHARGE_KIND]
        assert len(charges) == 1 and charges[0].outcome == "answered"
    budgets = {b["holder"]: Fraction(b["spent"]) for b in dp["budget"]}
    assert budgets == {"bank-a": Fraction(1, 2), "bank-b": Fraction(1, 2)}
