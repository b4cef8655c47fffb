"""Issue 16 end to end: registered assets, grades and the data subjects' consents.

Real holders built from config files (registration and consents required),
real gRPC over loopback, real TenSEAL, real DuckDB reference. Each rule is
refused with a clear reason *and* ledgered at the holder.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.consent_fixtures import GRADES, build_consent_world
from tests.governance_fixtures import ACCOUNTS, entries, head, start_in_process, utcnow
from unseen.engine.errors import PolicyError, RemoteError
from unseen.engine.query.expr import Column
from unseen.engine.query.model import parse_model
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure
from unseen.oracle.plaintext import plaintext_scores

MODEL = parse_model(
    {
        "entity": "account",
        "features": [
            {"table": "loans", "column": "amount", "weight": 1.5e-5, "aggregate": "sum"},
            {"table": "power", "column": "kwh", "weight": -2e-4, "default": 123.0},
        ],
        "intercept": 0.3,
        "link": "identity",
    }
)
HOLDERS = ("bank-a", "bank-b", "grid")


@pytest.fixture(scope="module")
def cw(tmp_path_factory):
    return build_consent_world(tmp_path_factory.mktemp("consent"))


@pytest.fixture(scope="module")
def fed(cw):
    federation = start_in_process(cw.world)
    yield federation
    federation.close()


def _heads(cw) -> dict[str, int]:
    return {name: head(path) for name, path in cw.world.ledgers.items()}


def _refusal(call, *args) -> str:
    with pytest.raises(RemoteError) as info:
        call(*args)
    assert info.value.code == "PERMISSION_DENIED", str(info.value)
    return str(info.value)


def _refused_somewhere(cw, before) -> bool:
    """Whether a holder ledgered the refusal (the coordinator stops at the first)."""
    return any(
        e.outcome == "refused"
        for name, path in cw.world.ledgers.items()
        for e in entries(path, before[name])
    )


def _logged(cw, before, holder="grid"):
    logged = entries(cw.world.ledgers[holder], before[holder])
    return [(e.kind, e.outcome, e.reason) for e in logged]


# -- 1: registration ------------------------------------------------------------------------------


def test_the_catalog_shows_asset_ids_and_grades(fed, cw, key):
    catalog = fed.client(key).catalog()
    loans = catalog.table("loans")
    assert loans is not None
    banks = ("bank-a", "bank-b")
    assert set(loans.assets) == {cw.registrations[b].asset_id for b in banks}
    assert {c.name.lower(): c.grade for c in loans.columns} == GRADES["loans"]
    # Grades narrow the config's uses: rate (sensitive) loses aggregate, officer (core) all.
    assert loans.column("rate").uses == frozenset()
    assert loans.column("officer").uses == frozenset()
    assert loans.column("amount").uses == frozenset({"aggregate", "score", "filter"})
    assert loans.min_group_size == 5  # the config says 3; internal columns raise it


def test_registrations_are_ledgered_once(cw, fed):
    for holder in HOLDERS:
        assets = [e for e in entries(cw.world.ledgers[holder]) if e.kind == "asset"]
        assert [(e.outcome, e.plan_digest) for e in assets] == [
            ("answered", cw.registrations[holder].digest)
        ]
        assert cw.registrations[holder].asset_id in assets[0].reason


def test_an_aggregate_on_registered_assets_matches_duckdb_and_notes_the_assets(fed, cw, key):
    before = _heads(cw)
    sql = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city ORDER BY city"
    result = fed.client(key, cw.world.vouchers(key.key_id)).query(sql)
    assert result.rows == [list(r) for r in cw.world.reference.sql(sql).fetchall()]
    for bank in ("bank-a", "bank-b"):
        (entry,) = entries(cw.world.ledgers[bank], before[bank])
        assert entry.outcome == "answered"
        asset = cw.registrations[bank].asset_id
        assert entry.reason == f"assets={asset} purpose=integration test"


def test_a_voucher_naming_another_tables_asset_is_refused_and_ledgered(fed, cw, key):
    grid_asset = cw.registrations["grid"].asset_id
    vouchers = [cw.world.voucher(b, key.key_id, assets=[grid_asset]) for b in ("bank-a", "bank-b")]
    before = _heads(cw)
    reason = _refusal(fed.client(key, vouchers).query, "SELECT COUNT(*) FROM loans")
    assert "names assets that do not register table loans" in reason
    assert _logged(cw, before, "bank-a")[0][:2] == ("aggregate", "refused")


# -- 2: grades ------------------------------------------------------------------------------------


def _direct_aggregate(fed, key, holder, plan, vouchers):
    """Round 1 sent straight to ``holder``: where the data is read, so where grades,
    registrations and consents must refuse."""
    node = fed.holders[holder]
    node.keys.register(key.public)
    return node.prepare_aggregate(key.key_id, plan, "q-direct", tuple(vouchers), b"plan")


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (
            AggregatePlan("loans", None, (), (Measure(Column("rate"), Encoding.FLOAT),)),
            "column loans.rate is graded sensitive: aggregates only in dp mode",
        ),
        (
            AggregatePlan("loans", None, (GroupColumn("officer", ("officer-1",)),), ()),
            "column loans.officer is graded core: it never leaves the holder, not even encrypted",
        ),
    ],
    ids=["sensitive-aggregate", "core-group"],
)
def test_a_grade_that_forbids_the_use_is_refused_and_ledgered(fed, cw, key, plan, reason):
    # Sent to the holder directly, as a colluding coordinator would: the friendly
    # client already refuses it from the graded catalog.
    scope = {"loans": {"rate": ["aggregate"], "officer": ["group"]}}
    voucher = cw.world.voucher("bank-a", key.key_id, scope)
    before = _heads(cw)
    with pytest.raises(PolicyError) as info:
        _direct_aggregate(fed, key, "bank-a", plan, [voucher])
    assert str(info.value) == reason
    assert _logged(cw, before, "bank-a") == [("aggregate", "refused", reason)]


# -- 3: consents ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def approved(fed, cw, key):
    """The issuer's approval of MODEL (a score computes only with an approved model).

    The issuer reviews the model once, from a prepare under a valid consent; every
    voucher below carries this approval, so any refusal is the consent check's.
    """
    subject = ACCOUNTS[0]
    client = fed.client(key, cw.vouchers(key.key_id, [cw.consent(subject, key.key_id)], [subject]))
    return cw.world.approve(client, MODEL, [subject])


def _score(fed, key, vouchers, ids, approved):
    """Score ``ids`` with the approved MODEL under ``vouchers`` (which carry the
    approval: a refusal can then only be the consent check's)."""
    return fed.client(key, vouchers).score(MODEL, ids, approved[1])


def test_consented_scores_match_plaintext_and_the_ledger_names_the_consent_set(
    fed, cw, key, approved
):
    ids = ACCOUNTS[:3]
    consents = [cw.consent(a, key.key_id) for a in ids]
    before = _heads(cw)
    result = _score(
        fed, key, cw.vouchers(key.key_id, consents, ids, model=approved[0]), ids, approved
    )
    expected = plaintext_scores(cw.world.reference, MODEL, ids)
    assert np.max(np.abs(np.array([r[1] for r in result.rows]) - expected)) < 1e-6
    for holder in HOLDERS:
        logged = entries(cw.world.ledgers[holder], before[holder])
        # The prepare ran once, at the issuer's review of the model (the fixture); an
        # approved model's exponents come with its weights, so the score is one entry.
        assert [(e.kind, e.outcome) for e in logged] == [("score", "answered")]
        listed = ",".join(sorted(c.digest[:16] for c in consents))
        assert all(f"consents={listed} purpose=integration test" in e.reason for e in logged)
        assert not any(a in e.reason for a in ids for e in logged)


def test_a_missing_consent_is_refused_by_count_and_ledgered(fed, cw, key, approved):
    ids = ACCOUNTS[3:6]
    consents = [cw.consent(a, key.key_id) for a in ids[:2]]  # the third never consented
    before = _heads(cw)
    reason = _refusal(
        _score, fed, key, cw.vouchers(key.key_id, consents, ids, model=approved[0]), ids, approved
    )
    assert reason.endswith("1 of the 3 requested entities have no valid consent (1 missing)")
    assert not any(a in reason for a in ids)
    assert _refused_somewhere(cw, before)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", "1 expired"),
        ("forged", "1 not signed by the subject (forged)"),
        ("other grantee", "1 granted to another analyst"),
        ("other purpose", "1 for another purpose"),
        ("other holder", "1 not for this holder or these assets"),
    ],
)
def test_an_invalid_consent_is_refused_with_its_reason(
    fed, cw, key, approved, other_key, case, expected
):
    ids = [ACCOUNTS[6], ACCOUNTS[7]]
    good = cw.consent(ids[0], key.key_id)
    kwargs = {
        "expired": {"now": utcnow() - dt.timedelta(hours=3)},
        "forged": {"key": cw.world.rogue},
        "other grantee": {"grantee": other_key.key_id},
        "other purpose": {"purpose": "marketing"},
        "other holder": {"holders": ["bank-z"]},
    }[case]
    grantee = kwargs.pop("grantee", key.key_id)
    bad = cw.consent(ids[1], grantee, **kwargs)
    before = _heads(cw)
    reason = _refusal(
        _score,
        fed,
        key,
        cw.vouchers(key.key_id, [good, bad], ids, model=approved[0]),
        ids,
        approved,
    )
    assert reason.endswith(f"1 of the 2 requested entities have no valid consent ({expected})")
    assert _refused_somewhere(cw, before)


