"""Hierarchy pieces one layer at a time: catalog leaves on the wire and in the merge, the
province's participants and voucher routing, the coordinator config file, relay digests."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from tests.unit.test_coordinator import _PLAN, FakeHolder, _coordinator
from unseen.engine.config import load_coordinator_config
from unseen.engine.crypto import bfv
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import ConfigError, HolderError, PlanError, PolicyError, RemoteError
from unseen.engine.governance.audit import relay_digest
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.masks import MAX_PARTICIPANTS, MaskKey, Participant
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo, merge
from unseen.engine.query.types import SqlType
from unseen.engine.transport import serde
from unseen.engine.transport.peers import encode_plan
from unseen.nodes.aggregate import participating
from unseen.nodes.city import CityHolder
from unseen.nodes.vouchers import vouchers_for


def _leaf(name: str) -> Participant:
    return Participant(name, MaskKey.generate().public, b"cert", b"sig")


def _table(holders: tuple[str, ...] = (), dp: DpPolicy | None = None) -> TableInfo:
    column = ColumnInfo("kwh", SqlType("INTEGER"), frozenset({"aggregate"}))
    return TableInfo("power", (column,), 5, holders, dp=dp)


def _city(name: str, leaves: tuple[str, ...], dp: DpPolicy | None = None) -> Catalog:
    return Catalog(name, (_table(leaves, dp),), leaves=tuple(_leaf(n) for n in leaves))


def test_a_citys_leaf_keys_round_trip_with_certificates():
    catalog = _city("north", ("a1", "a2"))
    again = serde.catalog_from_proto(serde.catalog_to_proto(catalog))
    assert again.leaves == catalog.leaves
    assert again.mask_key is None
    assert again.mask_participants == catalog.leaves


def test_a_catalog_relaying_too_many_leaves_is_refused():
    catalog = _city("north", tuple(f"h{i}" for i in range(MAX_PARTICIPANTS + 1)))
    with pytest.raises(PlanError, match=f"at most {MAX_PARTICIPANTS}"):
        serde.catalog_from_proto(serde.catalog_to_proto(catalog))


def test_a_merged_table_lists_the_leaves_behind_each_city():
    plain = Catalog("grid", (_table(),), mask_key=_leaf("grid"))
    merged = merge([_city("north", ("a1", "a2")), plain])
    table = merged.table("power")
    assert table is not None and table.holders == ("a1", "a2", "grid")


def test_dp_honest_holders_are_counted_in_leaves_not_cities():
    dp = DpPolicy(unit="id", max_rows=1, rho=Fraction(1, 2), honest_holders=3)
    # One city over three leaves: three noise shares, enough for honest_holders = 3.
    assert merge([_city("north", ("a1", "a2", "a3"), dp)]).table("power") is not None
    # Two leaves are not, however many cities they sit behind.
    short = merge([_city("north", ("a1",), dp), _city("south", ("b1",), dp)])
    assert short.table("power") is None
    assert "3 honest holders but 2" in (short.conflict("power") or "")


class _Peer:
    def __init__(self, name: str):
        self.name, self.address = name, f"{name}:1"


def test_the_province_lists_every_leaf_of_every_city_as_a_participant():
    north, south = _Peer("north"), _Peer("south")
    catalogs = [(north, _city("north", ("a1", "a2"))), (south, _city("south", ("b1",)))]
    chosen = participating([north, south], catalogs)  # type: ignore[arg-type]
    assert [(p.name, [k.holder for k in keys]) for p, keys in chosen] == [
        ("north", ["a1", "a2"]),
        ("south", ["b1"]),
    ]


def test_a_city_is_named_by_a_federation_naming_its_leaves():
    north, south = _Peer("north"), _Peer("south")
    catalogs = [(north, _city("north", ("a1", "a2"))), (south, _city("south", ("b1",)))]
    # Only north hosts; the voucher's federation names b1, so south takes part too.
    chosen = participating([north], catalogs, frozenset({"a1", "a2", "b1"}), least=2)  # type: ignore[list-item]
    assert [p.name for p, _ in chosen] == ["north", "south"]


def test_a_city_is_routed_the_vouchers_of_its_leaves_only():
    routed = (("a1", "v-a1"), ("b1", "v-b1"), (None, "garbled"))
    assert vouchers_for({"north", "a1", "a2"}, routed) == ("v-a1", "garbled")
    assert vouchers_for("b1", routed) == ("v-b1", "garbled")


def test_a_coordinator_config_file_names_the_city(tmp_path):
    key = tmp_path / "city.key"
    key.write_text("x")
    path = tmp_path / "city.toml"
    path.write_text(
        '[coordinator]\nlisten = "127.0.0.1:7000"\nholders = ["127.0.0.1:7001"]\n'
        'as_holder = "guangzhou"\nledger = "city.sqlite"\nsigning_key = "city.key"\n'
    )
    config = load_coordinator_config(path)
    assert config.as_holder == "guangzhou" and config.holders == ("127.0.0.1:7001",)
    assert config.ledger == tmp_path / "city.sqlite" and config.signing_key == key


@pytest.mark.parametrize(
    "text, words",
    [
        ('[coordinator]\nas_holdr = "x"\n', "as_holdr"),
        ('[coordinator]\nholders = "127.0.0.1:1"\n', "expected a list"),
        ("[coordinator\n", "not valid TOML"),
    ],
)
def test_a_bad_coordinator_config_is_one_readable_error(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_coordinator_config(path)


def test_a_relay_digest_does_not_depend_on_how_a_receipt_was_spelled():
    receipt = {"holder": "a1", "index": 3, "entry_hash": "00" * 32}
    compact = json.dumps(receipt, separators=(",", ":"), sort_keys=True)
    spaced = json.dumps(receipt, indent=2)
    assert relay_digest([compact]) == relay_digest([spaced])
    assert relay_digest([compact]) != relay_digest([])


def test_a_table_in_conflict_at_one_city_is_refused_at_the_province():
    broken = Catalog("north", (), conflicts=(("power", "holders disagree"),), leaves=(_leaf("a1"),))
    merged = merge([broken, _city("south", ("b1", "b2"))])
    assert merged.table("power") is None
    assert merged.conflict("power") == "at north: holders disagree"


# -- CityHolder over fake holders (tests/unit/test_coordinator.py) -----------------------

NONCE = b"n" * 32


@pytest.fixture(scope="module")
def analyst() -> AnalystKey:
    return AnalystKey.generate()


def test_a_city_relays_both_rounds_unchanged_and_sums_its_leaves(analyst):
    a, b = FakeHolder("a", 1.0), FakeHolder("b", 2.0, suppressed=(1,))
    city = CityHolder("north", _coordinator(analyst, a, b))
    catalog = city.catalog()
    assert [k.holder for k in catalog.leaves] == ["h-a", "h-b"] and catalog.mask_key is None
    failing, receipts = city.prepare_aggregate(analyst.key_id, _PLAN, encode_plan(_PLAN), "q1")
    assert failing == {1: "k"} and len(receipts) == 2
    participants = (*catalog.leaves, Participant("elsewhere", MaskKey.generate().public))
    sums = city.aggregate(analyst.key_id, "q1", NONCE, participants, frozenset({1}))
    slots = np.concatenate([bfv.decrypt(analyst.aggregate_secret, c) for c in sums])
    assert np.array_equal(slots, np.full(len(slots), 3))
    # Same query id, nonce, participants (other cities' leaves too) and suppressed set.
    assert a.rounds[-1] == ("masked", ("q1", NONCE, participants, (1,)))
    assert b.rounds[-1] == a.rounds[-1]


def test_a_silent_host_keeps_its_table_listed_and_fails_round_one_by_name(analyst):
    a, b = FakeHolder("a"), FakeHolder("b")
    city = CityHolder("north", _coordinator(analyst, a, b))
    city.catalog()
    b.catalog_error = RemoteError("UNAVAILABLE", "down")
    catalog = city.catalog()
    assert catalog.table("t") is not None
    assert [k.holder for k in catalog.leaves] == ["h-a"]
    with pytest.raises(HolderError) as info:
        city.prepare_aggregate(analyst.key_id, _PLAN, encode_plan(_PLAN), "q2")
    assert info.value.code == "UNAVAILABLE" and info.value.holder.startswith("h-b")


def test_a_leaf_listed_but_silent_in_round_one_refuses_round_two(analyst):
    a, b, masks_only = FakeHolder("a"), FakeHolder("b"), FakeHolder("c", tables=())
    city = CityHolder("north", _coordinator(analyst, a, b, masks_only))
    catalog = city.catalog()  # what the province lists: three leaves
    masks_only.catalog_error = RemoteError("UNAVAILABLE", "down")
    city.prepare_aggregate(analyst.key_id, _PLAN, encode_plan(_PLAN), "q3")  # c hosts nothing
    with pytest.raises(PolicyError, match="did not take part in round 1"):
        city.aggregate(analyst.key_id, "q3", NONCE, catalog.leaves, frozenset())


def test_a_round_two_omitting_a_leaf_of_round_one_is_refused(analyst):
    a, b = FakeHolder("a"), FakeHolder("b")
    city = CityHolder("north", _coordinator(analyst, a, b))
    catalog = city.catalog()
    city.prepare_aggregate(analyst.key_id, _PLAN, encode_plan(_PLAN), "q4")
    with pytest.raises(PolicyError, match="not among the participants"):
        city.aggregate(analyst.key_id, "q4", NONCE, catalog.leaves[:1], frozenset())
