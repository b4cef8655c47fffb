"""Attacker: an analyst holding a voucher with a small quota, through the coordinator.

What it sends: ``SUM((amount - t) / (amount - amount))`` for thresholds ``t``:
each row gives +inf above ``t``, -inf below it and NaN at it, so the sum is
inf when ``t`` is below the column's MIN, -inf above its MAX and NaN in
between. When the holder's error said which (and failures cost nothing), a
binary search found a holder's exact MIN and MAX with zero quota spent.

What it must learn: one message for every probe, naming only the failing
measure's position, and every probe costs a query of its quota: the probes
stop when the quota is spent.
"""

from __future__ import annotations

import pytest

from tests.governance_fixtures import build_world, start_in_process
from unseen.engine.errors import RemoteError

QUOTA = 3


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    federation = start_in_process(build_world(tmp_path_factory.mktemp("nan")))
    yield federation
    federation.close()


def _probe(client, t: int) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        client.query(f"SELECT SUM((amount - {t}) / (amount - amount)) FROM loans")
    return info.value


def test_probes_all_look_alike_and_each_costs_quota(fed, key):
    world = fed.world
    vouchers = [
        world.voucher(bank, key.key_id, quota=QUOTA, voucher_id=f"v-probe-{bank}")
        for bank in ("bank-a", "bank-b")
    ]
    client = fed.client(key, vouchers)
    low, high = world.reference.sql("SELECT MIN(amount), MAX(amount) FROM loans").fetchall()[0]
    # Below the MIN (all +inf), inside (NaN), above the MAX (all -inf).
    errors = [_probe(client, t) for t in (low - 1, (low + high) // 2, high + 1)]
    reasons = {e.reason for e in errors}
    assert len(reasons) == 1, reasons
    (reason,) = reasons
    assert "measure 1 is not finite for some row" in reason
    assert str(low) not in reason and str(high) not in reason
    ledger = fed.holders["bank-a"].gov.ledger
    assert ledger.answered_count("v-probe-bank-a") == QUOTA
    # The quota is spent: the next probe is refused before any data is read.
    refused = _probe(client, high + 2)
    assert refused.code == "PERMISSION_DENIED" and "quota" in refused.reason
