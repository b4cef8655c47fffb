"""Privacy budgets: a voucher's zCDP rho, charged per dp query in each holder's own ledger.

A voucher may carry ``privacy.rho`` (:class:`unseen.engine.governance.voucher.Voucher`). Each
holder serving a dp table charges every query on it — before it reads any
data, so failed and retried attempts are charged too — by appending one
ledger entry of kind :data:`CHARGE_KIND` whose reason records the cost::

    charged rho=1/4 spent=3/4 budget=1

in the same ``BEGIN IMMEDIATE`` transaction that sums the voucher's earlier
charges (:meth:`unseen.engine.governance.ledger.Ledger.charge_privacy`), so concurrent
analysts, threads or processes cannot overspend. The entry is hash-chained
and signed like every other, so a supervisor recomputes the spent budget
from the ledger alone (:func:`spent_by_voucher`). zCDP composes by addition
(Bun and Steinke 2016): the spent budget is the sum of the charges, and
``rho`` converts to (epsilon, delta) as ``unseen.engine.privacy.dp_accounting.epsilon_for``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "CHARGE_KIND",
    "BudgetState",
    "charge_reason",
    "parse_charge",
    "spent_by_voucher",
]

CHARGE_KIND = "privacy"
_CHARGE = re.compile(r"^charged rho=(\d+(?:/\d+)?) ")


@dataclass(frozen=True)
class BudgetState:
    """A voucher's budget at one holder after a charge."""

    holder: str
    voucher_id: str
    charged: Fraction
    spent: Fraction
    budget: Fraction

    @property
    def left(self) -> Fraction:
        return max(self.budget - self.spent, Fraction(0))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (exact fractions as text, and floats for reading)."""
        return {
            "holder": self.holder,
            "voucher_id": self.voucher_id,
            "charged": str(self.charged),
            "spent": str(self.spent),
            "budget": str(self.budget),
            "left": float(self.left),
        }


def charge_reason(cost: Fraction, spent: Fraction, budget: Fraction) -> str:
    """The reason text of a charge entry (what :func:`parse_charge` reads back)."""
    return f"charged rho={cost} spent={spent} budget={budget}"


def parse_charge(reason: str) -> Fraction | None:
    """The cost a charge entry's reason records, or None for other reasons."""
    found = _CHARGE.match(reason)
    return Fraction(found.group(1)) if found else None


def spent_by_voucher(entries: Iterable[Any]) -> dict[str, Fraction]:
    """Budget spent per voucher id, recomputed from ledger entries (a supervisor's view)."""
    out: dict[str, Fraction] = {}
    for entry in entries:
        if entry.kind != CHARGE_KIND or entry.outcome != "answered" or not entry.voucher_id:
            continue
        cost = parse_charge(entry.reason)
        if cost is not None:
            out[entry.voucher_id] = out.get(entry.voucher_id, Fraction(0)) + cost
    return out
