"""A holder's answer to an aggregate plan: local SQL, suppression, masks, encryption.

This is everything a holder does with its data for the aggregate operator,
kept apart from the gRPC servicer so that it can be tested and benchmarked
without a server. It runs in two rounds (see docs/architecture.md):
:func:`prepare_aggregate` reads the data once and names the groups failing
this holder's suppression rules; :func:`answer_masked` zeroes the union of
every participant's failing groups, adds this holder's pairwise masks and
encrypts. Only the failing group indices and masked ciphertexts leave.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import tenseal as ts

from unseen.engine.crypto import bfv
from unseen.engine.data.pushdown import aggregate_query
from unseen.engine.data.source import TableSource
from unseen.engine.errors import EncodingOverflowError, PlanError, PolicyError, SourceError
from unseen.engine.privacy.dp_accounting import calibrate
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.dp_quantities import check_dp_plan
from unseen.engine.privacy.masks import apply_masks
from unseen.engine.privacy.noise import add_noise
from unseen.engine.privacy.suppression import (
    SPREAD_STATS,
    CellFacts,
    Spread,
    SuppressionRules,
    failing_groups,
    measure_spreads,
    needs_second_largest,
)
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.expr import column_names
from unseen.engine.query.layout import GroupMoments, MeasureMoments, layout_for, pack
from unseen.engine.query.plan import (
    DEFAULT_LIMITS,
    AggregatePlan,
    Encoding,
    Limits,
    Measure,
    check_plan,
    group_key_type,
)
from unseen.engine.query.types import normalize_value
from unseen.engine.transport.cancellation import checkpoint

__all__ = [
    "LocalAnswer",
    "LocalGroups",
    "PreparedAnswer",
    "answer_masked",
    "compute_groups",
    "compute_moments",
    "mask_only",
    "prepare_aggregate",
    "suppression_rules",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalAnswer:
    ciphertexts: tuple[bytes, ...]
    suppressed: tuple[int, ...]


@dataclass(frozen=True)
class PreparedAnswer:
    """Round 1's result, kept at the holder until round 2: never sent as is."""

    moments: dict[int, GroupMoments]
    failing: frozenset[int]
    # dp mode: the table's policy; round 2 adds this holder's noise share.
    dp: DpPolicy | None = None
    # Per failing group, the first rule it fails ("k", "dominance", "moments").
    reasons: dict[int, str] = field(default_factory=dict)


def suppression_rules(table: TableInfo, plan: AggregatePlan | None = None) -> SuppressionRules:
    """The suppression thresholds of a served table's policy, for ``plan``'s measures."""
    measure_p = tuple(_measure_p(table, m) for m in plan.measures) if plan is not None else ()
    return SuppressionRules(k=table.min_group_size, p=table.dominance_p, measure_p=measure_p)


def _measure_p(table: TableInfo, measure: Measure) -> float:
    # The largest p of the table's and of the columns the measure reads.
    ps = [table.dominance_p]
    for name in column_names(measure.expr):
        column = table.column(name)
        if column is not None and column.dominance_p is not None:
            ps.append(column.dominance_p)
    return max(ps)


def _group_index(plan: AggregatePlan) -> list[dict[Any, int]]:
    return [{_key(v): i for i, v in enumerate(g.domain)} for g in plan.groups]


def _key(value: Any) -> Any:
    # Domain values and engine values must meet in one dict: tag dates apart
    # from timestamps (datetime subclasses date) and booleans apart from ints.
    return (type(value).__name__ if isinstance(value, (bool,)) or value is None else "", value)


class _NotFinite(Exception):
    """A measure of the plan met inf or NaN (in a row, or its sum overflowed)."""

    def __init__(self, measure: int):
        super().__init__(measure)
        self.measure = measure


def _finite(value: Any, measure: int) -> Any:
    # inf and NaN (data holding them, x / 0, overflow) have no exact encoding.
    # Which one it was is data (a measure can be built to give NaN on one side
    # of a threshold and inf on the other), so only the measure's position leaves.
    if isinstance(value, float) and not math.isfinite(value):
        raise _NotFinite(measure)
    return value


