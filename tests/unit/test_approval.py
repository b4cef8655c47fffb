"""Model approvals: the voucher field, its canonical form and the holder's check."""

from __future__ import annotations

import datetime as dt

import pytest

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.approval import ModelApproval, feature_digest
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import AccessRequest, SignedVoucher, authorize, issue

GRANTEE = "ab" * 32
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SCOPE = {"power": {"account": ["entity"], "kwh": ["score"]}}


def _request(model: frozenset[str] | None, kind: str = "score") -> AccessRequest:
    return AccessRequest(
        analyst=GRANTEE,
        holder="grid",
        kind=kind,
        plan_digest="cd" * 32,
        reads=SCOPE,
        model=model,
    )


def _voucher(model: ModelApproval | None) -> SignedVoucher:
    return issue(
        SigningKey.generate(),
        grantee=GRANTEE,
        holder="grid",
        scope=SCOPE,
        purpose="test",
        not_before=NOW,
        not_after=NOW + dt.timedelta(days=1),
        issued_at=NOW,
        model=model,
    )


def test_feature_digest_binds_the_feature_the_exponent_and_the_ciphertext():
    base = feature_digest(b"spec", 3, b"cipher")
    assert base != feature_digest(b"spec2", 3, b"cipher")
    assert base != feature_digest(b"spec", 4, b"cipher")
    assert base != feature_digest(b"spec", 3, b"cipher2")
    assert base == feature_digest(b"spec", 3, b"cipher")


def test_a_voucher_round_trips_its_model_and_old_vouchers_still_parse():
    approval = ModelApproval("logistic", frozenset({feature_digest(b"s", 0, b"w")}))
    signed = _voucher(approval)
    assert SignedVoucher.decode(signed.encode()).voucher.model == approval
    plain = _voucher(None)
    assert b'"model"' not in plain.payload  # absent, not null: earlier vouchers stay canonical
    assert SignedVoucher.decode(plain.encode()).voucher.model is None


def test_a_score_is_admitted_only_with_approved_weights():
    digest = feature_digest(b"s", 0, b"w")
    voucher = _voucher(ModelApproval("identity", frozenset({digest}))).voucher
    authorize(voucher, _request(frozenset({digest})), NOW)
    with pytest.raises(PolicyError, match="only weights its issuer encrypted"):
        authorize(voucher, _request(frozenset({feature_digest(b"s", 0, b"other")})), NOW)
    with pytest.raises(PolicyError, match="names no approved model"):
        authorize(voucher, _request(None), NOW)
    with pytest.raises(PolicyError, match="approves no model"):
        authorize(_voucher(None).voucher, _request(frozenset({digest})), NOW)
    # Prepare and aggregates do not compute with weights: no approval needed.
    authorize(_voucher(None).voucher, _request(None, kind="prepare"), NOW)


def test_an_approval_names_digests_and_a_known_link():
    with pytest.raises(ConfigError):
        ModelApproval("probit", frozenset({"ab" * 32}))
    with pytest.raises(ConfigError):
        ModelApproval("identity", frozenset({"not-hex"}))
    with pytest.raises(ConfigError):
        ModelApproval("identity", frozenset())