def test_a_withdrawal_takes_effect_at_every_holder_at_the_next_request(fed, cw, key, approved):
    ids = ACCOUNTS[8:11]
    consents = [cw.consent(a, key.key_id) for a in ids]
    vouchers = cw.vouchers(key.key_id, consents, ids, model=approved[0])
    assert len(_score(fed, key, vouchers, ids, approved).rows) == 3
    cw.withdraw(ids[1], consents[1])
    before = _heads(cw)
    reason = _refusal(_score, fed, key, vouchers, ids, approved)
    assert reason.endswith("1 of the 3 requested entities have no valid consent (1 withdrawn)")
    assert _refused_somewhere(cw, before)
    # The others are still answered.
    others = [ids[0], ids[2]]
    result = _score(fed, key, vouchers, others, approved)
    expected = plaintext_scores(cw.world.reference, MODEL, others)
    assert np.max(np.abs(np.array([r[1] for r in result.rows]) - expected)) < 1e-6


def test_a_withdrawal_signed_by_someone_else_withdraws_nothing(fed, cw, key, approved):
    from unseen.engine.governance.consent import publish, withdraw

    ids = [ACCOUNTS[11]]
    consent = cw.consent(ids[0], key.key_id)
    publish(cw.register, withdraw(cw.world.rogue, consent))
    assert (
        len(
            _score(
                fed, key, cw.vouchers(key.key_id, [consent], ids, model=approved[0]), ids, approved
            ).rows
        )
        == 1
    )