def _not_finite_error(measures: set[int]) -> EncodingOverflowError:
    positions = ", ".join(str(m + 1) for m in sorted(measures))
    which = f"measure {positions} is" if len(measures) == 1 else f"measures {positions} are"
    return EncodingOverflowError(
        f"{which} not finite for some row (an infinite or NaN value, a division by zero "
        "or an overflowing sum); filter such rows out"
    )


def _exact(value: Any, encoding: Encoding, scale: int, table: str, measure: int) -> Fraction:
    total = Fraction(_finite(value, measure))
    if encoding is Encoding.INTEGER and total.denominator != 1:
        raise SourceError(f"table {table}: an integer column holds a non-integer value")
    if encoding is Encoding.DECIMAL and (total * 10**scale).denominator != 1:
        raise SourceError(f"table {table}: a decimal column holds more than {scale} decimals")
    return total


@dataclass(frozen=True)
class LocalGroups:
    """A holder's groups of one plan: exact moments, and the facts suppression decides on."""

    moments: dict[int, GroupMoments]
    cells: dict[int, CellFacts]


def compute_moments(
    plan: AggregatePlan, source: TableSource, table: TableInfo
) -> dict[int, GroupMoments]:
    """Run the local query and return exact moments per group index."""
    return _run_groups(plan, source, table, second_largest=False).moments


def compute_groups(plan: AggregatePlan, source: TableSource, table: TableInfo) -> LocalGroups:
    """Run the local query: exact moments and suppression facts per group index.

    The first run asks the engine only for each magnitude measure's min and
    max (with the exact sum, enough for the p% rule on most groups); the
    absolute and top-2 statistics cost about as much as the rest of the
    query, so the query runs again with them only when a group that passes
    k needs them (values of both signs, or one near half the total).

    Raises :class:`EncodingOverflowError` naming only the positions of the
    measures that met a non-finite value, in any group.
    """
    groups = _run_groups(plan, source, table, second_largest=False)
    if needs_second_largest(groups.cells, suppression_rules(table, plan)):
        groups = _run_groups(plan, source, table, second_largest=True)
    return groups


def _run_groups(
    plan: AggregatePlan, source: TableSource, table: TableInfo, second_largest: bool
) -> LocalGroups:
    query = aggregate_query(plan, table, source.dialect, source.sql_name, second_largest)
    rows = source.run(query.sql, query.params)
    index = _group_index(plan)
    radix = [len(g.domain) for g in plan.groups]
    kinds = []
    for group in plan.groups:
        kinds.append(group_key_type(group, table))  # check_plan ran first
    out: dict[int, GroupMoments] = {}
    cells: dict[int, CellFacts] = {}
    not_finite: set[int] = set()
    for row in rows:
        position = 0
        outside = False
        for column, (lookup, size) in enumerate(zip(index, radix, strict=True)):
            slot = lookup.get(_key(normalize_value(row[column], kinds[column])))
            if slot is None and table.dp is not None:
                outside = True  # dp mode: rows outside the public domain are dropped, unreported
                break
            if slot is None:
                raise PlanError(
                    f"holder data has {plan.groups[column].column} values outside the plan's "
                    "group domain; restrict the column with WHERE ... IN (...) or refresh the "
                    "catalog"
                )
            position = position * size + slot
        if outside:
            continue
        rows_in_group = int(row[query.group_columns])
        measures = []
        spreads: list[tuple[Spread, ...] | None] = []
        for number, (measure, (count_at, sum_at, m2_at), spread_at) in enumerate(
            zip(plan.measures, query.measure_columns, query.spread_columns, strict=True)
        ):
            try:
                moments = _measure(row, measure, count_at, sum_at, m2_at, table, number)
                measures.append(moments)
                spreads.append(
                    None if spread_at is None else _spread(row, spread_at, moments, number)
                )
            except _NotFinite as exc:
                not_finite.add(exc.measure)
        if rows_in_group and not not_finite:
            out[position] = GroupMoments(rows_in_group, tuple(measures))
            cells[position] = CellFacts(rows_in_group, tuple(spreads))
    if not_finite:
        raise _not_finite_error(not_finite)
    return LocalGroups(out, cells)


