"""An analyst's compiled query: the plan that travels, and what stays home.

The SQL front end splits a query in two. The :class:`~unseen.engine.query.plan.AggregatePlan`
goes to the federation; everything computed *after* decryption stays with
the analyst: which aggregate functions to finish from the moments
(:class:`AggCall`), the output expressions over aggregates and group values,
``HAVING``, ``ORDER BY`` and ``LIMIT``. Output expressions are nodes of the one
expression tree (``unseen.engine.query.expr``) whose leaves are finished aggregates
(:class:`~unseen.engine.query.expr.AggRef`) and group values
(:class:`~unseen.engine.query.expr.GroupRef`)
rather than table columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from unseen.engine.query.expr import Expr
from unseen.engine.query.plan import AggregatePlan

__all__ = [
    "AGG_FUNCTIONS",
    "AggCall",
    "CompiledQuery",
    "OrderKey",
    "OutExpr",
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


# An output expression: the one tree, over AggRef/GroupRef/OutputRef leaves.
OutExpr = Expr


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
