"""Primary suppression: which group cells of an aggregate a holder must not publish.

Three rules, all evaluated by each holder on its own rows of each group (a
group that fails anywhere is suppressed everywhere), in this order:

``k``
    A group with ``0 < rows < k`` (the table's minimum group size, default 5).
``dominance``
    τ-ARGUS's p% rule on every magnitude measure (one with a SUM, AVG or
    VAR/STDDEV): with ``T`` the sum of the absolute row contributions ``|x|``
    of the group and ``x1 >= x2`` the two largest of them, the cell is
    sensitive when ``T - x1 - x2 < (p/100) * x1`` — the rest of the group
    cannot hide the largest contributor to within p% from the second largest
    (the best-placed coalition of one). Default p = 10; a table's policy may
    raise it. A spike measure such as ``amount / (1 + 1e15 * (id - 777)^2)``
    is all one row's value, so it fails.
``moments``
    Degrees of freedom: a group is published only if its rows number at least
    ``MOMENT_MARGIN`` times the quantities the query publishes per group (per
    measure its count, and its sum and sum of squares when asked). ``n``
    values are determined by their first ``n`` power sums (Newton's
    identities), and ``n`` threshold counts spell out a histogram of the
    group, so the many-measure attacks (``SUM(x)``, ``SUM(x*x)``, ...,
    ``SUM(x^m)``) need ``q >= n``; ``n >= 2q`` leaves at least as many
    unpublished dimensions as published ones. Ordinary statistics publish a
    handful of quantities and pass wherever ``k`` does for groups of a dozen
    rows or more.

The rules bound what *one* answer discloses; what a sequence of answers
discloses (differencing) is for vouchers' quotas, the ledger and, later,
differential privacy. The plaintext twin used by verification
(:mod:`unseen.oracle.plaintext`) calls the same :func:`failing_groups`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the catalog imports this module for DEFAULT_P; plans import the catalog
    from unseen.engine.query.plan import AggregatePlan

__all__ = [
    "DEFAULT_P",
    "MOMENT_MARGIN",
    "REASONS",
    "SPREAD_STATS",
    "CellFacts",
    "Spread",
    "SuppressionRules",
    "dominance",
    "dominated",
    "failing_groups",
    "first_reasons",
    "measure_spreads",
    "min_rows",
    "needs_second_largest",
    "published_quantities",
]

DEFAULT_P = 10.0
MOMENT_MARGIN = 2
REASONS = ("k", "dominance", "moments")
# What a holder's engine computes per magnitude measure and group, as DOUBLE
# (unseen.engine.data.pushdown): min and max always; the others only when the p% rule
# cannot be settled without them (values of both signs, or a value near half
# the total), in a second run.
SPREAD_STATS = ("min", "max", "abs_sum", "abs_max", "abs_second", "second_max", "second_min")


@dataclass(frozen=True)
class Spread:
    """How one measure's absolute row contributions spread over one group."""

    total: float | None  # T, the sum of |x| over the group's non-NULL values; None: unknown
    largest: float  # x1
    second: float | None = None  # x2 (0 with fewer than two values); None: not computed


@dataclass(frozen=True)
class CellFacts:
    """What a holder knows of one group before it publishes anything about it.

    ``spreads`` holds per measure a :class:`Spread` or several (see
    :func:`measure_spreads`), None for a count-only one; the dominance rule
    needs every one to pass.
    """

    rows: int
    spreads: tuple[Spread | tuple[Spread, ...] | None, ...]


@dataclass(frozen=True)
class SuppressionRules:
    """The thresholds of one table's policy for one plan.

    ``measure_p``, when given, holds the p of each plan measure (a column's
    policy may raise it for the measures that read the column); otherwise
    ``p`` applies to every measure.
    """

    k: int
    p: float = DEFAULT_P
    margin: int = MOMENT_MARGIN
    measure_p: tuple[float, ...] = ()

    def p_of(self, measure: int) -> float:
        return self.measure_p[measure] if self.measure_p else self.p


