"""Attack: an analyst relies on a consent the subject gave to a different analyst.

Attacker: a second analyst (malicious). Enterprise ``acct-002`` consented to
bank A scoring it; the consent is public in the register, and its digest is
enough to reference it. Bank B obtains a voucher referencing that digest (and
the subject's genuine signature) and asks for the enterprise's score with its
own key.

It must learn nothing: the holders refuse (``1 granted to another analyst``)
before reading any row, and ledger the refusal; bank A, the grantee, is
answered. The rule is the grantee check in ``unseen/engine/governance/consent.py``
(``_problem``: ``data.get("grantee") != grantee``); before this branch no
holder checked consents, so bank B's request was answered.
"""

from __future__ import annotations

import pytest

from tests.consent_fixtures import build_consent_world
from tests.governance_fixtures import ACCOUNTS, entries, head, start_in_process
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError
from unseen.engine.query.model import parse_model

MODEL = parse_model(
    {"entity": "account", "features": [{"table": "power", "column": "kwh", "weight": 0.25}]}
)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    cw = build_consent_world(tmp_path_factory.mktemp("reuse"))
    federation = start_in_process(cw.world)
    yield cw, federation
    federation.close()


def test_another_grantees_consent_admits_nothing(fed, key):
    cw, federation = fed
    bank_b = AnalystKey.generate()
    subject = ACCOUNTS[2]
    consent = cw.consent(subject, key.key_id)  # granted to bank A (``key``)
    stolen = cw.vouchers(bank_b.key_id, [consent], [subject])
    before = head(cw.world.ledgers["grid"])
    with pytest.raises(RemoteError) as info:
        federation.client(bank_b, stolen).score(MODEL, [subject])
    assert info.value.code == "PERMISSION_DENIED"
    assert str(info.value).endswith(
        "1 of the 1 requested entities have no valid consent (1 granted to another analyst)"
    )
    assert [e.outcome for e in entries(cw.world.ledgers["grid"], before)] == ["refused"]
    # The grantee itself is answered under the same consent.
    own, weights = cw.approved(federation, key, MODEL, [consent], [subject])
    assert len(federation.client(key, own).score(MODEL, [subject], weights).rows) == 1
