"""Attack: the analyst forges the consent of an enterprise it wants to score.

Attacker: the analyst (malicious). The holders answer entity-scoped requests
only for subjects that consented. The analyst writes a consent naming an
enterprise that never consented, signs it with a key of its own (it cannot
have the enterprise's), publishes it in the consent register (anyone may
submit to it) and presents a voucher that references it by digest — the
exchange issued the voucher trusting the consent digests the analyst listed.
It then asks for the enterprise's score.

It must learn nothing: every holder refuses before reading the enterprise's
rows (PERMISSION_DENIED, ``... (1 not signed by the subject (forged))``,
never the enterprise's id) and ledgers the refusal. The rule is the subject
key check in ``unseen/engine/governance/consent.py`` (``_problem``), reached through
``Stewardship.check`` (``used = check_consents(...)``): before this branch no
holder checked consents, so the same request was answered.
"""

from __future__ import annotations

import pytest

from tests.consent_fixtures import build_consent_world
from tests.governance_fixtures import ACCOUNTS, entries, head, start_in_process
from unseen.engine.errors import RemoteError
from unseen.engine.governance.signing import SigningKey
from unseen.engine.query.model import parse_model

MODEL = parse_model(
    {"entity": "account", "features": [{"table": "power", "column": "kwh", "weight": 0.5}]}
)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    cw = build_consent_world(tmp_path_factory.mktemp("forged"))
    federation = start_in_process(cw.world)
    yield cw, federation
    federation.close()


def test_a_consent_signed_by_the_analyst_admits_nothing(fed, key):
    cw, federation = fed
    victim = ACCOUNTS[4]
    own = SigningKey.generate()  # the analyst's key, claiming to be the victim
    forged = cw.consent(victim, key.key_id, key=own)
    vouchers = cw.vouchers(key.key_id, [forged], [victim])
    before = {n: head(p) for n, p in cw.world.ledgers.items()}
    with pytest.raises(RemoteError) as info:
        federation.client(key, vouchers).score(MODEL, [victim])
    assert info.value.code == "PERMISSION_DENIED"
    assert str(info.value).endswith(
        "1 of the 1 requested entities have no valid consent (1 not signed by the subject (forged))"
    )
    assert victim not in str(info.value)
    logged = entries(cw.world.ledgers["grid"], before["grid"])
    assert [(e.outcome, e.result_digest) for e in logged] == [("refused", "")]


def test_the_same_request_with_the_subjects_own_consent_is_answered(fed, key):
    cw, federation = fed
    subject = ACCOUNTS[5]
    consent = cw.consent(subject, key.key_id)
    vouchers, weights = cw.approved(federation, key, MODEL, [consent], [subject])
    result = federation.client(key, vouchers).score(MODEL, [subject], weights)
    (kwh,) = cw.world.reference.execute(
        "SELECT kwh FROM power WHERE account = ?", [subject]
    ).fetchall()
    assert result.rows[0][1] == pytest.approx(0.5 * kwh[0], abs=1e-6)
