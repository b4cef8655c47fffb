"""Turn a validated plan into the holder's local SQL, as a sqlglot tree.

Identifiers come from the plan only after ``check_plan`` matched them against
the catalog, and are emitted quoted by sqlglot; literals never enter the SQL
text at all: each becomes a named parameter ``$pN`` / ``:pN`` bound by the
engine's driver, wrapped in a CAST so its type does not depend on inference.
That is the whole of unseen's defence against SQL injection, and the
injection tests in tests/ attack exactly this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlglot import exp

from engine.catalog import TableInfo
from engine.errors import PlanError
from engine.expr import (
    Between,
    Binary,
    BinaryOp,
    Column,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    LiteralValue,
    Unary,
    UnaryOp,
    literal_kind,
)
from engine.plan import AggregatePlan, Encoding

__all__ = ["SQLITE_VAR_POP", "LocalQuery", "build_aggregate_query"]

# SQLite has no VAR_POP; the SQLite source registers this aggregate (Welford).
SQLITE_VAR_POP = "unseen_var_pop"

_BINARY: dict[BinaryOp, Any] = {
    BinaryOp.EQ: exp.EQ,
    BinaryOp.NE: exp.NEQ,
    BinaryOp.LT: exp.LT,
    BinaryOp.LE: exp.LTE,
    BinaryOp.GT: exp.GT,
    BinaryOp.GE: exp.GTE,
    BinaryOp.AND: exp.And,
    BinaryOp.OR: exp.Or,
    BinaryOp.ADD: exp.Add,
    BinaryOp.SUB: exp.Sub,
    BinaryOp.MUL: exp.Mul,
}


@dataclass
class LocalQuery:
    """SQL text for one engine plus its bound parameters, and how to read rows."""

    sql: str
    params: dict[str, Any]
    group_columns: int
    measure_columns: tuple[tuple[int, int | None, int | None], ...]  # count, sum, m2 positions


@dataclass
class _Builder:
    table: TableInfo
    dialect: str
    params: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> exp.Column:
        col = self.table.column(name)
        if col is None:  # check_plan ran first; this is a second line of defence
            raise PlanError(f"table {self.table.name} has no column {name}")
        return exp.column(col.name, quoted=True)

    def literal(self, value: LiteralValue) -> exp.Expression:
        if value is None:
            return exp.Null()
        name = f"p{len(self.params) + 1}"
        kind = literal_kind(value)
        sqlite = self.dialect == "sqlite"
        if kind == "decimal":
            assert isinstance(value, Decimal)
            exponent = value.as_tuple().exponent
            scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            precision = max(len(value.as_tuple().digits), scale, 1)
            if sqlite or precision > 38:
                self.params[name] = float(value)
                sql_type = "DOUBLE"
            else:
                self.params[name] = value
                sql_type = f"DECIMAL({precision}, {scale})"
        elif kind in ("date", "timestamp") and sqlite:
            # SQLite keeps dates as ISO text; compare them as text.
            if isinstance(value, dt.datetime):
                self.params[name] = value.isoformat(sep=" ")
            else:
                assert isinstance(value, dt.date)
                self.params[name] = value.isoformat()
            sql_type = "VARCHAR"
        elif kind == "boolean" and sqlite:
            self.params[name] = int(bool(value))
            sql_type = "BIGINT"
        else:
            self.params[name] = value
            sql_type = {
                "int": "BIGINT",
                "float": "DOUBLE",
                "text": "VARCHAR",
                "boolean": "BOOLEAN",
                "date": "DATE",
                "timestamp": "TIMESTAMP",
            }[kind]
        return exp.cast(exp.Placeholder(this=name), exp.DataType.build(sql_type))

    def expr(self, node: Expr) -> exp.Expression:
        if isinstance(node, Column):
            return self.column(node.name)
        if isinstance(node, Literal):
            return self.literal(node.value)
        if isinstance(node, Binary):
            left: exp.Expression = self.expr(node.left)
            right = self.expr(node.right)
            if node.op is BinaryOp.DIV:
                # Float division in every engine, as DuckDB's "/" does.
                left = exp.cast(left, exp.DataType.build("DOUBLE"))
                return exp.Div(this=exp.paren(left), expression=exp.paren(right))
            built: exp.Expression = _BINARY[node.op](
                this=exp.paren(left), expression=exp.paren(right)
            )
            return built
        if isinstance(node, Unary):
            inner = exp.paren(self.expr(node.operand))
            return exp.Not(this=inner) if node.op is UnaryOp.NOT else exp.Neg(this=inner)
        if isinstance(node, Between):
            between = exp.Between(
                this=exp.paren(self.expr(node.operand)),
                low=self.expr(node.low),
                high=self.expr(node.high),
            )
            return exp.Not(this=exp.paren(between)) if node.negated else between
        if isinstance(node, InList):
            operand = self.expr(node.operand)
            values = [self.literal(v) for v in node.values]
            test: exp.Expression
            test = exp.In(this=exp.paren(operand), expressions=values) if values else exp.false()
            return exp.Not(this=exp.paren(test)) if node.negated else test
        if isinstance(node, Like):
            cls = exp.ILike if node.case_insensitive else exp.Like
            like = cls(
                this=exp.paren(self.expr(node.operand)), expression=self.literal(node.pattern)
            )
            return exp.Not(this=exp.paren(like)) if node.negated else like
        if isinstance(node, IsNull):
            test = exp.Is(this=exp.paren(self.expr(node.operand)), expression=exp.Null())
            return exp.Not(this=exp.paren(test)) if node.negated else test
        raise PlanError(f"unknown expression node {type(node).__name__}")


def build_aggregate_query(
    plan: AggregatePlan, table: TableInfo, dialect: str, source_table: str | None = None
) -> LocalQuery:
    """The local GROUP BY query computing rows, counts, sums and centred moments."""
    builder = _Builder(table, dialect)
    selects: list[exp.Expression] = [builder.column(g.column) for g in plan.groups]
    selects.append(exp.Count(this=exp.Star()))
    positions = []
    for measure in plan.measures:
        value = builder.expr(measure.expr)
        count_at = len(selects)
        selects.append(exp.Count(this=exp.paren(value.copy())))
        sum_at = m2_at = None
        if measure.want_sum or measure.want_square:
            summed = value.copy()
            if measure.encoding is Encoding.FLOAT:
                summed = exp.cast(exp.paren(summed), exp.DataType.build("DOUBLE"))
            sum_at = len(selects)
            selects.append(exp.Sum(this=exp.paren(summed)))
        if measure.want_square:
            as_double = exp.cast(exp.paren(value.copy()), exp.DataType.build("DOUBLE"))
            m2_at = len(selects)
            if dialect == "sqlite":
                selects.append(exp.Anonymous(this=SQLITE_VAR_POP, expressions=[as_double]))
            else:
                selects.append(exp.VariancePop(this=as_double))
        positions.append((count_at, sum_at, m2_at))
    query = exp.select(*selects).from_(exp.table_(source_table or table.name, quoted=True))
    if plan.filter is not None:
        query = query.where(builder.expr(plan.filter))
    if plan.groups:
        query = query.group_by(*[builder.column(g.column) for g in plan.groups])
    return LocalQuery(
        sql=query.sql(dialect=dialect),
        params=builder.params,
        group_columns=len(plan.groups),
        measure_columns=tuple(positions),
    )
