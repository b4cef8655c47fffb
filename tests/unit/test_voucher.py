"""Vouchers: canonical signed form, issuer trust, and every reason a holder refuses one."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from tests.governance_fixtures import ANALYST, request
from unseen.engine.errors import ConfigError, PlanError, PolicyError
from unseen.engine.governance.revocation import Revocation, RevocationFile, RevocationList, revoke
from unseen.engine.governance.signing import SignatureError, SigningKey, b64decode, b64encode
from unseen.engine.governance.voucher import (
    SignedVoucher,
    Voucher,
    VoucherPolicy,
    authorize,
    entity_ids,
    entity_set_digest,
    issue,
    plan_reads,
    verify,
)
from unseen.engine.query.expr import Binary, BinaryOp, Column, InList, Literal
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC
T0 = dt.datetime(2026, 11, 1, tzinfo=UTC)
T_END = dt.datetime(2026, 11, 20, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 10, 12, tzinfo=UTC)
OTHER_ANALYST = "b2" * 32
# A fixed issuer key: Ed25519 signatures are deterministic, so tokens are too.
FIXED = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


@pytest.fixture(scope="module")
def issuer() -> SigningKey:
    return SigningKey.generate()


def make(issuer: SigningKey, **overrides) -> SignedVoucher:
    fields = {
        "grantee": ANALYST,
        "holder": "tax",
        "scope": {"tax": {"revenue": ["aggregate", "score"], "uscc": ["entity", "filter"]}},
        "purpose": "loan application scoring",
        "not_before": T0,
        "not_after": T_END,
        "issued_at": T0,
        "quota": 5,
        "voucher_id": "v-123",
    }
    fields.update(overrides)
    return issue(issuer, **fields)


# -- signed form --------------------------------------------------------------------------------


def test_the_payload_format_is_pinned():
    signed = make(FIXED, scope={"Tax": {"Revenue": ["score", "aggregate"]}})
    assert json.loads(signed.payload) == {
        "type": "unseen.voucher",
        "version": 1,
        "id": "v-123",
        "issuer": FIXED.key_id,
        "grantee": {"key_id": ANALYST, "subject": None},
        "holder": "tax",
        "purpose": "loan application scoring",
        "scope": {"tax": {"revenue": ["aggregate", "score"]}},
        "entities": None,
        "not_before": "2026-11-01T00:00:00Z",
        "not_after": "2026-11-20T00:00:00Z",
        "issued_at": "2026-11-01T00:00:00Z",
        "quota": 5,
    }
    assert signed.payload.startswith(b'{"entities":null,"grantee":{"key_id":"')
    assert b" " not in signed.payload.replace(b"loan application scoring", b"")
    # Deterministic signature: the same voucher is the same token.
    assert (
        make(FIXED, scope={"tax": {"revenue": ["aggregate", "score"]}}).encode() == signed.encode()
    )


def test_token_round_trips_through_text_bytes_and_files(issuer, tmp_path):
    signed = make(issuer, entities=["9133", "9134"])
    token = signed.encode()
    assert token.startswith("unseen-voucher-v1.") and token.count(".") == 2
    assert SignedVoucher.decode(token) == signed
    assert SignedVoucher.decode(signed.to_bytes()) == signed
    assert SignedVoucher.decode(f"  {token}\n") == signed
    signed.save(tmp_path / "v.voucher")
    loaded = SignedVoucher.load(tmp_path / "v.voucher")
    assert loaded.voucher == signed.voucher
    assert loaded.voucher.entity_ids == {"9133", "9134"}
    with pytest.raises(ConfigError, match="cannot read voucher"):
        SignedVoucher.load(tmp_path / "missing")


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1)


@given(
    scope=st.dictionaries(
        _names,
        st.dictionaries(
            _names,
            st.sets(
                st.sampled_from(["filter", "group", "aggregate", "score", "entity"]), min_size=1
            ),
            max_size=3,
        ),
        min_size=1,
        max_size=3,
    ),
    purpose=_names,
    holder=_names,
    quota=st.none() | st.integers(1, 2**40),
    entities=st.none() | st.sets(_names, min_size=1, max_size=5),
    start=st.datetimes(
        min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    length=st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=dt.timedelta(days=999)),
    subject=st.none() | _names,
)
def test_signed_vouchers_round_trip_canonically(
    scope, purpose, holder, quota, entities, start, length, subject
):
    lowered = {t.lower() for t in scope}
    cols_ok = all(len({c.lower() for c in cols}) == len(cols) for cols in scope.values())
    if len(lowered) != len(scope) or not cols_ok:
        with pytest.raises(ConfigError, match="twice"):
            issue(FIXED, grantee=ANALYST, holder=holder, scope=scope, purpose=purpose,
                  not_before=start, not_after=start + length)  # fmt: skip
        return
    signed = issue(
        FIXED,
        grantee=ANALYST,
        holder=holder,
        scope=scope,
        purpose=purpose,
        quota=quota,
        entities=entities,
        grantee_subject=subject,
        not_before=start,
        not_after=start + length,
        issued_at=start,
    )
    again = SignedVoucher.decode(signed.encode())
    assert again.payload == signed.payload
    assert again.voucher == signed.voucher
    assert again.voucher.payload() == signed.payload
    assert verify(again, {FIXED.key_id: FIXED.public_key}) == signed.voucher
    # Insertion order of the scope never changes the bytes that are signed.
    reordered = {t: dict(reversed(list(c.items()))) for t, c in reversed(list(scope.items()))}
    twin = Voucher(**{**signed.voucher.__dict__, "scope": reordered})
    assert twin.payload() == signed.payload


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p, s: f"unseen-voucher-v2.{b64encode(p)}.{b64encode(s)}",
        lambda p, s: f"unseen-voucher-v1.{b64encode(p)}",
        lambda p, s: f"unseen-voucher-v1.{b64encode(p)}=.{b64encode(s)}",
        lambda p, s: f"unseen-voucher-v1.{b64encode(p)}.{b64encode(s[:63])}",
        lambda p, s: f"unseen-voucher-v1.{b64encode(p + b' ')}.{b64encode(s)}",
        lambda p, s: _with(p, s, version=2),
        lambda p, s: _with(p, s, extra="x"),
        lambda p, s: _with(p, s, quota=0),
        lambda p, s: _with(p, s, quota=True),
        lambda p, s: _with(p, s, not_after="2026-11-20T00:00:00+00:00"),
        lambda p, s: _with(p, s, scope={"tax": {"revenue": ["aggregate", "aggregate"]}}),
        lambda p, s: _with(p, s, scope={"tax": {"revenue": ["sum"]}}),
        lambda p, s: _with(p, s, entities={"ids": [1, 2]}),
        lambda p, s: _with(p, s, drop="holder"),
        lambda p, s: "unseen-voucher-v1.e30." + b64encode(s),
    ],
)
def test_malformed_tokens_are_refused(issuer, mangle):
    signed = make(issuer)
    with pytest.raises(PolicyError, match=r"malformed|larger"):
        SignedVoucher.decode(mangle(signed.payload, signed.signature))


def _with(payload: bytes, signature: bytes, drop: str | None = None, **changes) -> str:
    data = json.loads(payload)
    data.update(changes)
    if drop:
        del data[drop]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return f"unseen-voucher-v1.{b64encode(text.encode())}.{b64encode(signature)}"


def test_decode_refuses_non_ascii_bytes():
    with pytest.raises(PolicyError, match="not ASCII"):
        SignedVoucher.decode("unseen-voucher-v1.é.x".encode())


# -- verify: signature and trust ----------------------------------------------------------------


def test_verify_accepts_a_trusted_issuer(issuer):
    signed = make(issuer)
    assert verify(signed, {issuer.key_id: issuer.public_key}, NOW) == signed.voucher


def test_forged_signature_is_refused(issuer):
    signed = make(issuer)
    forged = SignedVoucher(signed.payload, bytes([signed.signature[0] ^ 1]) + signed.signature[1:])
    with pytest.raises(SignatureError, match="voucher v-123 has an invalid signature"):
        verify(forged, {issuer.key_id: issuer.public_key})


def test_altered_payload_is_refused(issuer):
    signed = make(issuer, quota=1)
    bigger = make(issuer, quota=1000)
    tampered = SignedVoucher(bigger.payload, signed.signature)
    with pytest.raises(SignatureError, match="invalid signature"):
        verify(tampered, {issuer.key_id: issuer.public_key})


def test_untrusted_issuer_is_refused(issuer):
    rogue = SigningKey.generate()
    signed = make(rogue)
    with pytest.raises(PolicyError, match=f"issued by key {rogue.key_id[:16]}, which this holder"):
        verify(signed, {issuer.key_id: issuer.public_key})


def test_a_voucher_naming_a_trusted_issuer_but_signed_by_another_is_forged(issuer):
    rogue = SigningKey.generate()
    genuine = make(issuer)
    # The rogue signs a payload that claims the trusted issuer.
    forged = SignedVoucher(genuine.payload, rogue.sign(b"unseen.voucher.v1\n" + genuine.payload))
    with pytest.raises(SignatureError):
        verify(forged, {issuer.key_id: issuer.public_key})


def test_verify_with_now_checks_the_window(issuer):
    with pytest.raises(PolicyError, match="expired at 2026-11-20T00:00:00Z"):
        verify(make(issuer), {issuer.key_id: issuer.public_key}, T_END)


# -- authorize: every refusal names its reason ---------------------------------------------------


def test_authorize_accepts_an_in_scope_request(issuer):
    # The last query of a quota of 5 is allowed; the sixth is not.
    assert authorize(make(issuer).voucher, request(), NOW, frozenset(), used_count=4) is None
    with pytest.raises(PolicyError, match="quota"):
        authorize(make(issuer).voucher, request(), NOW, frozenset(), used_count=5)


@pytest.mark.parametrize(
    ("overrides", "req", "now", "used", "message"),
    [
        ({}, {"analyst": OTHER_ANALYST}, NOW, 0, f"granted to analyst key {ANALYST[:16]}, not to"),
        ({}, {"holder": "grid"}, NOW, 0, "voucher v-123 is for holder tax, not grid"),
        ({}, {}, T_END, 0, "voucher v-123 expired at 2026-11-20T00:00:00Z"),
        ({}, {}, T0 - dt.timedelta(seconds=1), 0, "not valid before 2026-11-01T00:00:00Z"),
        ({}, {"reads": {"loans": {}}}, NOW, 0, "voucher v-123 does not cover table loans"),
        ({}, {"reads": {"tax": {"city": {"group"}}}}, NOW, 0, "does not cover column tax.city"),
        (
            {},
            {"reads": {"TAX": {"Revenue": {"filter"}}}},
            NOW,
            0,
            "voucher v-123 does not cover column tax.revenue for filter",
        ),
        ({"quota": 5}, {}, NOW, 5, "voucher v-123 has used its quota of 5 queries"),
        ({"quota": 1}, {}, NOW, 1, "has used its quota of 1 query"),
        (
            {"entities": ["e1", "e2"]},
            {"entities": frozenset({"e1", "e3", "e4"})},
            NOW,
            0,
            "voucher v-123 does not cover 2 of the 3 requested entities",
        ),
        (
            {"entities": ["e1"]},
            {},
            NOW,
            0,
            "covers only named entities, but the request names none",
        ),
        (
            {"entity_digest": entity_set_digest(["e1", "e2"])},
            {"entities": frozenset({"e1"})},
            NOW,
            0,
            "covers a different set of entities than requested",
        ),
        (
            {"grantee_subject": "CN=bank-a"},
            {"subject": "CN=bank-b"},
            NOW,
            0,
            "bound to certificate subject CN=bank-a; the caller presented CN=bank-b",
        ),
        ({"grantee_subject": "CN=bank-a"}, {}, NOW, 0, "the caller presented none"),
    ],
)
def test_authorize_refusals_name_the_reason(issuer, overrides, req, now, used, message):
    voucher = make(issuer, **overrides).voucher
    with pytest.raises(PolicyError) as info:
        authorize(voucher, request(**req), now, frozenset(), used)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_entity_refusals_never_name_the_entities(issuer):
    voucher = make(issuer, entities=["secret-1"]).voucher
    with pytest.raises(PolicyError) as info:
        authorize(voucher, request(entities=frozenset({"secret-2"})), NOW)
    assert "secret" not in str(info.value)


def test_entity_scopes_accept_what_they_cover(issuer):
    listed = make(issuer, entities=["e1", "e2", "e3"]).voucher
    assert authorize(listed, request(entities=frozenset({"e1", "e3"})), NOW) is None
    digest = make(issuer, entity_digest=entity_set_digest(["e2", "e1", "e1"])).voucher
    assert authorize(digest, request(entities=entity_ids(["e1", "e2"])), NOW) is None
    # One entity more than the scope lists is refused, by list and by digest.
    with pytest.raises(PolicyError):
        authorize(listed, request(entities=frozenset({"e1", "e4"})), NOW)
    with pytest.raises(PolicyError):
        authorize(digest, request(entities=entity_ids(["e1", "e2", "e3"])), NOW)


def test_revoked_voucher_is_refused_with_when_and_why(issuer):
    voucher = make(issuer).voucher
    revoked = RevocationList([Revocation("v-123", "consent withdrawn", NOW)])
    with pytest.raises(
        PolicyError, match="voucher v-123 was revoked at 2026-11-10T12:00:00Z: consent withdrawn"
    ):
        authorize(voucher, request(), NOW, revoked)
    with pytest.raises(PolicyError, match=r"voucher v-123 was revoked$"):
        authorize(voucher, request(), NOW, {"v-123"})


def test_validity_window_is_half_open(issuer):
    voucher = make(issuer).voucher
    assert authorize(voucher, request(), T0) is None
    assert authorize(voucher, request(), T_END - dt.timedelta(microseconds=1)) is None
    with pytest.raises(PolicyError, match="expired"):
        authorize(voucher, request(), T_END)


# -- the holder's policy ------------------------------------------------------------------------


def test_policy_requires_a_voucher_when_configured(issuer):
    policy = VoucherPolicy(True, {issuer.key_id: issuer.public_key})
    with pytest.raises(PolicyError, match="holder tax requires a voucher; none was presented"):
        policy.check(request(), None, NOW)
    assert VoucherPolicy(False, {}).check(request(), None, NOW) is None


def test_policy_checks_a_presented_voucher_even_when_not_required(issuer):
    policy = VoucherPolicy(False, {issuer.key_id: issuer.public_key}, {"v-123"})
    with pytest.raises(PolicyError, match="revoked"):
        policy.check(request(), make(issuer), NOW)
    untrusting = VoucherPolicy(False, {})
    with pytest.raises(PolicyError, match="does not trust"):
        untrusting.check(request(), make(issuer), NOW)
    ok = VoucherPolicy(False, {issuer.key_id: issuer.public_key})
    assert ok.check(request(), make(issuer), NOW, used_count=0).voucher_id == "v-123"


# -- issuing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scope": {"tax": {"revenue": ["sum"]}}}, "unknown operation 'sum'"),
        ({"scope": {"tax": {"revenue": []}}}, "lists no operations"),
        ({"scope": {}}, "names no table"),
        ({"scope": {"tax": {"revenue": "aggregate"}}}, "must be a list"),
        ({"not_after": T0}, "not_after must be later than not_before"),
        ({"not_after": dt.datetime(2027, 1, 1)}, "timezone-aware"),
        ({"quota": 0}, "quota must be a positive integer"),
        ({"grantee": "not-a-key"}, "grantee must be a key id"),
        ({"voucher_id": "v 1"}, "voucher id must be"),
        ({"purpose": "two\nlines"}, "control characters"),
        ({"purpose": ""}, "purpose must be a non-empty string"),
        ({"entities": ["a"], "entity_digest": "0" * 64}, "either a list of ids or a digest"),
        ({"entities": []}, "entity list is empty"),
        ({"entities": "9133"}, "a list of ids, not one string"),
        ({"entity_digest": "xyz"}, "entity digest must be"),
    ],
)
def test_issue_refuses_invalid_fields(issuer, overrides, message):
    with pytest.raises(ConfigError, match=message):
        make(issuer, **overrides)


def test_issue_defaults(issuer):
    signed = issue(
        issuer,
        grantee=ANALYST,
        holder="tax",
        scope={"tax": {}},
        purpose="count rows",
        not_after=dt.datetime.now(UTC) + dt.timedelta(days=1),
    )
    voucher = signed.voucher
    assert voucher.voucher_id.startswith("v-") and len(voucher.voucher_id) == 18
    assert voucher.not_before == voucher.issued_at
    assert voucher.issuer == issuer.key_id and voucher.quota is None
    # A table granted with no columns allows COUNT(*) and nothing else.
    authorize(voucher, request(reads={"tax": {}}))
    with pytest.raises(PolicyError, match=r"does not cover column tax\.revenue"):
        authorize(voucher, request())


# -- what a plan reads --------------------------------------------------------------------------


def test_plan_reads_maps_plan_parts_to_operations():
    plan = AggregatePlan(
        table="Loans",
        filter=Binary(
            BinaryOp.AND,
            InList(Column("Account"), ("a1", "a2")),
            Binary(BinaryOp.GT, Column("amount"), Literal(0)),
        ),
        groups=(GroupColumn("city", ("hz", "nb")),),
        measures=(
            Measure(Column("amount"), Encoding.INTEGER, want_square=True),
            Measure(Literal(1), Encoding.INTEGER, want_sum=False),
        ),
    )
    reads = plan_reads(plan)
    assert {t: dict(c) for t, c in reads.items()} == {
        "loans": {
            "account": frozenset({"filter"}),
            "amount": frozenset({"filter", "aggregate"}),
            "city": frozenset({"group"}),
        }
    }
    count_star = AggregatePlan("loans", None, (), (Measure(Literal(1), Encoding.INTEGER),))
    assert dict(plan_reads(count_star)) == {"loans": {}}


def test_entity_ids_are_text():
    assert entity_ids([1001, "1001", "x"]) == {"1001", "x"}
    for bad in (1.5, True, None, dt.date(2026, 1, 1)):
        with pytest.raises(PlanError, match="entity id must be text or an integer"):
            entity_ids([bad])
    assert entity_set_digest(["b", "a"]) == entity_set_digest(["a", "b", "a"])
    assert entity_set_digest(["a,b"]) != entity_set_digest(["a", "b"])


# -- revocation files ---------------------------------------------------------------------------


def test_revoke_writes_a_file_that_a_running_holder_sees(tmp_path):
    path = tmp_path / "revoked.json"
    live = RevocationFile(path)
    assert "v-1" not in live
    first = revoke(path, "v-1", "consent withdrawn", NOW)
    assert "v-1" in live
    assert live.get("v-1") == first
    again = revoke(path, "v-1", "second thoughts", NOW + dt.timedelta(days=1))
    assert again == first  # the first revocation stands
    revoke(path, "v-2", "analyst left", NOW)
    listed = RevocationList.load(path)
    assert {r.voucher_id for r in listed} == {"v-1", "v-2"} and len(listed) == 2
    assert listed.get("v-2").reason == "analyst left"
    data = json.loads(path.read_text())
    assert data["type"] == "unseen.revocations"
    assert data["revoked"][0]["revoked_at"] == "2026-11-10T12:00:00Z"


def test_revocation_files_are_validated(tmp_path):
    assert len(RevocationList.load(tmp_path / "none.json")) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "unseen.revocations", "version": 1, "revoked": [{"voucher_id": 1}]}')
    with pytest.raises(ConfigError, match=f"{bad} is invalid"):
        RevocationList.load(bad)
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="not an unseen revocation list"):
        RevocationList.load(bad)
    with pytest.raises(ConfigError, match="is not a voucher id"):
        revoke(tmp_path / "r.json", "bad id", "x")


def test_revocation_file_survives_concurrent_writers(tmp_path):
    path = tmp_path / "revoked.json"
    code = (
        "import sys\n"
        "from unseen.engine.governance.revocation import revoke\n"
        "for j in range(5):\n"
        "    revoke(sys.argv[1], f'v-{sys.argv[2]}-{j}', 'bulk')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], cwd=ROOT)
        for i in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert len(RevocationList.load(path)) == 20


def test_b64_helpers_used_by_tokens_are_inverse():
    assert b64decode(b64encode(b"\x00\xff")) == b"\x00\xff"


# -- federation (the holders that must take part in a masked aggregate) --------------------------


def test_a_voucher_may_name_its_federation_and_old_payloads_stay_unchanged(issuer):
    plain = make(issuer)
    assert b"federation" not in plain.payload  # vouchers without it keep their bytes
    assert plain.voucher.federation is None
    named = make(issuer, federation=["bank-b", "bank-a", "bank-a"])
    decoded = SignedVoucher.decode(named.encode()).voucher
    assert decoded.federation == frozenset({"bank-a", "bank-b"})
    assert json.loads(named.payload)["federation"] == ["bank-a", "bank-b"]


@pytest.mark.parametrize(
    ("federation", "message"),
    [(["only-one"], "at least two holders"), (["a", "b\nc"], "federation holder")],
)
def test_a_federation_names_two_holders_on_one_line_each(issuer, federation, message):
    with pytest.raises(ConfigError, match=message):
        make(issuer, federation=federation)


def test_a_malformed_federation_in_a_payload_is_refused(issuer):
    data = json.loads(make(issuer).payload)
    data["federation"] = "bank-a"
    with pytest.raises(PolicyError, match="federation"):
        Voucher.from_payload(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
