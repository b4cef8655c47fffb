"""Attacker: an analyst, through the coordinator.

What it sends: one query with the power sums ``SUM(v)``, ``SUM(v*v)``, ...
``SUM(v^6)`` and ``COUNT(*)`` of a group of six rows (enough for k = 5).
The first n power sums of n numbers determine them (Newton's identities),
so the published cells would spell out all six values, and no single row
dominates any of the sums.

What it must learn: that the group was suppressed ("moments": a group must
have at least twice as many rows as the quantities the query publishes per
group), nothing else. Large groups in the same answer are published.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.attacks.small_group import POWERS, SMALL, SQL, start_small_group


def recover(power_sums: list[int], n: int) -> list[int]:
    """The n values whose first n power sums these are (Newton's identities)."""
    e = [Fraction(1)]
    for k in range(1, n + 1):
        e.append(sum((-1) ** (i - 1) * e[k - i] * power_sums[i - 1] for i in range(1, k + 1)) / k)
    coefficients = [float((-1) ** k * e[k]) for k in range(n + 1)]
    return sorted(round(r.real) for r in np.roots(coefficients))


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    fed, reference = start_small_group(tmp_path_factory.mktemp("powers"))
    yield fed, reference
    fed.close()


def test_the_power_sums_would_reveal_the_group(federation):
    _, reference = federation
    (row,) = reference.con.sql(SQL.replace("ORDER BY", "HAVING city = 'Small' ORDER BY")).fetchall()
    assert recover([int(s) for s in row[1 : 1 + POWERS]], row[-1]) == SMALL


def test_power_sums_of_a_small_group_are_suppressed(federation, key):
    fed, reference = federation
    result, _, verdict = reference.check(fed.client(key), SQL, 5)
    assert verdict.ok, verdict.problems
    small = next(row for row in result.rows if row[0] == "Small")
    assert small[1:] == [None] * (POWERS + 1)
    assert result.meta["suppressed"] == [{"group": {"city": "Small"}, "reason": "moments"}]
    big = next(row for row in result.rows if row[0] == "Big")
    assert big[-1] == 120 and None not in big
