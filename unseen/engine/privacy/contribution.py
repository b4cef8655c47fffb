"""The pushdown stage of dp mode: bounded contributions and clamped values, in the holder's SQL.

For a table served with differential privacy (:mod:`unseen.engine.privacy.dp_policy`) the
aggregate query reads not the table but this subquery::

    SELECT *, ROW_NUMBER() OVER (PARTITION BY <unit> ORDER BY __unseen_draw) AS __unseen_rank
    FROM (SELECT <columns, bounded ones clamped>, RANDOM() AS __unseen_draw
          FROM <table> WHERE <the plan's filter>)

and keeps ``__unseen_rank <= max_rows``: each privacy unit contributes at
most ``max_rows`` of its filtered rows, chosen at random (not by value, which
would be data-dependent in a way the sensitivity does not cover), and every
bounded column is clamped to its public bounds with a CASE (NULL stays NULL),
so a row moves a sum by at most ``max(|lower|, |upper|)``. The filter runs
inside, so the bound applies to the rows the query is about. Literals are
bound parameters, as everywhere in :mod:`unseen.engine.data.pushdown`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

from sqlglot import exp

from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.expr import LiteralValue

__all__ = ["RANK_COLUMN", "bounded_rows"]

RANK_COLUMN = "__unseen_rank"
DRAW_COLUMN = "__unseen_draw"


def _literal(value: Fraction) -> LiteralValue:
    if value.denominator == 1:
        return int(value)
    return Decimal(value.numerator) / Decimal(value.denominator)


def _named(value: exp.Expression, name: str) -> exp.Expression:
    return exp.Alias(this=value, alias=exp.to_identifier(name, quoted=True))


def _clamped(column: exp.Expression, low: exp.Expression, high: exp.Expression) -> exp.Expression:
    return exp.Case(
        ifs=[
            exp.If(this=exp.LT(this=column.copy(), expression=low), true=low.copy()),
            exp.If(this=exp.GT(this=column.copy(), expression=high), true=high.copy()),
        ],
        default=column.copy(),
    )


def bounded_rows(
    table: TableInfo,
    policy: DpPolicy,
    source_table: str,
    where: exp.Expression | None,
    literal: Callable[[LiteralValue], exp.Expression],
) -> tuple[exp.Expression, exp.Expression]:
    """The FROM subquery and the outer WHERE that bound each unit's contribution.

    ``where`` is the plan's filter already translated; ``literal`` binds a
    value as a parameter (the pushdown builder's).
    """
    selects: list[exp.Expression] = []
    for col in table.columns:
        ref = exp.column(col.name, quoted=True)
        bounds = policy.bound(col.name)
        if bounds is None:
            selects.append(ref)
            continue
        low, high = literal(_literal(bounds[0])), literal(_literal(bounds[1]))
        selects.append(_named(_clamped(ref, low, high), col.name))
    unit = table.column(policy.unit)
    assert unit is not None  # the config checked the unit column exists
    # DuckDB refuses a volatile window ORDER BY: draw the random key one level down.
    selects.append(_named(exp.Rand(), DRAW_COLUMN))
    drawn = exp.select(*selects).from_(exp.table_(source_table, quoted=True))
    if where is not None:
        drawn = drawn.where(where)
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column(unit.name, quoted=True)],
        order=exp.Order(expressions=[exp.Ordered(this=exp.column(DRAW_COLUMN, quoted=True))]),
    )
    inner = exp.select(exp.Star(), _named(rank, RANK_COLUMN)).from_(
        exp.Subquery(this=drawn, alias=exp.TableAlias(this=exp.to_identifier("unseen_draws")))
    )
    keep = exp.LTE(this=exp.column(RANK_COLUMN, quoted=True), expression=literal(policy.max_rows))
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("unseen_dp"))), keep