def measure_spreads(
    stats: Mapping[str, float | None], count: int, total: float
) -> tuple[Spread, ...]:
    """The contributions the p% rule judges for one measure in one group.

    The absolute values ``|x|``, and the distances ``x - min`` and ``max - x``:
    an analyst knows ``COUNT(*)``, so ``SUM(spike + c)`` minus ``c`` times the
    count is the spike, and a constant offset must not hide it.

    Args:
        stats: :data:`SPREAD_STATS` the engine computed (NULL, for no values, is 0).
        count: the measure's non-NULL values in the group.
        total: the measure's sum over them.
    """

    def get(name: str) -> float:
        return float(stats.get(name) or 0.0)

    low, high = get("min"), get("max")
    width = high - low
    if "abs_sum" in stats:
        absolute = Spread(get("abs_sum"), get("abs_max"), get("abs_second"))
        # One value (or none) has no second largest or smallest: 0 beside it.
        above: float | None = get("second_max") - low if count > 1 else 0.0
        below: float | None = high - get("second_min") if count > 1 else 0.0
    else:
        above = below = None
        if low >= 0:
            absolute = Spread(total, high)
        elif high <= 0:
            absolute = Spread(-total, -low)
        else:
            absolute = Spread(None, max(high, -low))  # both signs: the engine must say
    # Rounding must not make a sum of distances smaller than its largest term.
    return (
        absolute,
        Spread(max(total - count * low, width), width, above),
        Spread(max(count * high - total, width), width, below),
    )


def published_quantities(plan: AggregatePlan) -> int:
    """Quantities an answer publishes per group besides its row count."""
    return sum(1 + m.want_sum + m.want_square for m in plan.measures)


def min_rows(plan: AggregatePlan, rules: SuppressionRules) -> int:
    """The fewest rows a group needs at a holder to be published (``k`` and ``moments``)."""
    return max(rules.k, rules.margin * published_quantities(plan))


def dominance(spread: Spread, p: float) -> bool | None:
    """The p% rule: whether the rest of the group hides the largest value by less than p%.

    Without the total (None) nothing is known; without the second largest
    value (``spread.second`` None) the answer is
    often already known, since ``0 <= x2 <= x1`` and floating-point
    subtraction is monotone: None means only x2 can decide. Ordinary groups
    (no value near half the total) never need it, which saves the engine a
    top-2 aggregate (see :func:`needs_second_largest`).
    """
    if spread.total is None:
        return None
    bound = (p / 100.0) * spread.largest
    rest = spread.total - spread.largest
    if spread.second is not None:
        return rest - spread.second < bound
    if rest < bound:
        return True
    if rest - spread.largest >= bound:
        return False
    return None


def dominated(spread: Spread, p: float) -> bool:
    """:func:`dominance` for a spread whose second largest value is known."""
    if spread.second is None:
        raise ValueError("the p% rule needs the second largest contribution here")
    return bool(dominance(spread, p))


def needs_second_largest(cells: Mapping[int, CellFacts], rules: SuppressionRules) -> bool:
    """Whether some group the k rule lets through needs x2 to settle the p% rule."""
    return any(
        cell.rows >= rules.k
        and any(dominance(s, rules.p_of(i)) is None for i, s in _each_spread(cell))
        for cell in cells.values()
    )


def failing_groups(
    cells: Mapping[int, CellFacts], plan: AggregatePlan, rules: SuppressionRules
) -> dict[int, str]:
    """The groups (by slot-layout index) a holder must suppress, each with its first reason.

    Groups with no rows are absent or skipped: an empty group discloses
    nothing and is published as empty everywhere.
    """
    fewest = min_rows(plan, rules)
    out: dict[int, str] = {}
    for index, cell in cells.items():
        if cell.rows <= 0:
            continue
        if cell.rows < rules.k:
            out[index] = "k"
        elif any(_dominated(s, rules.p_of(i)) for i, s in _each_spread(cell)):
            out[index] = "dominance"
        elif cell.rows < fewest:
            out[index] = "moments"
    return out


def _each_spread(cell: CellFacts) -> Iterator[tuple[int, Spread]]:
    for measure, spreads in enumerate(cell.spreads):
        if spreads is None:
            continue
        for spread in spreads if isinstance(spreads, tuple) else (spreads,):
            yield measure, spread


def _dominated(spread: Spread, p: float) -> bool:
    verdict = dominance(spread, p)
    if verdict is None:
        raise ValueError(
            "the p% rule needs the second largest contribution (see needs_second_largest)"
        )
    return verdict


def first_reasons(
    suppressed: Sequence[int], reported: Sequence[Mapping[int, str]]
) -> tuple[str, ...]:
    """One reason per suppressed group from every holder's reports: the earliest rule
    in :data:`REASONS` that any holder gave ("" when none said why)."""
    rank = {reason: i for i, reason in enumerate(REASONS)}
    out = []
    for group in suppressed:
        given = [r[group] for r in reported if r.get(group) in rank]
        out.append(min(given, key=rank.__getitem__) if given else "")
    return tuple(out)
