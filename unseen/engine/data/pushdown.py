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
import functools
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlglot import exp

from unseen.engine.data.spellings import WAREHOUSE_DIALECTS, cast_to_integer, date_trunc, extract
from unseen.engine.errors import PlanError, UnseenError
from unseen.engine.privacy.contribution import bounded_rows
from unseen.engine.privacy.suppression import SPREAD_STATS
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.expr import (
    Between,
    Binary,
    BinaryOp,
    Case,
    Cast,
    Column,
    DateTrunc,
    Expr,
    Extract,
    Func,
    InList,
    IsNull,
    Like,
    Literal,
    LiteralValue,
    Unary,
    UnaryOp,
    Visitor,
    literal_kind,
)
from unseen.engine.query.plan import AggregatePlan, Encoding, expr_type
from unseen.engine.query.types import SqlType

__all__ = [
    "SQLITE_SECOND_LARGEST",
    "SQLITE_VAR_POP",
    "LocalQuery",
    "aggregate_query",
    "build_aggregate_query",
]

# SQLite has no VAR_POP; the SQLite source registers this aggregate (Welford).
SQLITE_VAR_POP = "unseen_var_pop"
# Nor a top-n aggregate; the SQLite source registers this one (second largest value).
SQLITE_SECOND_LARGEST = "unseen_second_largest"

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
    # Per measure, the positions of its dominance statistics in
    # unseen.engine.privacy.suppression.SPREAD_STATS order (None where not asked for);
    # None for a count-only measure, and for every measure of a dp table.
    spread_columns: tuple[tuple[int | None, ...] | None, ...] = ()


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
        return _SqlWriter(self).visit(node)

    def kind(self, node: Expr) -> str | None:
        """The type kind of ``node`` over the table (None for a bare NULL)."""
        # check_plan already type-checked the node under its use; either use's
        # checker gives the same type, and one of them admits the node's columns.
        for use in ("aggregate", "filter", "group"):
            try:
                found = expr_type(node, self.table, use)
            except UnseenError:
                continue
            return None if found is None else found.kind
        return None


