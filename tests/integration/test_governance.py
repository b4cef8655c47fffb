"""Vouchers, ledgers and receipts through the real servers: holders started from config files.

Every holder requires vouchers, trusts one issuer, signs a SQLite ledger and
serves explicit column policies (``tests/governance_fixtures.py``). Each
refusal must reach the analyst as ``PERMISSION_DENIED`` with its reason *and*
be in the holder's ledger; each answer must come with a receipt that a
supervisor can match against the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from tests.governance_fixtures import (
    ACCOUNTS,
    LOANS_SCOPE,
    POWER_SCOPE,
    build_world,
    entries,
    head,
    node,
    receipts_of,
    start_in_process,
    utcnow,
)
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError
from unseen.engine.governance.access import sign_ledger_request
from unseen.engine.governance.audit import check_receipts, verify_ledger
from unseen.engine.governance.ledger import Checkpoint, LedgerRange, Receipt, read_ledger
from unseen.engine.governance.revocation import revoke
from unseen.engine.governance.signing import canonical_json
from unseen.engine.governance.voucher import SignedVoucher
from unseen.engine.query.model import parse_model
from unseen.engine.transport.rpc import create_channel
from unseen.federation import LocalFederation
from unseen.oracle.plaintext import plaintext_scores
from unseen.v1 import audit_pb2, holder_pb2_grpc

SQL = (
    "SELECT city, COUNT(*), SUM(amount), AVG(rate) FROM loans "
    "WHERE amount > 5000 GROUP BY city ORDER BY city"
)
SQL_TOTAL = "SELECT COUNT(*), SUM(amount) FROM loans"
BANKS = ("bank-a", "bank-b")


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    federation = start_in_process(build_world(tmp_path_factory.mktemp("governance")))
    yield federation
    federation.close()


@pytest.fixture(scope="module")
def other_key() -> AnalystKey:
    return AnalystKey.generate()


def _heads(fed) -> dict[str, int]:
    return {name: head(path) for name, path in fed.world.ledgers.items()}


def _refused(call, *args) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        call(*args)
    assert info.value.code == "PERMISSION_DENIED", str(info.value)
    return info.value


def _from_holder(err: RemoteError, name: str) -> bool:
    """Whether the coordinator named ``name`` (and its address) as the refusing holder."""
    return re.match(rf"holder {name} \(127\.0\.0\.1:\d+\): ", str(err)) is not None


def _assert_matches_duckdb(fed, result, sql: str = SQL) -> None:
    expected = fed.world.reference.sql(sql).fetchall()
    assert len(result.rows) == len(expected) > 0
    for ours, theirs in zip(result.rows, expected, strict=True):
        assert ours[:-1] == list(theirs[:-1])
        assert ours[-1] == pytest.approx(theirs[-1], rel=1e-9)


def _check_all(fed, receipts: list[Receipt]) -> list[str]:
    ledgers = [read_ledger(path) for path in fed.world.ledgers.values()]
    report = check_receipts(receipts, ledgers, fed.world.holder_public)
    return [f.status for f in report.findings]


# -- 1, 2: no voucher, valid vouchers ------------------------------------------------------------


def test_query_without_a_voucher_is_refused_and_logged(fed, key):
    before = _heads(fed)
    err = _refused(fed.client(key).query, SQL)
    assert "holder bank-a requires a voucher; none was presented" in str(err)
    assert "bank-b" in str(err)  # the other refusing holder is named too
    for name in BANKS:
        logged = entries(fed.world.ledgers[name], before[name])
        assert [(e.kind, e.outcome, e.reason, e.voucher_id, e.analyst) for e in logged] == [
            (
                "aggregate",
                "refused",
                f"holder {name} requires a voucher; none was presented",
                "",
                key.key_id,
            )
        ]
        assert logged[0].result_digest == ""
    assert head(fed.world.ledgers["grid"]) == before["grid"]  # grid does not host loans


def test_answered_query_matches_duckdb_with_a_receipt_per_holder(fed, key):
    before = _heads(fed)
    vouchers = [fed.world.voucher(h, key.key_id, voucher_id=f"v-ok-{h}") for h in BANKS]
    result = fed.client(key, vouchers).query(SQL)
    _assert_matches_duckdb(fed, result)
    receipts = receipts_of(result.meta)
    assert sorted(r.holder for r in receipts) == list(BANKS)
    assert _check_all(fed, receipts) == ["ok", "ok"]
    for receipt in receipts:
        logged = entries(fed.world.ledgers[receipt.holder], before[receipt.holder])
        assert [e.index for e in logged] == [receipt.index]
        entry = logged[0]
        assert (entry.kind, entry.outcome, entry.reason) == ("aggregate", "answered", "")
        assert entry.voucher_id == f"v-ok-{receipt.holder}" and entry.analyst == key.key_id
        assert len(entry.result_digest) == 64 and entry.entry_hash == receipt.entry_hash
        assert receipt.holder_key_id == fed.world.holder_public[receipt.holder].key_id
    # A receipt proves nothing under another holder's key.
    public = fed.world.holder_public
    swapped = {"bank-a": public["bank-b"], "bank-b": public["bank-a"]}
    report = check_receipts(receipts, [read_ledger(fed.world.ledgers[h]) for h in BANKS], swapped)
    assert [f.status for f in report.findings] == ["forged", "forged"]


# -- 3: each refusal, with its reason, in the error and in the ledger --------------------------


def _forge_payload(line: str) -> str:
    signed = SignedVoucher.decode(line)
    data = json.loads(signed.payload)
    data["quota"] = 1000  # still canonical, so only the signature can catch it
    return SignedVoucher(canonical_json(data), signed.signature).encode()


def _forge_signature(line: str) -> str:
    signed = SignedVoucher.decode(line)
    signature = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return SignedVoucher(signed.payload, signature).encode()


def _no_rate(scope):
    return {"loans": {c: ops for c, ops in scope["loans"].items() if c != "rate"}}


DAY = dt.timedelta(days=1)
ENTITY_SQL = (
    "SELECT account, COUNT(*), SUM(amount) FROM loans "
    "WHERE account IN ('acct-000', 'acct-005') GROUP BY account"
)

# name -> (voucher for bank-a given the world and grantee, SQL, reason expected)
REFUSALS = {
    "forged-payload": (
        lambda w, g: _forge_payload(w.voucher("bank-a", g, quota=3, voucher_id="v-forged-p")),
        SQL,
        "voucher v-forged-p has an invalid signature (forged or altered)",
    ),
    "forged-signature": (
        lambda w, g: _forge_signature(w.voucher("bank-a", g, voucher_id="v-forged-s")),
        SQL,
        "voucher v-forged-s has an invalid signature (forged or altered)",
    ),
    "untrusted-issuer": (
        lambda w, g: w.voucher("bank-a", g, issuer=w.rogue, voucher_id="v-rogue"),
        SQL,
        "voucher v-rogue was issued by key {rogue}, which this holder does not trust",
    ),
    "expired": (
        lambda w, g: w.voucher(
            "bank-a",
            g,
            voucher_id="v-expired",
            not_before=utcnow() - 2 * DAY,
            not_after=utcnow() - DAY,
        ),
        SQL,
        "voucher v-expired expired at 20",
    ),
    "not-yet-valid": (
        lambda w, g: w.voucher(
            "bank-a",
            g,
            voucher_id="v-early",
            not_before=utcnow() + DAY,
            not_after=utcnow() + 2 * DAY,
        ),
        SQL,
        "voucher v-early is not valid before 20",
    ),
    "certificate-subject": (
        lambda w, g: w.voucher("bank-a", g, grantee_subject="CN=analyst", voucher_id="v-subject"),
        SQL,
        "voucher v-subject is bound to certificate subject CN=analyst; the caller presented none",
    ),
    "table": (
        lambda w, g: w.voucher("bank-a", g, POWER_SCOPE, voucher_id="v-table"),
        SQL,
        "voucher v-table does not cover table loans",
    ),
    "column": (
        lambda w, g: w.voucher("bank-a", g, _no_rate(LOANS_SCOPE), voucher_id="v-column"),
        SQL,
        "voucher v-column does not cover column loans.rate",
    ),
    "operation": (
        lambda w, g: w.voucher(
            "bank-a",
            g,
            {"loans": {**LOANS_SCOPE["loans"], "city": ["group"]}},
            voucher_id="v-operation",
        ),
        "SELECT city, COUNT(*) FROM loans WHERE city = 'Ningbo' GROUP BY city",
        "voucher v-operation does not cover column loans.city for filter",
    ),
    "entity-outside": (
        lambda w, g: w.voucher(
            "bank-a", g, entities=["acct-000", "acct-001"], voucher_id="v-entities"
        ),
        ENTITY_SQL,
        "voucher v-entities does not cover 1 of the 2 requested entities",
    ),
    "entity-none-named": (
        lambda w, g: w.voucher("bank-a", g, entities=["acct-000"], voucher_id="v-entities-2"),
        SQL,
        "voucher v-entities-2 covers only named entities, but the request names none",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_reaches_the_analyst_and_the_ledger(fed, key, case):
    make, sql, reason = REFUSALS[case]
    world = fed.world
    reason = reason.format(rogue=world.rogue.key_id[:16])
    bad = make(world, key.key_id)
    vid = SignedVoucher.decode(bad).voucher_id
    before = _heads(fed)
    err = _refused(fed.client(key, [bad, world.voucher("bank-b", key.key_id)]).query, sql)
    assert _from_holder(err, "bank-a") and reason in str(err)
    assert "acct-005" not in str(err)  # refusals never name entity ids
    logged = entries(world.ledgers["bank-a"], before["bank-a"])
    assert [(e.kind, e.outcome, e.voucher_id, e.analyst) for e in logged] == [
        ("aggregate", "refused", vid, key.key_id)
    ]
    assert reason in logged[0].reason and logged[0].result_digest == ""


def test_a_garbled_voucher_is_refused_and_logged(fed, key):
    before = _heads(fed)
    garbled = "unseen-voucher-v1.bm90IGEgdm91Y2hlcg.AAAA"
    err = _refused(fed.client(key, [garbled, fed.world.voucher("bank-b", key.key_id)]).query, SQL)
    assert _from_holder(err, "bank-a") and "the voucher is malformed" in str(err)
    # No holder can tell whom garbage was meant for: each refuses, and logs it.
    for name in BANKS:
        logged = entries(fed.world.ledgers[name], before[name])
        assert [(e.outcome, e.voucher_id, e.analyst) for e in logged] == [
            ("refused", "", key.key_id)
        ]
        assert logged[0].reason.startswith("the voucher is malformed")


def test_a_voucher_presented_by_another_analyst_is_refused(fed, key, other_key):
    world = fed.world
    stolen = [world.voucher(h, key.key_id, voucher_id=f"v-stolen-{h}") for h in BANKS]
    before = _heads(fed)
    err = _refused(fed.client(other_key, stolen).query, SQL)
    assert (
        f"voucher v-stolen-bank-a was granted to analyst key {key.key_id[:16]}, "
        f"not to {other_key.key_id[:16]}"
    ) in str(err)
    for name in BANKS:
        logged = entries(world.ledgers[name], before[name])
        assert [(e.outcome, e.voucher_id, e.analyst) for e in logged] == [
            ("refused", f"v-stolen-{name}", other_key.key_id)
        ]
    # The rightful grantee still gets its answer with the same vouchers.
    _assert_matches_duckdb(fed, fed.client(key, stolen).query(SQL))


def test_quota_is_exhausted_after_its_answers(fed, key):
    world = fed.world
    client = fed.client(key, [world.voucher("bank-a", key.key_id, quota=2, voucher_id="v-q2")])
    client.vouchers.append(world.voucher("bank-b", key.key_id))
    before = _heads(fed)
    for _ in range(2):
        _assert_matches_duckdb(fed, client.query(SQL))
    err = _refused(client.query, SQL)
    assert _from_holder(err, "bank-a")
    assert str(err).endswith("voucher v-q2 has used its quota of 2 queries")
    logged = entries(world.ledgers["bank-a"], before["bank-a"])
    assert [(e.outcome, e.voucher_id) for e in logged] == [
        ("answered", "v-q2"),
        ("answered", "v-q2"),
        ("refused", "v-q2"),
    ]
    assert logged[-1].reason == "voucher v-q2 has used its quota of 2 queries"


def test_revocation_takes_effect_while_the_holder_runs(fed, key):
    world = fed.world
    revoked = world.voucher("bank-a", key.key_id, voucher_id="v-revoked")
    kept = world.voucher("bank-a", key.key_id, voucher_id="v-kept")
    other = world.voucher("bank-b", key.key_id)
    _assert_matches_duckdb(fed, fed.client(key, [revoked, other]).query(SQL))
    revoke(world.revocations["bank-a"], "v-revoked", "consent withdrawn")
    before = _heads(fed)
    err = _refused(fed.client(key, [revoked, other]).query, SQL)
    assert _from_holder(err, "bank-a") and "voucher v-revoked was revoked at 20" in str(err)
    assert str(err).endswith(": consent withdrawn")
    logged = entries(world.ledgers["bank-a"], before["bank-a"])
    assert [(e.outcome, e.voucher_id) for e in logged] == [("refused", "v-revoked")]
    assert logged[0].reason.endswith("consent withdrawn")
    # Only that voucher: another one for the same holder still works.
    _assert_matches_duckdb(fed, fed.client(key, [kept, other]).query(SQL))


def test_entity_scoped_voucher_admits_its_own_entities(fed, key):
    world = fed.world
    scoped = world.voucher("bank-a", key.key_id, entities=["acct-000", "acct-005"])
    result = fed.client(key, [scoped, world.voucher("bank-b", key.key_id)]).query(ENTITY_SQL)
    expected = world.reference.sql(ENTITY_SQL + " ORDER BY account").fetchall()
    assert sorted(result.rows) == [list(r) for r in expected]


def test_a_table_only_voucher_allows_count_star_and_nothing_else(fed, key):
    world = fed.world
    count_only = world.voucher("bank-a", key.key_id, {"loans": {}}, voucher_id="v-count")
    client = fed.client(key, [count_only, world.voucher("bank-b", key.key_id)])
    assert client.query("SELECT COUNT(*) FROM loans").rows == [[144]]
    err = _refused(client.query, SQL_TOTAL)
    assert _from_holder(err, "bank-a")
    assert str(err).endswith("voucher v-count does not cover column loans.amount")


def test_ledgers_never_hold_data_values(fed, key):
    world = fed.world
    scoped = world.voucher("bank-a", key.key_id, entities=["acct-000"])
    _refused(fed.client(key, [scoped, world.voucher("bank-b", key.key_id)]).query, ENTITY_SQL)
    sql = (
        "SELECT COUNT(*) FROM loans WHERE city = 'Wenzhou' AND account IN ('acct-010', 'acct-011')"
    )
    assert fed.client(key, world.vouchers(key.key_id, BANKS)).query(sql).rows == [[8]]
    for path in world.ledgers.values():
        wal = path.with_name(path.name + "-wal")
        raw = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert len(raw) > 0
        for value in (b"acct-0", b"Wenzhou", b"Ningbo", b"Hangzhou", b"officer-"):
            assert value not in raw, (path.name, value)


def test_a_holder_is_shown_only_the_vouchers_issued_for_it(fed, key, monkeypatch):
    world = fed.world
    node = fed.holders["bank-b"]
    seen: list[tuple[str, ...]] = []
    real = node.prepare_aggregate

    def spy(key_id, plan, query_id, vouchers=(), *args, **kwargs):
        seen.append(tuple(vouchers))
        return real(key_id, plan, query_id, vouchers, *args, **kwargs)

    monkeypatch.setattr(node, "prepare_aggregate", spy)
    mine = world.voucher("bank-b", key.key_id)
    theirs = world.voucher("bank-a", key.key_id, entities=["acct-000", "acct-005"])
    result = fed.client(key, [theirs, mine]).query(ENTITY_SQL)
    assert len(result.rows) == 2 and len(seen) == 1
    assert [SignedVoucher.decode(v).voucher.holder for v in seen[0]] == ["bank-b"]


# -- 4: quota under concurrency -----------------------------------------------------------------

# A second client process: warms up (key registered, catalog read), says it is ready,
# waits for the start signal, runs one query and prints its outcome as JSON.
RACER = """
import json, pathlib, sys, time
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError
from unseen.engine.crypto.keys import AnalystKey
address, key_dir, vouchers, ready, go, sql = sys.argv[1:]
key = AnalystKey.load(pathlib.Path(key_dir))
with Client(address, key=key, vouchers=pathlib.Path(vouchers).read_text().split()) as client:
    client.register_key()
    client.compile(sql)
    pathlib.Path(ready).touch()
    while not pathlib.Path(go).exists():
        time.sleep(0.002)
    try:
        print(json.dumps({"rows": client.query(sql).rows}))
    except RemoteError as exc:
        print(json.dumps({"code": exc.code, "reason": str(exc)}))