def _measure(
    row: tuple[Any, ...],
    measure: Measure,
    count_at: int,
    sum_at: int | None,
    m2_at: int | None,
    table: TableInfo,
    number: int,
) -> MeasureMoments:
    count = int(row[count_at])
    total = square = None
    if sum_at is not None:
        raw = row[sum_at]
        total = (
            Fraction(0)
            if raw is None
            else _exact(raw, measure.encoding, measure.decimal_scale, table.name, number)
        )
    if m2_at is not None:
        var_pop = row[m2_at]
        square = Fraction(0) if var_pop is None else Fraction(_finite(var_pop, number)) * count
    return MeasureMoments(count, total, square)


def _spread(
    row: tuple[Any, ...], at: tuple[int | None, ...], moments: MeasureMoments, number: int
) -> tuple[Spread, ...]:
    stats = {
        name: _finite(float(row[i] or 0.0), number)
        for name, i in zip(SPREAD_STATS, at, strict=True)
        if i is not None
    }
    return measure_spreads(stats, moments.count, float(moments.total or 0))


def prepare_aggregate(
    plan: AggregatePlan,
    source: TableSource,
    table: TableInfo,
    ctx: ts.Context,
    limits: Limits = DEFAULT_LIMITS,
) -> PreparedAnswer:
    """Round 1: validate, read the data once, and find the groups failing suppression."""
    check_plan(plan, table, limits)
    if plan.codec.slots != bfv.slot_count(ctx):
        raise PlanError("the plan's slot count does not match the registered key")
    layout_for(plan, limits)  # refuse an oversized answer before reading
    if table.dp is not None:
        check_dp_plan(plan, table.dp)
        # The noisy counts replace k: suppression would be a data-dependent
        # disclosure outside the privacy accounting (docs/differential-privacy.md).
        return PreparedAnswer(compute_moments(plan, source, table), frozenset(), table.dp)
    groups = compute_groups(plan, source, table)
    failing = failing_groups(groups.cells, plan, suppression_rules(table, plan))
    return PreparedAnswer(groups.moments, frozenset(failing), reasons=failing)


def mask_only(
    plan: AggregatePlan, ctx: ts.Context, limits: Limits = DEFAULT_LIMITS
) -> PreparedAnswer:
    """Round 1 at a holder that does not serve the table: no data, masks only."""
    if plan.codec.slots != bfv.slot_count(ctx):
        raise PlanError("the plan's slot count does not match the registered key")
    layout_for(plan, limits)  # the answer it will mask is bounded like any other
    return PreparedAnswer({}, frozenset())


def answer_masked(
    plan: AggregatePlan,
    prepared: PreparedAnswer,
    suppressed: frozenset[int],
    masks: Callable[[int], np.ndarray],
    ctx: ts.Context,
    limits: Limits = DEFAULT_LIMITS,
    encrypt: Callable[[list[np.ndarray]], list[bytes]] | None = None,
) -> LocalAnswer:
    """Round 2: zero every suppressed group, add the pairwise masks, encrypt.

    ``suppressed`` is the union of all participants' failing groups; it must
    cover this holder's own. ``masks(length)`` is this holder's share of the
    zero-sum masks for ``length`` slots. ``encrypt`` turns slot vectors into
    serialised ciphertexts; the holder passes its worker pool's, so
    concurrent queries encrypt in parallel (TenSEAL holds the GIL).
    """
    missing = prepared.failing - suppressed
    if missing:
        raise PolicyError(
            f"{len(missing)} group(s) failing this holder's suppression rules are not "
            "in the suppressed set it was sent"
        )
    layout = layout_for(plan, limits)
    published = {i: m for i, m in prepared.moments.items() if i not in suppressed}
    vectors = pack(plan, layout, published)
    if prepared.dp is not None:
        noise = calibrate(plan, prepared.dp)
        vectors = add_noise(plan, layout, vectors, noise, prepared.dp.honest_holders)
    masked = apply_masks(vectors, masks(layout.ciphertexts * plan.codec.slots))
    checkpoint()  # a caller gone during the query gets no encryption either
    ciphertexts = tuple(bfv.encrypt_all(ctx, masked) if encrypt is None else encrypt(masked))
    log.info(
        "aggregate on %s: %d groups, %d suppressed, %d ciphertexts",
        plan.table,
        layout.groups,
        len(suppressed),
        len(ciphertexts),
    )
    return LocalAnswer(ciphertexts, tuple(sorted(suppressed)))
