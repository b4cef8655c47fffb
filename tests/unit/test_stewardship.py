"""Registrations, grades, consents and flow notes, one layer at a time (no network)."""

from __future__ import annotations

import datetime as dt

import pytest

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.asset import (
    Registration,
    register,
    schema_digest,
    verify_registration,
)
from unseen.engine.governance.consent import (
    ConsentRegister,
    SubjectRegistry,
    check_consents,
    grant,
    publish,
    withdraw,
)
from unseen.engine.governance.flows import parse_note
from unseen.engine.governance.grades import GRADES, check_grades, clamp_k, clamp_uses, grade_uses
from unseen.engine.governance.signing import SigningKey, b64decode, b64encode, canonical_json
from unseen.engine.governance.stewardship import ledger_note
from unseen.engine.governance.tokens import Token
from unseen.engine.governance.voucher import SignedVoucher, issue

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
SCHEMA = [("uscc", "VARCHAR"), ("kwh", "DOUBLE"), ("note", "VARCHAR")]
EXCHANGE = SigningKey.generate()
TRUSTED = {EXCHANGE.key_id: EXCHANGE.public_key}
ANALYST = "ab" * 32


def _registration(**overrides):
    fields = {
        "holder": "grid",
        "table": "power",
        "schema": SCHEMA,
        "grades": {"uscc": "internal", "kwh": "sensitive", "note": "core"},
        "owner": "grid co",
        "now": NOW,
    }
    fields.update(overrides)
    return register(EXCHANGE, **fields)


# -- grades ---------------------------------------------------------------------------------------


def test_the_grade_table():
    everything = {"filter", "group", "aggregate", "score", "entity"}
    assert grade_uses("public") == everything
    assert grade_uses("internal") == everything
    assert grade_uses("sensitive") == {"filter", "entity"}
    assert grade_uses("sensitive", dp=True) == {"filter", "entity", "aggregate"}
    assert grade_uses("sensitive", approved_model=True) == {"filter", "entity", "score"}
    assert grade_uses("core") == set()
    assert GRADES == ("public", "internal", "sensitive", "core")


def test_grades_only_tighten_the_config():
    assert clamp_uses(frozenset({"filter"}), "public") == {"filter"}
    assert clamp_uses(frozenset({"aggregate", "score", "filter"}), "sensitive") == {
        "score",
        "filter",
    }
    assert clamp_uses(frozenset({"filter"}), "core") == set()
    assert clamp_k(2, {"a": "public"}) == 2
    assert clamp_k(2, {"a": "public", "b": "internal"}) == 5
    assert clamp_k(9, {"a": "internal"}) == 9


@pytest.mark.parametrize(
    ("reads", "reason"),
    [
        ({"power": {"kwh": {"aggregate"}}}, "column power.kwh is graded sensitive: aggregates"),
        ({"power": {"kwh": {"score"}}}, "column power.kwh is graded sensitive: scores only with"),
        ({"power": {"note": {"filter"}}}, "column power.note is graded core: it never leaves"),
        ({"power": {"other": {"filter"}}}, "column power.other is graded core"),
    ],
)
def test_check_grades_names_the_grade(reads, reason):
    grades = {"power": {"uscc": "internal", "kwh": "sensitive", "note": "core"}}
    with pytest.raises(PolicyError, match=reason):
        check_grades(reads, grades)
    check_grades({"power": {"uscc": {"entity", "filter", "aggregate"}}}, grades)
    check_grades({"other": {"x": {"aggregate"}}}, grades)  # unregistered tables: not here
    check_grades({"power": {"kwh": {"aggregate"}}}, grades, dp={"power": True})


# -- registrations --------------------------------------------------------------------------------


def test_a_registration_round_trips_and_verifies_against_its_schema():
    registration = _registration()
    again = Registration.decode(registration.encode())
    assert again.data == registration.data and again.digest == registration.digest
    verify_registration(again, TRUSTED, holder="grid", table="POWER", schema=SCHEMA)
    assert again.data["schema_digest"] == schema_digest(SCHEMA)