"""


def test_quota_of_five_holds_under_twelve_concurrent_queries(fed, key, tmp_path):
    world = fed.world
    limited = world.voucher("bank-a", key.key_id, quota=5, voucher_id="v-race")
    free = world.voucher("bank-b", key.key_id)
    key_dir = tmp_path / "key"
    key.save(key_dir)
    (tmp_path / "vouchers").write_text(f"{limited}\n{free}\n")
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{i}" for i in range(2)]
    racer = [sys.executable, "-c", RACER, fed.address, str(key_dir), str(tmp_path / "vouchers")]
    processes = [
        subprocess.Popen(
            [*racer, str(ready), str(go), SQL_TOTAL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    threads = 10
    barrier = threading.Barrier(threads + 1)

    def one(_: int):
        with Client(fed.address, key=key, vouchers=[limited, free]) as client:
            client.register_key()
            barrier.wait(timeout=60)
            try:
                return client.query(SQL_TOTAL)
            except RemoteError as exc:
                return exc

    with ThreadPoolExecutor(threads) as pool:
        pending = pool.map(one, range(threads))
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in readies) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        barrier.wait(timeout=60)
        outcomes = list(pending)
    finished = [(*p.communicate(timeout=120), p.returncode) for p in processes]

    expected = [list(r) for r in world.reference.sql(SQL_TOTAL).fetchall()]
    quota_reason = "voucher v-race has used its quota of 5 queries"
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            assert outcome.code == "PERMISSION_DENIED" and _from_holder(outcome, "bank-a")
            assert str(outcome).endswith(quota_reason)
        else:
            assert outcome.rows == expected
    racers = []
    for out, err, code in finished:
        assert code == 0, err
        racers.append(json.loads(out))
    for outcome in racers:
        if "rows" in outcome:
            assert outcome["rows"] == expected
        else:
            assert outcome["code"] == "PERMISSION_DENIED"
            assert outcome["reason"].endswith(quota_reason)
    assert len(answered) + sum("rows" in r for r in racers) == 5
    logged = [e for e in read_ledger(world.ledgers["bank-a"]).entries if e.voucher_id == "v-race"]
    assert sorted(e.outcome for e in logged) == ["answered"] * 5 + ["refused"] * 7
    assert all(e.reason == quota_reason for e in logged if e.reason)
    answered_receipts = [r for result in answered for r in receipts_of(result.meta)]
    assert _check_all(fed, answered_receipts) == ["ok"] * len(answered_receipts)


# -- 5: scoring under vouchers ------------------------------------------------------------------

MODEL = {
    "entity": "account",
    "features": [
        {"table": "loans", "column": "amount", "weight": 1.5e-5, "aggregate": "sum"},
        {"table": "power", "column": "kwh", "weight": -2e-4, "default": 123.0},
    ],
    "intercept": 0.3,
    "link": "identity",
}


def _approved_client(fed, key, model, prepare_vouchers, model_vouchers):
    """Prepare under ``prepare_vouchers``; the issuer approves ``model``; the client then
    carries ``model_vouchers(approval)`` and the issuer's weights."""
    client = fed.client(key, prepare_vouchers)
    approval, weights = fed.world.approve(client, model)
    client.vouchers = model_vouchers(approval)
    return client, weights


