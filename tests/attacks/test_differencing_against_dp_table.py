"""Differencing against a dp table: the analyst subtracts two sums to read one unit's value.

Attacker: an analyst holding valid vouchers (with a privacy budget) for a
table the banks serve in dp mode. It sends ``SUM(amount)`` and then
``SUM(amount) WHERE account <> 'acct-007'``, repeatedly, and subtracts: on an
exact table (quick-start or governed exact mode, where k and quotas are the
only brakes) the difference is acct-007's total to the cent. Against the dp
table it must learn no more than the stated noise allows: the attack's error
is distributed as the difference of two independent noises of the sd each
answer states (Kolmogorov-Smirnov against that normal), and the budget runs
out after ``rho_voucher / rho_query`` queries. CI runs
``UNSEEN_DP_ATTACK_REPEATS`` pairs (default 25); the full script runs 200.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy import stats

from tests.dp_world import RHO, build_dp_world, dp_vouchers
from tests.governance_fixtures import start_in_process
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError

REPEATS = int(os.environ.get("UNSEEN_DP_ATTACK_REPEATS", "25"))
TARGET = "acct-007"


def test_differencing_recovers_the_target_no_better_than_the_stated_noise(
    tmp_path, key: AnalystKey
):
    world = build_dp_world(tmp_path / "world")
    federation = start_in_process(world)
    try:
        budget = 2 * REPEATS * RHO
        client = federation.client(key, dp_vouchers(world, key.key_id, str(budget)))
        (truth,) = world.reference.execute(
            "SELECT SUM(amount) FROM loans WHERE account = ?", [TARGET]
        ).fetchone()
        errors, stated = [], []
        for _ in range(REPEATS):
            everyone = client.query("SELECT SUM(amount) FROM loans")
            others = client.query(f"SELECT SUM(amount) FROM loans WHERE account <> '{TARGET}'")
            errors.append(float(everyone.rows[0][0] - others.rows[0][0] - truth))
            sd_all = everyone.meta["dp"]["sd"][0][0]
            sd_others = others.meta["dp"]["sd"][0][0]
            stated.append(math.hypot(sd_all, sd_others))
        # The budget is spent: one more query is refused by the holders.
        with pytest.raises(RemoteError, match="privacy budget"):
            client.query("SELECT SUM(amount) FROM loans")
    finally:
        federation.close()
    sd = stated[0]
    assert all(s == pytest.approx(sd) for s in stated)
    # The attack's error is the stated noise, no smaller: its distribution matches it ...
    assert stats.kstest(errors, stats.norm(scale=sd).cdf).pvalue > 1e-4
    # ... so a single difference misses the target by about sd, far more than the target's
    # own magnitude allows to read it off (the exact attack misses by 0).
    assert np.std(errors) > 0.5 * sd
    assert sd > abs(truth)
