"""zCDP calibration and accounting of a dp query, with OpenDP as the accountant.

Every noisy quantity of a query (:func:`unseen.engine.privacy.dp_policy.quantities`) is a
Gaussian mechanism over the vector of its groups' values. The table's
per-query cost rho is split evenly over the ``Q`` quantities, so quantity ``j``
with L2 sensitivity ``Delta_j`` gets total noise ``sigma_j = Delta_j / sqrt(2rho/Q)``
(zCDP of the Gaussian mechanism, Bun and Steinke 2016; for the discrete
Gaussian, Canonne, Kamath and Steinke 2020). :func:`query_cost` does not trust
that arithmetic: it builds each mechanism with OpenDP's ``make_gaussian``,
composes them with ``make_composition`` and asks OpenDP's privacy map for the
rho of one privacy unit. :func:`epsilon_for` converts rho to (epsilon, delta) with OpenDP's
``make_zCDP_to_approxDP``.

Quantities whose sensitivity is huge on their exact grid (sums of a DOUBLE
column on the 2^-40 grid) are first rounded to a coarser power-of-two step,
so that noise stays within 64-bit integers; rounding a holder's total moves
it by at most one step, which the sensitivity in steps accounts for.

For a query with ``m`` measures over ``g`` groups: ``Q = 1 + sum_i (1 + s_i +
q_i)`` quantities (row count; per measure its count, its sum if SUM/AVG/VAR
asks, its sum of squares if VAR/STDDEV asks), the cost is the table's rho for
any ``m`` and ``g``, and each quantity's noise grows as ``sqrt(Q)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import opendp.prelude as dp

from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.dp_quantities import Quantity, quantities
from unseen.engine.query.plan import AggregatePlan

__all__ = ["Calibrated", "calibrate", "epsilon_for", "query_cost", "total_sd"]

dp.enable_features("contrib")

# Sensitivities above 2^STEP_BITS grid units are carried on a coarser power-of-two step.
STEP_BITS = 32


@dataclass(frozen=True)
class Calibrated:
    """One quantity's noise: its step on the grid and total sigma in steps.

    ``sensitivity`` is in steps (the rounding to the step included).
    """

    quantity: Quantity
    step: int
    sensitivity: int
    sigma: float

    def share_sigma(self, honest_holders: int) -> float:
        """sigma (in steps) of one holder's share: any ``honest_holders`` shares carry sigma."""
        return self.sigma / math.sqrt(honest_holders)


def calibrate(plan: AggregatePlan, policy: DpPolicy) -> tuple[Calibrated, ...]:
    """The noise of every quantity of ``plan`` under ``policy`` (public inputs only)."""
    found = quantities(plan, policy)
    rho_each = float(policy.rho) / len(found)
    out = []
    for q in found:
        step = 1 << max(0, q.sensitivity.bit_length() - STEP_BITS)
        sensitivity = -(-q.sensitivity // step) + (1 if step > 1 else 0)
        out.append(Calibrated(q, step, sensitivity, sensitivity / math.sqrt(2 * rho_each)))
    return tuple(out)


def _space() -> tuple[dp.Domain, dp.Metric]:
    return dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=dp.i64)


def query_cost(calibrated: tuple[Calibrated, ...]) -> float:
    """rho of one query, composed by OpenDP over its quantities.

    Each quantity is expressed per unit of its own sensitivity (scale
    ``sigma/Delta`` at distance 1), so one composition covers different sensitivities.
    """
    measurements = [
        dp.m.make_gaussian(*_space(), scale=c.sigma / c.sensitivity) for c in calibrated
    ]
    composed = dp.c.make_composition(measurements)
    return float(composed.map(1))


def epsilon_for(rho: float, delta: float) -> float:
    """epsilon of rho-zCDP at ``delta``, by OpenDP's conversion (Canonne et al. 2020)."""
    base = dp.m.make_gaussian(*_space(), scale=1.0 / math.sqrt(2 * rho))
    approx = dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(base), delta)
    epsilon, _ = approx.map(1)
    return float(epsilon)


def total_sd(c: Calibrated, policy: DpPolicy, holders: int) -> Fraction:
    """Standard deviation of the federation's total noise, in grid units (not steps).

    ``holders`` each add a share of variance ``sigma^2/honest_holders``.
    """
    share = c.share_sigma(policy.honest_holders)
    return Fraction(c.step) * Fraction(share * math.sqrt(holders))