def test_a_forged_registration_is_refused():
    registration = _registration()
    data = dict(
        registration.data, columns=[dict(c, grade="public") for c in registration.data["columns"]]
    )
    from unseen.engine.governance.signing import canonical_json

    payload = canonical_json(data)
    forged = Registration(Token("unseen-asset-v1", payload, registration.token.signature, data))
    with pytest.raises(PolicyError, match="invalid signature"):
        verify_registration(forged, TRUSTED)
    rogue = SigningKey.generate()
    with pytest.raises(PolicyError, match="does not trust"):
        verify_registration(register(rogue, **_kw()), TRUSTED)


def _kw():
    return {"holder": "grid", "table": "power", "schema": SCHEMA, "grades": {}, "owner": "o",
            "default_grade": "public"}  # fmt: skip


@pytest.mark.parametrize(
    ("registration", "checks", "reason"),
    [
        (lambda: _registration(status="retired", serial=2), {}, "is retired"),
        (_registration, {"holder": "tax"}, "registered for holder grid, not tax"),
        (_registration, {"table": "loans"}, "registers table power, not loans"),
        (_registration, {"schema": SCHEMA[:2]}, "does not match table power's schema"),
        (_registration, {"schema": [(n, "BIGINT") for n, _ in SCHEMA]}, "does not match"),
    ],
    ids=["retired", "holder", "table", "dropped-column", "retyped"],
)
def test_registration_mismatches_are_refused(registration, checks, reason):
    with pytest.raises(PolicyError, match=reason):
        verify_registration(registration(), TRUSTED, **checks)


def test_every_column_needs_a_known_grade():
    with pytest.raises(ConfigError, match="column note has no grade"):
        _registration(grades={"uscc": "public", "kwh": "public"})
    with pytest.raises(ConfigError, match="unknown grade 'secret'"):
        _registration(grades={"uscc": "secret"}, default_grade="public")
    with pytest.raises(ConfigError, match="has no column nope"):
        _registration(grades={"nope": "public"}, default_grade="public")


def test_a_registration_whose_digest_lies_about_its_columns_does_not_decode():
    registration = _registration()
    data = dict(registration.data, schema_digest="0" * 64)
    token = Token.decode(registration.encode(), "unseen-asset-v1")
    text = f"unseen-asset-v1.{b64encode(canonical_json(data))}.{b64encode(token.signature)}"
    with pytest.raises(PolicyError, match="schema digest does not match"):
        Registration.decode(text)
    assert b64decode(b64encode(b"x")) == b"x"


# -- vouchers -------------------------------------------------------------------------------------


def test_assets_and_consents_are_additive_voucher_fields():
    common = {
        "grantee": ANALYST,
        "holder": "grid",
        "scope": {"power": {"kwh": ["score"]}},
        "purpose": "p",
        "not_after": NOW + dt.timedelta(days=1),
        "issued_at": NOW,
        "not_before": NOW,
        "voucher_id": "v-1",
    }
    plain = issue(EXCHANGE, **common)
    assert b"consents" not in plain.payload and b"assets" not in plain.payload
    full = issue(EXCHANGE, **common, assets=["asset-1"], consents=["c" * 64])
    again = SignedVoucher.decode(full.encode()).voucher
    assert again.assets == {"asset-1"} and again.consents == {"c" * 64}
    with pytest.raises(ConfigError, match="64-hex-digit"):
        issue(EXCHANGE, **common, consents=["not-a-digest"])


# -- consents -------------------------------------------------------------------------------------


SUBJECT = SigningKey.generate()
REGISTRY = SubjectRegistry({"s-1": SUBJECT.public_key})


