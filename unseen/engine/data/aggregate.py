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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.data.pushdown import build_aggregate_query
from unseen.engine.data.source import TableSource
from unseen.engine.errors import EncodingOverflowError, PlanError, PolicyError, SourceError
from unseen.engine.privacy.masks import apply_masks
from unseen.engine.privacy.suppression import failing_groups
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.layout import GroupMoments, MeasureMoments, layout_for, pack
from unseen.engine.query.plan import (
    DEFAULT_LIMITS,
    AggregatePlan,
    Encoding,
    Limits,
    check_plan,
    group_key_type,
)
from unseen.engine.query.types import normalize_value
from unseen.engine.transport.cancellation import checkpoint

__all__ = ["LocalAnswer", "PreparedAnswer", "answer_masked", "mask_only", "prepare_aggregate"]

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


def _group_index(plan: AggregatePlan) -> list[dict[Any, int]]:
    return [{_key(v): i for i, v in enumerate(g.domain)} for g in plan.groups]


def _key(value: Any) -> Any:
    # Domain values and engine values must meet in one dict: tag dates apart
    # from timestamps (datetime subclasses date) and booleans apart from ints.
    return (type(value).__name__ if isinstance(value, (bool,)) or value is None else "", value)


def _finite(value: Any, what: str, table: str) -> Any:
    # inf and NaN (data holding them, x / 0, overflow) have no exact encoding.
    if isinstance(value, float) and not math.isfinite(value):
        raise EncodingOverflowError(
            f"table {table}: the {what} is {value}, which cannot be encoded; filter out "
            "infinite values or divisions by zero"
        )
    return value


def _exact(value: Any, encoding: Encoding, scale: int, table: str) -> Fraction:
    total = Fraction(_finite(value, "sum", table))
    if encoding is Encoding.INTEGER and total.denominator != 1:
        raise SourceError(f"table {table}: an integer column holds a non-integer value")
    if encoding is Encoding.DECIMAL and (total * 10**scale).denominator != 1:
        raise SourceError(f"table {table}: a decimal column holds more than {scale} decimals")
    return total


def compute_moments(
    plan: AggregatePlan, source: TableSource, table: TableInfo
) -> dict[int, GroupMoments]:
    """Run the local query and return exact moments per group index."""
    query = build_aggregate_query(plan, table, source.dialect, source.sql_name)
    rows = source.run(query.sql, query.params)
    index = _group_index(plan)
    radix = [len(g.domain) for g in plan.groups]
    kinds = []
    for group in plan.groups:
        kinds.append(group_key_type(group, table))  # check_plan ran first
    out: dict[int, GroupMoments] = {}
    for row in rows:
        position = 0
        for column, (lookup, size) in enumerate(zip(index, radix, strict=True)):
            slot = lookup.get(_key(normalize_value(row[column], kinds[column])))
            if slot is None:
                raise PlanError(
                    f"holder data has {plan.groups[column].column} values outside the plan's "
                    "group domain; restrict the column with WHERE ... IN (...) or refresh the "
                    "catalog"
                )
            position = position * size + slot
        rows_in_group = int(row[query.group_columns])
        measures = []
        for measure, (count_at, sum_at, m2_at) in zip(
            plan.measures, query.measure_columns, strict=True
        ):
            count = int(row[count_at])
            total = square = None
            if sum_at is not None:
                raw = row[sum_at]
                total = (
                    Fraction(0)
                    if raw is None
                    else _exact(raw, measure.encoding, measure.decimal_scale, table.name)
                )
            if m2_at is not None:
                var_pop = row[m2_at]
                square = (
                    Fraction(0)
                    if var_pop is None
                    else Fraction(_finite(var_pop, "variance", table.name)) * count
                )
            measures.append(MeasureMoments(count, total, square))
        if rows_in_group:
            out[position] = GroupMoments(rows_in_group, tuple(measures))
    return out


def prepare_aggregate(
    plan: AggregatePlan,
    source: TableSource,
    table: TableInfo,
    ctx: ts.Context,
    limits: Limits = DEFAULT_LIMITS,
) -> PreparedAnswer:
    """Round 1: validate, read the data once, and find the groups failing suppression."""
    check_plan(plan, table, limits)
    if plan.codec.slots != ckks.slot_count(ctx):
        raise PlanError("the plan's slot count does not match the registered key")
    layout_for(plan, limits)  # refuse an oversized answer before reading
    moments = compute_moments(plan, source, table)
    return PreparedAnswer(moments, failing_groups(moments, table))


def mask_only(
    plan: AggregatePlan, ctx: ts.Context, limits: Limits = DEFAULT_LIMITS
) -> PreparedAnswer:
    """Round 1 at a holder that does not serve the table: no data, masks only."""
    if plan.codec.slots != ckks.slot_count(ctx):
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
    masked = apply_masks(vectors, masks(layout.ciphertexts * plan.codec.slots))
    checkpoint()  # a caller gone during the query gets no encryption either
    ciphertexts = tuple(ckks.encrypt_all(ctx, masked) if encrypt is None else encrypt(masked))
    log.info(
        "aggregate on %s: %d groups, %d suppressed, %d ciphertexts",
        plan.table,
        layout.groups,
        len(suppressed),
        len(ciphertexts),
    )
    return LocalAnswer(ciphertexts, tuple(sorted(suppressed)))