def test_scoring_with_vouchers_returns_receipts_for_prepare_and_score(fed, key):
    world = fed.world
    before = _heads(fed)
    model = parse_model(MODEL)
    client, weights = _approved_client(
        fed,
        key,
        model,
        world.vouchers(key.key_id),
        lambda approval: world.vouchers(key.key_id, model=approval),
    )
    entities = [*ACCOUNTS, "acct-999", ACCOUNTS[3]]  # one unknown entity, one repeated
    result = client.score(model, entities, weights)
    assert [r[0] for r in result.rows] == entities
    expected = plaintext_scores(world.reference, model, entities)
    assert np.max(np.abs(np.array([r[1] for r in result.rows]) - expected)) < 1e-6
    receipts = receipts_of(result.meta)
    assert sorted(r.holder for r in receipts) == ["bank-a", "bank-b", "grid"]
    assert _check_all(fed, receipts) == ["ok"] * 3
    for name in ("bank-a", "bank-b", "grid"):
        logged = entries(world.ledgers[name], before[name])
        kinds = [(e.kind, e.outcome) for e in logged]
        assert kinds == [("prepare", "answered"), ("score", "answered")]
        assert {r.index for r in receipts if r.holder == name} == {logged[1].index}


def _model_with_kwh_weight(weight: float) -> dict:
    # A model is registered once per fingerprint (features and weights, not the
    # intercept): a new weight makes the client register it again.
    return dict(MODEL, features=[MODEL["features"][0], dict(MODEL["features"][1], weight=weight)])


