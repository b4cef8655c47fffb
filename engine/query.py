"""An analyst's compiled query: the plan that travels, and what stays home.

The SQL front end splits a query in two. The :class:`~engine.plan.AggregatePlan`
goes to the federation; everything computed *after* decryption stays with
the analyst: which aggregate functions to finish from the moments
(:class:`AggCall`), the output expressions over aggregates and group values,
``HAVING``, ``ORDER BY`` and ``LIMIT``. Output expressions are small
immutable nodes of their own (not row-level plan nodes) because they range
over finished aggregates, not table columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.expr import LiteralValue
from engine.plan import AggregatePlan

__all__ = [
    "AGG_FUNCTIONS",
    "AggCall",
    "AggRef",
    "CompiledQuery",
    "Const",
    "GroupRef",
    "OrderKey",
    "OutBetween",
    "OutBinary",
    "OutExpr",
    "OutFunc",
    "OutIn",
    "OutIsNull",
    "OutUnary",
    "OutputRef",
]

# Aggregates additive HE can finish from (count, sum, centred second moment).
AGG_FUNCTIONS = (
    "count_star",
    "count",
    "sum",
    "avg",
    "var_samp",
    "var_pop",
    "stddev_samp",
    "stddev_pop",
)


@dataclass(frozen=True)
class AggCall:
    """One aggregate to finish; ``measure`` indexes the plan's measures (None for COUNT(*))."""

    function: str
    measure: int | None


@dataclass(frozen=True)
class AggRef:
    index: int  # into CompiledQuery.aggregates


@dataclass(frozen=True)
class GroupRef:
    index: int  # into the plan's groups


@dataclass(frozen=True)
class OutputRef:
    index: int  # into CompiledQuery.outputs (ORDER BY an alias or position)


@dataclass(frozen=True)
class Const:
    value: LiteralValue


@dataclass(frozen=True)
class OutBinary:
    op: str  # + - * / = <> < <= > >= AND OR
    left: OutExpr
    right: OutExpr


@dataclass(frozen=True)
class OutUnary:
    op: str  # NOT, -
    operand: OutExpr


@dataclass(frozen=True)
class OutIsNull:
    operand: OutExpr
    negated: bool = False


@dataclass(frozen=True)
class OutBetween:
    operand: OutExpr
    low: OutExpr
    high: OutExpr
    negated: bool = False


@dataclass(frozen=True)
class OutIn:
    operand: OutExpr
    values: tuple[OutExpr, ...]
    negated: bool = False


@dataclass(frozen=True)
class OutFunc:
    name: str  # round, abs, sqrt, coalesce
    args: tuple[OutExpr, ...]


OutExpr = (
    AggRef
    | GroupRef
    | OutputRef
    | Const
    | OutBinary
    | OutUnary
    | OutIsNull
    | OutBetween
    | OutIn
    | OutFunc
)


@dataclass(frozen=True)
class OrderKey:
    expr: OutExpr
    descending: bool = False
    nulls_first: bool = False


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    plan: AggregatePlan
    aggregates: tuple[AggCall, ...]
    columns: tuple[str, ...]
    outputs: tuple[OutExpr, ...]
    having: OutExpr | None
    order: tuple[OrderKey, ...]
    limit: int | None
    offset: int
    grouped: bool  # GROUP BY present: empty groups vanish; else one row always
