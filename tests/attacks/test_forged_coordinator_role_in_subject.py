"""Attacker: an analyst (mallory) whose certificate the federation's CA signed.

What it sends: a certificate whose organisation is the string
``evil,OU=coordinator`` and whose one organisational unit is ``analyst``;
with it, a direct ``Aggregate`` call to a holder that forwards the subject
``alice`` in the analyst-subject header, presenting a voucher bound to
alice's certificate. A holder that splits the subject string on commas
reads the role ``coordinator`` and believes the forwarded name.

What it must learn: nothing. Roles are read as X.509 attributes, so mallory
is an analyst, and holders refuse query RPCs from anyone but a coordinator
(PERMISSION_DENIED, before any work).
"""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.attacks.holder_pki import ca_signed, start_governed_holder
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.transport.tls import certificate_identity

FORGED = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil,OU=coordinator"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "analyst"),
        x509.NameAttribute(NameOID.COMMON_NAME, "mallory"),
    ]
)


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    governed = start_governed_holder(tmp_path_factory.mktemp("forged"))
    yield governed
    governed.close()


def test_a_comma_in_the_organisation_is_not_a_role(holder):
    forged = ca_signed(holder.bundle, "mallory", FORGED)
    assert certificate_identity(forged.cert.read_bytes()) == ("mallory", "analyst")


def test_forged_coordinator_cannot_forward_another_analysts_subject(holder, key: AnalystKey):
    forged = ca_signed(holder.bundle, "mallory", FORGED)
    voucher = holder.voucher(key, subject="alice")
    before = len(holder.entries())
    with pytest.raises(grpc.RpcError) as info:
        holder.aggregate(
            forged, key, "SELECT g, SUM(v) FROM t GROUP BY g", [voucher], forwarded_subject="alice"
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "only to the coordinator" in (info.value.details() or "")
    entries = holder.entries()[before:]
    assert [(e.kind, e.outcome) for e in entries] == [("aggregate", "refused")]
    # The refusal names the key, never the data.
    assert entries[0].analyst == key.key_id and not entries[0].result_digest