class _SqlWriter(Visitor[exp.Expression]):
    """One row expression as a sqlglot tree for the builder's dialect."""

    def __init__(self, builder: _Builder):
        self.builder = builder
        self.sqlite = builder.dialect == "sqlite"
        self.warehouse = builder.dialect in WAREHOUSE_DIALECTS

    def unsupported(self, node: Expr) -> exp.Expression:
        raise PlanError(f"{type(node).__name__} cannot run at a holder")

    def visit_Column(self, node: Column) -> exp.Expression:
        return self.builder.column(node.name)

    def visit_Literal(self, node: Literal) -> exp.Expression:
        return self.builder.literal(node.value)

    def visit_Binary(self, node: Binary) -> exp.Expression:
        left: exp.Expression = self.visit(node.left)
        right = self.visit(node.right)
        if node.op is BinaryOp.DIV:
            # Float division in every engine, as DuckDB's "/" does.
            left = exp.cast(left, exp.DataType.build("DOUBLE"))
            return exp.Div(this=exp.paren(left), expression=exp.paren(right))
        built: exp.Expression = _BINARY[node.op](this=exp.paren(left), expression=exp.paren(right))
        return built

    def visit_Unary(self, node: Unary) -> exp.Expression:
        inner = exp.paren(self.visit(node.operand))
        return exp.Not(this=inner) if node.op is UnaryOp.NOT else exp.Neg(this=inner)

    def visit_Between(self, node: Between) -> exp.Expression:
        between = exp.Between(
            this=exp.paren(self.visit(node.operand)),
            low=self.visit(node.low),
            high=self.visit(node.high),
        )
        return exp.Not(this=exp.paren(between)) if node.negated else between

    def visit_InList(self, node: InList) -> exp.Expression:
        operand = self.visit(node.operand)
        values = [self.builder.literal(v) for v in node.values]
        test: exp.Expression
        test = exp.In(this=exp.paren(operand), expressions=values) if values else exp.false()
        return exp.Not(this=exp.paren(test)) if node.negated else test

    def visit_Like(self, node: Like) -> exp.Expression:
        cls = exp.ILike if node.case_insensitive else exp.Like
        like = cls(
            this=exp.paren(self.visit(node.operand)), expression=self.builder.literal(node.pattern)
        )
        return exp.Not(this=exp.paren(like)) if node.negated else like

    def visit_IsNull(self, node: IsNull) -> exp.Expression:
        test = exp.Is(this=exp.paren(self.visit(node.operand)), expression=exp.Null())
        return exp.Not(this=exp.paren(test)) if node.negated else test

    def visit_Case(self, node: Case) -> exp.Expression:
        case = exp.Case()
        for condition, result in node.whens:
            case = case.when(exp.paren(self.visit(condition)), exp.paren(self.visit(result)))
        if node.default is not None:
            case = case.else_(exp.paren(self.visit(node.default)))
        return case

    def visit_Func(self, node: Func) -> exp.Expression:
        args = [self.visit(a) for a in node.args]
        if node.name == "coalesce":
            return exp.Coalesce(this=args[0], expressions=args[1:])
        if node.name == "nullif":
            return exp.Nullif(this=args[0], expression=args[1])
        if node.name == "abs":
            return exp.Abs(this=args[0])
        raise PlanError(f"function {node.name.upper()} cannot run at a holder")

    def visit_Extract(self, node: Extract) -> exp.Expression:
        operand = self.visit(node.operand)
        if self.warehouse:
            return extract(node.part, operand, self.builder.dialect)
        if not self.sqlite:
            return exp.Extract(this=exp.var(node.part.upper()), expression=operand)
        # SQLite keeps dates as ISO text: read the parts with strftime.
        if node.part == "quarter":
            month = _strftime("%m", operand)
            return exp.IntDiv(
                this=exp.paren(exp.Add(this=month, expression=exp.Literal.number(2))),
                expression=exp.Literal.number(3),
            )
        return _strftime(_SQLITE_PARTS[node.part], operand)

    def visit_DateTrunc(self, node: DateTrunc) -> exp.Expression:
        operand = self.visit(node.operand)
        if self.warehouse:
            return date_trunc(node.unit, operand, self.builder.dialect)
        if not self.sqlite:
            return exp.Anonymous(
                this="date_trunc", expressions=[exp.Literal.string(node.unit), operand]
            )
        modifiers = [exp.Literal.string(_SQLITE_TRUNC[node.unit])] if node.unit != "day" else []
        start = exp.Anonymous(this="datetime", expressions=[operand, *modifiers])
        if node.unit != "quarter":
            return start
        # Back (month - 1) % 3 months from the start of the month.
        back = exp.Anonymous(
            this="printf",
            expressions=[
                exp.Literal.string("-%d months"),
                exp.Mod(
                    this=exp.paren(exp.Sub(this=_strftime("%m", operand), expression=_one())),
                    expression=exp.Literal.number(3),
                ),
            ],
        )
        return exp.Anonymous(this="datetime", expressions=[start, back])

    def visit_Cast(self, node: Cast) -> exp.Expression:
        operand = exp.paren(self.visit(node.operand))
        target = SqlType.parse(node.type)
        if self.sqlite:
            if target.kind == "INTEGER":
                # SQLite truncates where DuckDB rounds half away from zero.
                return exp.cast(exp.Anonymous(this="round", expressions=[operand]), "INTEGER")
            if target.kind in ("DATE", "TIMESTAMP"):
                fn = "date" if target.kind == "DATE" else "datetime"
                return exp.Anonymous(this=fn, expressions=[operand])
            if target.numeric:
                return exp.cast(operand, "REAL")
            return operand
        if self.warehouse:
            kind = self.builder.kind(node.operand)
            if target.kind == "INTEGER":
                return cast_to_integer(operand, self.builder.dialect, kind)
            if target.kind == "BOOLEAN" and kind != "BOOLEAN":
                # Only DuckDB casts a BIGINT to BOOLEAN; "<> 0" means the same everywhere.
                return exp.paren(exp.NEQ(this=operand, expression=exp.Literal.number(0)))
        sql_type = {
            "INTEGER": "BIGINT",
            "FLOAT": "DOUBLE",
            "DECIMAL": f"DECIMAL({target.precision}, {target.scale})",
        }.get(target.kind, target.kind)
        return exp.cast(operand, exp.DataType.build(sql_type))


_SQLITE_PARTS = {
    "year": "%Y",
    "month": "%m",
    "day": "%d",
    "dow": "%w",
    "doy": "%j",
    "hour": "%H",
    "minute": "%M",
}
_SQLITE_TRUNC = {"year": "start of year", "quarter": "start of month", "month": "start of month"}


def _one() -> exp.Expression:
    return exp.Literal.number(1)


def _strftime(pattern: str, operand: exp.Expression) -> exp.Expression:
    text = exp.Anonymous(this="strftime", expressions=[exp.Literal.string(pattern), operand])
    return exp.cast(text, "INTEGER")


