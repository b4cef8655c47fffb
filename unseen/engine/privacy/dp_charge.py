"""The holder's charging step for a dp query: the cost from OpenDP, the charge in the ledger."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction

from unseen.engine.governance.access import Governance
from unseen.engine.governance.voucher import AccessRequest
from unseen.engine.privacy.dp_accounting import calibrate, query_cost
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.query.plan import AggregatePlan

__all__ = ["charge_query", "query_rho"]

log = logging.getLogger(__name__)


def query_rho(plan: AggregatePlan, policy: DpPolicy) -> Fraction:
    """The rho one query costs: OpenDP's composition over its quantities.

    The float OpenDP returns is read back as the nearest simple fraction, so
    that charges add up exactly in the ledger (four queries of 1/4 spend 1).
    """
    return Fraction(query_cost(calibrate(plan, policy))).limit_denominator(10**9)


def charge_query(
    gov: Governance,
    request: AccessRequest,
    vouchers: Iterable[str],
    plan: AggregatePlan,
    policy: DpPolicy,
) -> str:
    """Charge the query to the voucher's budget; returns the annotated charge receipt."""
    state, receipt = gov.charge_privacy(request, vouchers, query_rho(plan, policy))
    log.info(
        "dp charge on %s: rho %.4g, %.4g of %.4g spent",
        plan.table,
        float(state.charged),
        float(state.spent),
        float(state.budget),
    )
    return receipt
