"""The noisy quantities of one dp query and their L2 sensitivities (public inputs only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from unseen.engine.errors import PlanError
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.query.expr import Column
from unseen.engine.query.plan import AggregatePlan, Encoding, Measure, SlotCodec

__all__ = ["Quantity", "check_dp_plan", "grid", "quantities"]


@dataclass(frozen=True)
class Quantity:
    """One noisy quantity per group: where it sits and its L2 sensitivity on its grid.

    ``measure`` is None for the row count; ``part`` is ``rows``, ``count``,
    ``sum`` or ``square`` (the slot record's fields, :mod:`unseen.engine.query.layout`).
    ``sensitivity`` is in units of the quantity's integer grid.
    """

    measure: int | None
    part: str
    sensitivity: int


def grid(measure: Measure, codec: SlotCodec) -> Fraction:
    """The exact grid a measure's sum is carried on (as :mod:`unseen.engine.query.layout` packs
    it)."""
    if measure.encoding is Encoding.INTEGER:
        return Fraction(1)
    if measure.encoding is Encoding.DECIMAL:
        return Fraction(1, 10**measure.decimal_scale)
    return Fraction(1, 1 << codec.fraction_bits)


def check_dp_plan(plan: AggregatePlan, policy: DpPolicy) -> None:
    """Refuse a plan dp mode cannot bound: a measure must be a bare column with bounds.

    An expression over columns (``amount * 1e6``, a spike) would escape the
    public bounds the sensitivity is computed from.
    """
    for measure in plan.measures:
        if not (measure.want_sum or measure.want_square):
            continue
        if not isinstance(measure.expr, Column) or policy.bound(measure.expr.name) is None:
            raise PlanError(
                f"table {plan.table} is served with differential privacy: SUM, AVG, VAR and "
                "STDDEV take a column with published clamping bounds, not an expression"
            )


def _ceil(value: Fraction) -> int:
    return max(1, math.ceil(value))


def quantities(plan: AggregatePlan, policy: DpPolicy) -> tuple[Quantity, ...]:
    """The quantities a query publishes per group, in slot-record order, with sensitivities.

    Adding or removing one unit changes at most ``max_rows * unit_holders`` rows, spread
    over the groups in any way; a row moves a count by 1, a sum by at most
    ``B = max(|lower|, |upper|)`` and a sum of squares by at most ``B^2``. The
    L2 norm of the change over the groups is at most the L1 norm, so the
    sensitivities are ``max_rows``, ``max_rows*B`` and ``max_rows*B^2`` on the
    respective grids (rounded up).
    """
    check_dp_plan(plan, policy)
    codec = plan.codec
    rows = policy.max_rows * policy.unit_holders
    out = [Quantity(None, "rows", rows)]
    square_grid = Fraction(1, 1 << codec.fraction_bits)
    for i, measure in enumerate(plan.measures):
        out.append(Quantity(i, "count", rows))
        if not (measure.want_sum or measure.want_square):
            continue
        assert isinstance(measure.expr, Column)
        bounds = policy.bound(measure.expr.name)
        assert bounds is not None
        largest = max(abs(bounds[0]), abs(bounds[1]))
        out.append(Quantity(i, "sum", _ceil(rows * largest / grid(measure, codec))))
        if measure.want_square:
            out.append(Quantity(i, "square", _ceil(rows * largest**2 / square_grid)))
    return tuple(out)