def aggregate_query(
    plan: AggregatePlan,
    table: TableInfo,
    dialect: str,
    source_table: str | None = None,
    second_largest: bool = True,
) -> LocalQuery:
    """:func:`build_aggregate_query`, remembered for the same plan and table policy.

    Why: generating the SQL (sqlglot trees, copies, the dialect's generator)
    costs about a millisecond per query at every holder, and analysts repeat
    plans (dashboards, the bench). The SQL is a function of the plan, the
    table's policy (``TableInfo``, dp bounds included) and the dialect only, so
    a remembered text is the text that would be built; checks stay with the
    caller and run on every request.
    """
    try:
        query = _remembered(plan, table, dialect, source_table, second_largest)
    except TypeError:  # a plan that cannot be hashed: build it every time
        return build_aggregate_query(plan, table, dialect, source_table, second_largest)
    return replace(query, params=dict(query.params))  # the caller's own parameters


@functools.lru_cache(maxsize=256)
def _remembered(
    plan: AggregatePlan,
    table: TableInfo,
    dialect: str,
    source_table: str | None,
    second_largest: bool,
) -> LocalQuery:
    return build_aggregate_query(plan, table, dialect, source_table, second_largest)


def build_aggregate_query(
    plan: AggregatePlan,
    table: TableInfo,
    dialect: str,
    source_table: str | None = None,
    second_largest: bool = True,
) -> LocalQuery:
    """The local GROUP BY query computing rows, counts, sums and centred moments,
    and per SUM/AVG/VAR measure of an exact table its min and max and
    (``second_largest``) the |x| and top-2 statistics of the p% rule. A dp
    table's answers are not suppressed, so it asks for none."""
    builder = _Builder(table, dialect)
    selects: list[exp.Expression] = [builder.expr(g.key) for g in plan.groups]
    selects.append(exp.Count(this=exp.Star()))
    positions = []
    spreads: list[tuple[int | None, ...] | None] = []
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
        magnitude = (measure.want_sum or measure.want_square) and table.dp is None
        spreads.append(_spread(selects, value, dialect, second_largest) if magnitude else None)
    where = builder.expr(plan.filter) if plan.filter is not None else None
    if table.dp is not None:
        # dp mode: read through the contribution-bounding, clamping subquery.
        bounded, where = bounded_rows(
            table, table.dp, source_table or table.name, where, builder.literal
        )
        query = exp.select(*selects).from_(bounded)
    else:
        query = exp.select(*selects).from_(exp.table_(source_table or table.name, quoted=True))
    if where is not None:
        query = query.where(where)
    if plan.groups:
        # By position: a derived key's parameters are bound once, in the select list.
        query = query.group_by(*[exp.Literal.number(i + 1) for i in range(len(plan.groups))])
    return LocalQuery(
        sql=query.sql(dialect=dialect),
        params=builder.params,
        group_columns=len(plan.groups),
        measure_columns=tuple(positions),
        spread_columns=tuple(spreads),
    )


def _spread(
    selects: list[exp.Expression], value: exp.Expression, dialect: str, second: bool
) -> tuple[int | None, ...]:
    """Append the dominance statistics of ``value`` (as DOUBLE) to ``selects``.

    Returns their positions in :data:`unseen.engine.privacy.suppression.SPREAD_STATS` order:
    min and max, and only with ``second`` the rest (else None).
    """
    number = exp.cast(exp.paren(value.copy()), exp.DataType.build("DOUBLE"))
    magnitude = exp.Abs(this=number.copy())
    stats: dict[str, exp.Expression] = {
        "min": exp.Min(this=number.copy()),
        "max": exp.Max(this=number.copy()),
    }
    if second:
        stats["abs_sum"] = exp.Sum(this=magnitude.copy())
        stats["abs_max"] = exp.Max(this=magnitude.copy())
        stats["abs_second"] = _second_largest(magnitude, dialect)
        stats["second_max"] = _second_largest(number, dialect)
        stats["second_min"] = exp.Neg(this=_second_largest(exp.Neg(this=number.copy()), dialect))
    positions: list[int | None] = []
    for name in SPREAD_STATS:
        if name in stats:
            positions.append(len(selects))
            selects.append(stats[name])
        else:
            positions.append(None)
    return tuple(positions)


def _second_largest(value: exp.Expression, dialect: str) -> exp.Expression:
    if dialect == "sqlite":
        return exp.Anonymous(this=SQLITE_SECOND_LARGEST, expressions=[value.copy()])
    if dialect == "duckdb":
        # DuckDB's max(x, 2) is the list of the two largest values, largest first.
        top_two = exp.Anonymous(this="max", expressions=[value.copy(), exp.Literal.number(2)])
        return exp.Anonymous(this="list_extract", expressions=[top_two, exp.Literal.number(2)])
    # Warehouses (PostgreSQL, MariaDB, Spark) have no portable top-2 aggregate:
    # the largest value stands in for the second. x2 <= x1, so the p% rule's
    # remainder T - x1 - x2 only shrinks: more groups fail, never fewer.
    return exp.Max(this=value.copy())