@pytest.fixture(scope="module")
def other_key():
    from unseen.engine.crypto.keys import AnalystKey

    return AnalystKey.generate()


# -- 1: tables a holder refuses to serve ----------------------------------------------------------


@pytest.fixture(scope="module")
def badly_registered(tmp_path_factory):
    from tests.consent_fixtures import registration_for

    regs = {
        # signed by a key that is not the exchange's
        "bank-a": lambda w: registration_for(w, "bank-a", exchange=w.rogue),
        "bank-b": lambda w: None,  # never registered
        # registered before a column was added: the schema no longer matches
        "grid": lambda w: registration_for(
            w, "grid", schema=[("account", "VARCHAR")], grades={"account": "internal"}
        ),
    }
    world = build_consent_world(tmp_path_factory.mktemp("bad"), regs)
    federation = start_in_process(world.world)
    yield world, federation
    federation.close()


@pytest.mark.parametrize(
    ("holder", "table", "reason"),
    [
        ("bank-a", "loans", "was registered by key"),
        ("bank-b", "loans", "table loans is not served: it has no asset registration"),
        ("grid", "power", "does not match table power's schema"),
    ],
)
def test_an_unregistered_or_mismatched_table_is_not_served(
    badly_registered, key, holder, table, reason
):
    cw, fed = badly_registered
    node = fed.holders[holder]
    assert node.catalog().table(table) is None
    startup = [e for e in entries(cw.world.ledgers[holder]) if e.kind == "asset"]
    assert [e.outcome for e in startup] == ["refused"] and reason in startup[0].reason
    before = _heads(cw)
    plan = AggregatePlan(table, None, (), (Measure(Column("account"), Encoding.INTEGER),))
    with pytest.raises(PolicyError) as info:
        _direct_aggregate(fed, key, holder, plan, [cw.world.voucher(holder, key.key_id)])
    assert reason in str(info.value)
    assert [(e.kind, e.outcome) for e in entries(cw.world.ledgers[holder], before[holder])] == [
        ("aggregate", "refused")
    ]