def test_score_outside_the_voucher_entities_is_refused_at_prepare_and_at_score(fed, key):
    world = fed.world
    model = parse_model(_model_with_kwh_weight(-3e-4))

    def scoped(voucher_id, **kwargs):
        return world.voucher(
            "grid", key.key_id, entities=ACCOUNTS[:3], voucher_id=voucher_id, **kwargs
        )

    banks = [world.voucher(h, key.key_id) for h in BANKS]
    before = _heads(fed)
    client, weights = _approved_client(
        fed,
        key,
        model,
        [*banks, scoped("v-grid-3p")],
        lambda approval: [
            *(world.voucher(h, key.key_id, model=approval) for h in BANKS),
            scoped("v-grid-3", model=approval),
        ],
    )
    inside = client.score(model, ACCOUNTS[:3], weights)
    expected = plaintext_scores(world.reference, model, ACCOUNTS[:3])
    assert np.max(np.abs(np.array([r[1] for r in inside.rows]) - expected)) < 1e-6
    logged = entries(world.ledgers["grid"], before["grid"])
    assert [(e.kind, e.outcome, e.voucher_id) for e in logged] == [
        ("prepare", "answered", "v-grid-3p"),
        ("score", "answered", "v-grid-3"),
    ]
    reason = "voucher v-grid-3 does not cover 1 of the 2 requested entities"
    # The model is registered: only the score step runs, and it refuses.
    before = _heads(fed)
    err = _refused(client.score, model, [ACCOUNTS[0], ACCOUNTS[7]], weights)
    assert _from_holder(err, "grid") and str(err).endswith(reason)
    assert ACCOUNTS[7] not in str(err)
    logged = entries(world.ledgers["grid"], before["grid"])
    assert [(e.kind, e.outcome, e.voucher_id, e.reason) for e in logged] == [
        ("score", "refused", "v-grid-3", reason)
    ]
    # Preparing for entities outside the scope is refused too.
    before = _heads(fed)
    err = _refused(client.prepare, client.feature_specs(model, client.catalog()), ACCOUNTS[6:8])
    assert _from_holder(err, "grid")
    assert str(err).endswith("voucher v-grid-3 does not cover 2 of the 2 requested entities")
    logged = entries(world.ledgers["grid"], before["grid"])
    assert [(e.kind, e.outcome) for e in logged] == [("prepare", "refused")]