def _consent(**overrides):
    fields = {
        "subject": "s-1",
        "grantee": ANALYST,
        "purpose": "loan scoring",
        "holders": ["grid"],
        "not_before": NOW - dt.timedelta(hours=1),
        "not_after": NOW + dt.timedelta(hours=1),
        "now": NOW - dt.timedelta(hours=1),
    }
    key = overrides.pop("key", SUBJECT)
    fields.update(overrides)
    return grant(key, **fields)


def _check(consents, withdrawals=(), entities=("s-1",), **overrides):
    register = ConsentRegister({c.digest: c for c in consents}, list(withdrawals))
    fields = {
        "referenced": [c.digest for c in consents],
        "register": register,
        "registry": REGISTRY,
        "grantee": ANALYST,
        "purpose": "loan scoring",
        "holder": "grid",
        "now": NOW,
    }
    fields.update(overrides)
    return check_consents(entities, **fields)


def test_a_valid_consent_authorises_its_subject():
    consent = _consent()
    assert _check([consent]) == [consent.digest]
    by_asset = _consent(holders=[], assets=["asset-1"])
    assert _check([by_asset], holder="tax", assets=frozenset({"asset-1"})) == [by_asset.digest]


@pytest.mark.parametrize(
    ("make", "overrides", "reason"),
    [
        (lambda: [], {}, "1 missing"),
        (lambda: [_consent(key=SigningKey.generate())], {}, "1 not signed by the subject"),
        (lambda: [_consent(not_after=NOW)], {}, "1 expired"),
        (lambda: [_consent(not_before=NOW + dt.timedelta(minutes=1))], {}, "1 not yet valid"),
        (lambda: [_consent(grantee="cd" * 32)], {}, "1 granted to another analyst"),
        (lambda: [_consent(purpose="marketing")], {}, "1 for another purpose"),
        (lambda: [_consent()], {"holder": "tax"}, "1 not for this holder or these assets"),
        (lambda: [_consent(subject="s-2")], {"entities": ["s-2"]}, "subject not in the registry"),
        (lambda: [_consent()], {"referenced": []}, "1 missing"),
    ],
)
def test_an_invalid_consent_is_refused_by_reason_and_count(make, overrides, reason):
    with pytest.raises(PolicyError) as info:
        _check(make(), **overrides)
    assert reason in str(info.value)
    assert "s-1" not in str(info.value) and "s-2" not in str(info.value)


def test_only_the_subject_withdraws():
    consent = _consent()
    assert _check([consent], [withdraw(SigningKey.generate(), consent)]) == [consent.digest]
    with pytest.raises(PolicyError, match="1 withdrawn"):
        _check([consent], [withdraw(SUBJECT, consent)])


def test_the_register_file_round_trips_and_skips_garbage(tmp_path):
    path = tmp_path / "register.json"
    consent = _consent()
    publish(path, consent)
    publish(path, withdraw(SUBJECT, consent))
    register = ConsentRegister.load(path)
    assert list(register.consents) == [consent.digest] and len(register.withdrawals) == 1
    text = path.read_text().replace('"consents": [', '"consents": ["garbage", ', 1)
    path.write_text(text)
    assert list(ConsentRegister.load(path).consents) == [consent.digest]


# -- ledger notes ---------------------------------------------------------------------------------


def test_the_ledger_note_round_trips_through_the_flow_parser():
    digests = ["a" * 64, "b" * 64]
    note = ledger_note(frozenset({"asset-2", "asset-1"}), digests, "loan scoring, 2026")
    parsed = parse_note(note)
    assert parsed.assets == ("asset-1", "asset-2")
    assert parsed.consents == ("a" * 16, "b" * 16) and parsed.consent_count == 2
    assert parsed.purpose == "loan scoring, 2026"
    many = ledger_note(frozenset(), [f"{i:064x}" for i in range(100)], "p")
    assert len(many) < 1000 and parse_note(many).consent_count == 100
    assert parse_note(many).consents == ()
    assert parse_note("") == parse_note("refused: anything at all")