# -- per-entity aggregates need consents too ------------------------------------------------------


def test_a_per_entity_aggregate_needs_every_entitys_consent(fed, cw, key):
    ids = ACCOUNTS[:2]
    sql = (
        "SELECT account, COUNT(*), SUM(amount) FROM loans "
        f"WHERE account IN ('{ids[0]}', '{ids[1]}') GROUP BY account ORDER BY account"
    )
    consents = [cw.consent(a, key.key_id) for a in ids]
    banks = ("bank-a", "bank-b")
    before = _heads(cw)
    only_one = cw.vouchers(key.key_id, consents[:1], ids, holders=banks)
    reason = _refusal(fed.client(key, only_one).query, sql)
    assert "1 of the 2 requested entities have no valid consent (1 missing)" in reason
    assert _refused_somewhere(cw, before)
    result = fed.client(key, cw.vouchers(key.key_id, consents, ids, holders=banks)).query(sql)
    assert result.rows == [list(r) for r in cw.world.reference.sql(sql).fetchall()]


# -- renewal and retirement -----------------------------------------------------------------------


def test_renewal_and_retirement_are_ledgered_and_retirement_stops_serving(tmp_path):
    from tests.consent_fixtures import registration_for
    from unseen.engine.config import load_config
    from unseen.nodes.holder import HolderNode

    cw = build_consent_world(tmp_path)
    config, path = cw.world.configs["grid"], tmp_path / "assets" / "grid.asset"

    def start() -> HolderNode:
        node = HolderNode.from_config(load_config(config))
        assert node.gov.ledger is not None
        node.gov.ledger.close()
        return node

    first = start()
    assert first.catalog().table("power") is not None
    start()  # the same registration again: not ledgered twice
    renewal = registration_for(cw.world, "grid", serial=2)
    renewal.save(path)
    assert start().catalog().table("power") is not None
    registration_for(cw.world, "grid", serial=3, status="retired").save(path)
    retired = start()
    assert retired.catalog().table("power") is None
    logged = [(e.outcome, e.reason) for e in entries(cw.world.ledgers["grid"]) if e.kind == "asset"]
    asset = cw.registrations["grid"].asset_id
    assert logged == [
        ("answered", f"asset {asset} serial 1 active serves table power"),
        ("answered", f"asset {asset} serial 2 active serves table power"),
        ("refused", f"table power is not served: asset {asset} is retired"),
    ]


def test_the_subject_registry_is_reread_when_the_exchange_re_signs_it(fed, cw, key, approved):
    """A subject's key rotation takes effect without a restart: consents signed
    with the old key stop counting, consents with the new key count."""
    import os

    from unseen.engine.governance.consent import sign_registry
    from unseen.engine.governance.signing import SigningKey

    subject = ACCOUNTS[9]
    old = cw.consent(subject, key.key_id)
    original = cw.registry.read_text()
    rotated = dict(cw.subjects, **{subject: SigningKey.generate()})
    try:
        cw.registry.write_text(
            sign_registry(cw.exchange, {s: k.public_key for s, k in rotated.items()}).encode()
        )
        os.utime(cw.registry, ns=(1, 1))  # a stamp the first read cannot have had
        reason = _refusal(
            _score,
            fed,
            key,
            cw.vouchers(key.key_id, [old], [subject], model=approved[0]),
            [subject],
            approved,
        )
        assert reason.endswith("(1 not signed by the subject (forged))")
        new = cw.consent(subject, key.key_id, key=rotated[subject])
        assert len(
            _score(
                fed,
                key,
                cw.vouchers(key.key_id, [new], [subject], model=approved[0]),
                [subject],
                approved,
            ).rows
        )
    finally:
        cw.registry.write_text(original)