def test_prepare_is_charged_like_any_request(fed, key):
    world = fed.world
    model = parse_model(
        {"entity": "account", "features": [{"table": "power", "column": "kwh", "weight": 0.5}]}
    )

    def grid(quota, voucher_id, **kwargs):
        return [world.voucher("grid", key.key_id, quota=quota, voucher_id=voucher_id, **kwargs)]

    # The issuer re-issues the same voucher id with the model approved: one quota.
    client, weights = _approved_client(
        fed, key, model, grid(2, "v-quota-2"), lambda a: grid(2, "v-quota-2", model=a)
    )
    assert len(client.score(model, ACCOUNTS[:4], weights).rows) == 4
    # The prepare step reached the grid's table, so it used one of the two queries.
    err = _refused(client.score, model, ACCOUNTS[:4], weights)
    assert str(err).endswith("voucher v-quota-2 has used its quota of 2 queries")
    client, weights = _approved_client(
        fed, key, model, grid(1, "v-quota-1"), lambda a: grid(1, "v-quota-1", model=a)
    )
    err = _refused(client.score, model, ACCOUNTS[:4], weights)
    assert str(err).endswith("voucher v-quota-1 has used its quota of 1 query")


# -- 6: supervisor over RPC ---------------------------------------------------------------------


def test_supervisor_reads_a_holders_ledger_over_rpc(fed, key):
    world = fed.world
    answer = fed.client(key, world.vouchers(key.key_id, BANKS)).query(SQL)
    receipts = receipts_of(answer.meta)
    public = world.holder_public["bank-a"]
    channel = create_channel(fed.holder_addresses["bank-a"])
    stub = holder_pb2_grpc.HolderStub(channel)

    def read(signer, start=1, end=0, now=None, claimed=None):
        request, signature = sign_ledger_request(signer, "bank-a", start, end, now)
        message = audit_pb2.ReadLedgerRequest(
            supervisor_key_id=claimed or signer.key_id,
            start=start,
            end=end,
            issued_at=request["issued_at"],
            signature=signature,
        )
        return stub.ReadLedger(message, timeout=10)

    try:
        reply = read(world.supervisor)
        fetched = LedgerRange.from_dict(json.loads(reply.range))
        on_disk = read_ledger(world.ledgers["bank-a"])
        assert fetched.holder == "bank-a" and fetched.head == on_disk.head >= 3
        assert fetched.entries == on_disk.entries
        assert verify_ledger(fetched, public).ok
        checkpoint = Checkpoint.decode(reply.checkpoint)
        checkpoint.verify(public)
        assert (checkpoint.index, checkpoint.entry_hash) == (
            on_disk.head,
            on_disk.entries[-1].entry_hash,
        )
        report = check_receipts(receipts, [fetched], world.holder_public)
        assert [f.status for f in report.findings if f.receipt.holder == "bank-a"] == ["ok"]
        page = LedgerRange.from_dict(json.loads(read(world.supervisor, 2, 4).range))
        assert [e.index for e in page.entries] == [2, 3] and verify_ledger(page, public).ok

        stale = utcnow() - dt.timedelta(minutes=30)
        for args, reason in (
            ((world.rogue,), "does not recognise that supervisor key"),
            ((world.supervisor, 1, 0, stale), "stale or from the future"),
            ((world.rogue, 1, 0, None, world.supervisor.key_id), "signature is not valid"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                read(*args)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert reason in info.value.details()
    finally:
        channel.close()


# -- 8: durability under SIGKILL ----------------------------------------------------------------


def test_a_holder_killed_mid_load_keeps_every_receipt_it_gave(tmp_path, key):
    # The grid serves no loans: it takes part with masks only (no holder answers alone).
    world = build_world(tmp_path / "world", holder_names=("bank-a", "grid"))
    federation = LocalFederation(
        {name: world.configs[name] for name in ("bank-a", "grid")}, tmp_path / "logs"
    )
    federation.start()
    process = node(federation, "bank-a").process
    voucher = world.voucher("bank-a", key.key_id)
    clients = [Client(federation.address, key=key, vouchers=[voucher]) for _ in range(4)]
    collected: list[Receipt] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(client: Client) -> None:
        while not stop.is_set():
            try:
                result = client.query(SQL_TOTAL)
            except RemoteError:
                return  # the holder is gone (or the channel was closed below)
            with lock:
                collected.extend(receipts_of(result.meta))

    workers = [threading.Thread(target=load, args=(c,)) for c in clients]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 90
        while len(collected) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        time.sleep(1.0)  # answers already on their way still arrive
    finally:
        stop.set()
        for client in clients:
            client.close()  # cancels calls still waiting for the dead holder
        for worker in workers:
            worker.join(30)
        federation.stop()
    assert process.returncode == -signal.SIGKILL
    assert len(collected) >= 20
    public = world.holder_public["bank-a"]
    report = verify_ledger(world.ledgers["bank-a"], public)
    assert report.ok, report.summary()
    ledger = read_ledger(world.ledgers["bank-a"])
    findings = check_receipts(collected, [ledger], {"bank-a": public}).findings
    assert [f.status for f in findings] == ["ok"] * len(collected)
    answered = [e for e in ledger.entries if e.outcome == "answered"]
    assert len(answered) >= len(collected) == len({r.index for r in collected})


def test_a_request_in_flight_when_its_holder_dies_fails_promptly(tmp_path, key):
    # The grid serves no loans: it takes part with masks only (no holder answers alone).
    world = build_world(tmp_path / "world", holder_names=("bank-a", "grid"))
    federation = LocalFederation(
        {name: world.configs[name] for name in ("bank-a", "grid")}, tmp_path / "logs"
    )
    federation.start()
    process = node(federation, "bank-a").process
    client = Client(federation.address, key=key, vouchers=[world.voucher("bank-a", key.key_id)])
    client.timeout = 5.0
    outcome: list[object] = []

    def aggregate(plan) -> None:
        started = time.monotonic()
        try:
            client.aggregate(plan)
            outcome.append("answered")
        except RemoteError as exc:
            outcome.append((exc.code, time.monotonic() - started))

    try:
        assert client.query(SQL_TOTAL).rows[0][0] == 72  # bank-a's rows alone
        plan = client.compile(SQL_TOTAL).plan  # the coordinator's catalog is now fresh
        process.send_signal(signal.SIGSTOP)  # the holder accepts the call but never answers
        caller = threading.Thread(target=aggregate, args=(plan,))
        caller.start()
        time.sleep(1.0)  # the Aggregate call is now in flight at the holder
        process.send_signal(signal.SIGKILL)
        caller.join(30)
    finally:
        client.close()
        federation.stop()
    assert len(outcome) == 1 and outcome[0] != "answered"
    code, seconds = outcome[0]
    assert code == "UNAVAILABLE" and seconds < 3.5, outcome
