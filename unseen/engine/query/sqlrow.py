"""From sqlglot's AST to unseen's row expressions: one ``row_<Node>`` method per construct.

The SQL front end (``unseen.engine.query.sql``) hands every row-level piece of a query
here: WHERE, aggregate arguments, FILTER conditions and derived GROUP BY
keys. Dispatch is by the sqlglot node's class name (``row_Add``,
``row_Case`` ...), the way sqlglot's own generator and planner dispatch, so a
new construct is one method. Constant date arithmetic
(``DATE '1998-12-01' - INTERVAL '90' DAY``) is folded to one literal here, so
holders never see an interval. Anything else is refused with the construct,
its position in the SQL text and what to write instead.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from sqlglot import exp

from unseen.engine.errors import PlanError, UnsupportedError
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.dates import INTERVAL_UNITS, add_interval, extract_part
from unseen.engine.query.expr import (
    DATE_TRUNC_UNITS,
    EXTRACT_PARTS,
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
)

__all__ = ["COMPARE", "RowTranslator", "chain", "node_name", "sql_type_name"]

COMPARE: dict[type[exp.Expression], BinaryOp] = {
    exp.EQ: BinaryOp.EQ,
    exp.NEQ: BinaryOp.NE,
    exp.LT: BinaryOp.LT,
    exp.LTE: BinaryOp.LE,
    exp.GT: BinaryOp.GT,
    exp.GTE: BinaryOp.GE,
}
ARITH: dict[type[exp.Expression], BinaryOp] = {
    exp.Add: BinaryOp.ADD,
    exp.Sub: BinaryOp.SUB,
    exp.Mul: BinaryOp.MUL,
    exp.Div: BinaryOp.DIV,
}
LOGIC: dict[type[exp.Expression], BinaryOp] = {exp.And: BinaryOp.AND, exp.Or: BinaryOp.OR}
_INTEGER = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^[0-9]*\.[0-9]*$")
_INTERVAL_TEXT = re.compile(r"^\s*(-?[0-9]+)\s*([a-z]+?)s?\s*$")
# year(d), month(d) ... as sqlglot parses them, and the EXTRACT part each is.
_PART_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Year: "year",
    exp.Quarter: "quarter",
    exp.Month: "month",
    exp.Day: "day",
    exp.DayOfWeek: "dow",
    exp.DayOfYear: "doy",
}


def node_name(node: exp.Expression) -> str:
    """A node's SQL name (MIN, UPPER ...) for messages."""
    return node.sql_name() if isinstance(node, exp.Func) else node.key.upper()


def chain(node: exp.Expression, kind: type) -> list[exp.Expression]:
    """The operands of a left- or right-deep chain of one connective, in order."""
    out: list[exp.Expression] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is kind:
            stack += [current.expression, current.this]
        else:
            out.append(current)
    return out


def _balanced(op: BinaryOp, operands: list[Expr]) -> Expr:
    if len(operands) == 1:
        return operands[0]
    middle = len(operands) // 2
    return Binary(op, _balanced(op, operands[:middle]), _balanced(op, operands[middle:]))


def sql_type_name(to: exp.DataType) -> str | None:
    """A sqlglot type as the catalog spells it (``DECIMAL(18,3)``), None if unseen has none."""
    if to.is_type(*exp.DataType.INTEGER_TYPES):
        return "INTEGER"
    if to.is_type(*exp.DataType.REAL_TYPES) and not to.is_type(exp.DataType.Type.DECIMAL):
        return "FLOAT"
    if to.is_type(exp.DataType.Type.DECIMAL):
        params = [int(p.name) for p in to.expressions]
        precision, scale = (params + [18, 3][len(params) :])[:2] if params else (18, 3)
        return f"DECIMAL({precision},{scale})"
    if to.is_type(exp.DataType.Type.DATE):
        return "DATE"
    if to.is_type(
        exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME
    ):
        return "TIMESTAMP"
    if to.is_type(*exp.DataType.TEXT_TYPES):
        return "VARCHAR"
    if to.is_type(exp.DataType.Type.BOOLEAN):
        return "BOOLEAN"
    return None


class RowTranslator:
    """Translate row-level SQL against one table; the SQL compiler inherits it.

    Subclasses provide ``sql`` (the text, for positions) and ``table``.
    """

    sql: str
    table: TableInfo | None
    table_names: set[str]

    # -- positions and refusals -------------------------------------------------
    def position(self, node: exp.Expression) -> tuple[int, int] | None:
        starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
        if not starts:
            # Nodes such as CURRENT_DATE carry no token position: find their text.
            found = self.sql.upper().find(node.sql("duckdb").upper())
            if found < 0 and isinstance(node, exp.Func):
                found = self.sql.upper().find(node_name(node).upper())
            if found < 0:
                return None
            starts = [found]
        start = min(starts)
        if "start" not in node.meta and isinstance(node, exp.Func):
            # Functions like MIN carry no position of their own: find the name.
            name = node_name(node).upper()
            found = self.sql.upper().rfind(name, 0, start)
            if found >= 0:
                start = found
        line = self.sql.count("\n", 0, start) + 1
        column = start - (self.sql.rfind("\n", 0, start) + 1) + 1
        return (line, column)

    def refuse(
        self, node: exp.Expression, construct: str, why: str = "", instead: str = ""
    ) -> UnsupportedError:
        return UnsupportedError(construct, self.position(node), why, instead)

    def error(self, node: exp.Expression, message: str) -> PlanError:
        where = self.position(node)
        suffix = f" (line {where[0]}, column {where[1]})" if where else ""
        return PlanError(message + suffix)

    # -- leaves -----------------------------------------------------------------
    def column(self, node: exp.Column) -> Column:
        assert self.table is not None
        qualifier = node.table
        if qualifier and qualifier.lower() not in self.table_names:
            raise self.error(node, f"unknown table {qualifier}")
        info = self.table.column(node.name)
        if info is None:
            raise self.error(node, f"table {self.table.name} has no column {node.name}")
        return Column(info.name)

    def literal(self, node: exp.Expression) -> LiteralValue:
        """The value of a constant expression (literals, casts of literals, date arithmetic)."""
        folded = self.row(node)
        if isinstance(folded, Literal):
            return folded.value
        raise self.refuse(node, f"{node.key.upper()} here", "only literal values are allowed")

    def _number(self, node: exp.Literal) -> LiteralValue:
        text = str(node.this)
        if node.is_string:
            return text
        if _INTEGER.match(text):
            value = int(text)
            return value if value < 2**63 else Decimal(text)
        if _DECIMAL.match(text):
            return Decimal(text)
        return float(text)

    def _cast_literal(self, node: exp.Cast, value: LiteralValue) -> LiteralValue:
        target = sql_type_name(node.to)
        if value is None:
            return None
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        try:
            if target == "DATE":
                if isinstance(value, dt.date):
                    return value.date() if isinstance(value, dt.datetime) else value
                return dt.date.fromisoformat(text)
            if target == "TIMESTAMP":
                if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                    return dt.datetime(value.year, value.month, value.day)
                return dt.datetime.fromisoformat(text)
            if target == "INTEGER":
                return int(text)
            if target == "FLOAT":
                return float(text)
            if target is not None and target.startswith("DECIMAL"):
                return Decimal(text)
            if target == "VARCHAR":
                return text
        except (ValueError, InvalidOperation) as exc:
            raise self.error(node, f"cannot cast {text!r} to {node.to.sql('duckdb')}") from exc
        raise self.refuse(
            node, f"CAST to {node.to.sql('duckdb')}", instead="cast to a number, DATE or TIMESTAMP"
        )

    # -- dispatch -----------------------------------------------------------------
    def row(self, node: exp.Expression) -> Expr:
        """A row-level expression: columns, literals, arithmetic, conditions, CASE ..."""
        method = getattr(self, "row_" + type(node).__name__, None)
        if method is not None:
            result: Expr = method(node)
            return result
        if type(node) in COMPARE:
            return self._compare(node)
        if type(node) in ARITH:
            return self._arith(node)
        if type(node) in LOGIC:
            # Long AND/OR chains become balanced trees: 240 conditions nest
            # 8 levels deep, not 240 (the wire's depth limit is 40; its size
            # limit, Limits.max_nodes, refuses much longer chains).
            operands = [self.row(part) for part in chain(node, type(node))]
            return _balanced(LOGIC[type(node)], operands)
        if type(node) in _PART_FUNCTIONS:
            return self._extract(node, _PART_FUNCTIONS[type(node)], node.this)
        if isinstance(node, (exp.AggFunc, exp.Count)):
            raise self.refuse(
                node,
                f"aggregate {node_name(node)} here",
                "aggregates belong in SELECT or HAVING, not in WHERE or inside another aggregate",
                "filter the aggregate with FILTER (WHERE ...) or move the condition to HAVING",
            )
        if isinstance(node, exp.Func):
            raise self.refuse(
                node,
                f"function {node_name(node)}",
                "a holder computes only the functions unseen can check",
                "use arithmetic, CASE, COALESCE, NULLIF, ABS, CAST, EXTRACT or date_trunc",
            )
        raise self.refuse(node, node.key.upper())

    def row_Paren(self, node: exp.Paren) -> Expr:
        return self.row(node.this)

    def row_Column(self, node: exp.Column) -> Expr:
        return self.column(node)

    def row_Literal(self, node: exp.Literal) -> Expr:
        return Literal(self._number(node))

    def row_Null(self, node: exp.Null) -> Expr:
        return Literal(None)

    def row_Boolean(self, node: exp.Boolean) -> Expr:
        return Literal(bool(node.this))

    def row_Neg(self, node: exp.Neg) -> Expr:
        inner = self.row(node.this)
        if isinstance(inner, Literal):
            value = inner.value
            if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
                return Literal(-value)
            raise self.error(node, "unary minus needs a number")
        return Unary(UnaryOp.NEG, inner)

    def row_Not(self, node: exp.Not) -> Expr:
        return Unary(UnaryOp.NOT, self.row(node.this))

    def row_Cast(self, node: exp.Cast) -> Expr:
        inner = self.row(node.this)
        if isinstance(inner, Literal):
            return Literal(self._cast_literal(node, inner.value))
        target = sql_type_name(node.to)
        if target == "VARCHAR":
            raise self.refuse(
                node,
                "CAST of a column to VARCHAR",
                "text casts differ between holder engines",
                "compare the column with a literal of its own type",
            )
        if target is None:
            raise self.refuse(
                node,
                f"CAST to {node.to.sql('duckdb')}",
                instead="cast to BIGINT, DOUBLE, DECIMAL(p,s), DATE or TIMESTAMP",
            )
        return Cast(inner, target)

    def row_TryCast(self, node: exp.TryCast) -> Expr:
        raise self.refuse(
            node,
            "TRY_CAST",
            "a cast that fails on some rows would tell which rows hold odd values",
            "use CAST between numbers or between dates",
        )

    def row_Interval(self, node: exp.Interval) -> Expr:
        raise self.refuse(
            node,
            "an INTERVAL outside date arithmetic",
            instead="add or subtract it from a DATE or TIMESTAMP literal",
        )

    def _interval(self, node: exp.Interval) -> tuple[int, int, int]:
        text = node.this.name if node.this is not None else ""
        unit = node.unit.name if node.unit is not None else ""
        match = _INTERVAL_TEXT.match(f"{text} {unit}".lower()) if unit else None
        match = match or _INTERVAL_TEXT.match(text.lower())
        if match is None:
            raise self.refuse(node, f"INTERVAL {text!r}", instead="write INTERVAL '90' DAY")
        count, name = int(match.group(1)), match.group(2).rstrip("s") or match.group(2)
        if name not in INTERVAL_UNITS:
            raise self.refuse(
                node,
                f"INTERVAL unit {name.upper()}",
                instead=f"use one of {', '.join(u.upper() for u in INTERVAL_UNITS)}",
            )
        months, days, seconds = INTERVAL_UNITS[name]
        return months * count, days * count, seconds * count

    def _arith(self, node: exp.Expression) -> Expr:
        op = ARITH[type(node)]
        if isinstance(node.expression, exp.Interval) or isinstance(node.this, exp.Interval):
            return self._date_arith(node, op)
        return Binary(op, self.row(node.this), self.row(node.expression))

    def _date_arith(self, node: exp.Expression, op: BinaryOp) -> Expr:
        interval, other = (
            (node.expression, node.this)
            if isinstance(node.expression, exp.Interval)
            else (node.this, node.expression)
        )
        base = self.row(other)
        legal = op is BinaryOp.ADD or (op is BinaryOp.SUB and interval is node.expression)
        if not legal or not isinstance(base, Literal) or not isinstance(base.value, dt.date):
            raise self.refuse(
                node,
                "INTERVAL arithmetic on a column",
                "holders compare columns with constants",
                "move the interval to the constant side: d < DATE '1998-12-01' - INTERVAL '90' DAY",
            )
        months, days, seconds = self._interval(interval)  # type: ignore[arg-type]
        sign = -1 if op is BinaryOp.SUB else 1
        return Literal(add_interval(base.value, sign * months, sign * days, sign * seconds))

    def _compare(self, node: exp.Expression) -> Expr:
        left, right = self.row(node.this), self.row(node.expression)
        left, right = self.coerce(left, right, node), self.coerce(right, left, node)
        return Binary(COMPARE[type(node)], left, right)

    def row_Between(self, node: exp.Between) -> Expr:
        operand = self.row(node.this)
        low = self.coerce(self.row(node.args["low"]), operand, node)
        high = self.coerce(self.row(node.args["high"]), operand, node)
        return Between(operand, low, high, negated=bool(node.args.get("negate")))

    def row_In(self, node: exp.In) -> Expr:
        if node.args.get("query") is not None:
            raise self.refuse(node, "IN (subquery)", instead="list literal values")
        operand = self.row(node.this)
        values = []
        for item in node.expressions:
            value = Literal(self.literal(item))
            values.append(self.coerce(value, operand, item).value)  # type: ignore[union-attr]
        return InList(operand, tuple(values), negated=bool(node.args.get("negate")))

    def _like(self, node: exp.Like | exp.ILike) -> Expr:
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise self.refuse(pattern, "a LIKE pattern that is not a string literal")
        # sqlglot marks "x NOT LIKE p" with negate=True on the Like node itself.
        return Like(
            self.row(node.this),
            str(pattern.this),
            negated=bool(node.args.get("negate")),
            case_insensitive=isinstance(node, exp.ILike),
        )

    row_Like = _like
    row_ILike = _like

    def row_Is(self, node: exp.Is) -> Expr:
        if not isinstance(node.expression, exp.Null):
            raise self.refuse(
                node, f"IS {node.expression.sql('duckdb')}", instead="use = or IS NULL"
            )
        return IsNull(self.row(node.this))

    def row_Case(self, node: exp.Case) -> Expr:
        subject = node.this
        whens = []
        for branch in node.args.get("ifs") or []:
            condition = branch.this
            if subject is not None:  # CASE x WHEN v THEN ... is CASE WHEN x = v THEN ...
                condition = exp.EQ(this=subject.copy(), expression=condition)
            whens.append((self.row(condition), self.row(branch.args["true"])))
        default = node.args.get("default")
        return Case(tuple(whens), self.row(default) if default is not None else None)

    def row_Coalesce(self, node: exp.Coalesce) -> Expr:
        args = [node.this, *node.expressions]
        return Func("coalesce", tuple(self.row(a) for a in args))

    def row_Nullif(self, node: exp.Nullif) -> Expr:
        left, right = self.row(node.this), self.row(node.expression)
        return Func("nullif", (left, self.coerce(right, left, node)))

    def row_Abs(self, node: exp.Abs) -> Expr:
        return Func("abs", (self.row(node.this),))

    def row_Extract(self, node: exp.Extract) -> Expr:
        return self._extract(node, node.this.name.lower(), node.expression)

    def _extract(self, node: exp.Expression, part: str, operand: exp.Expression) -> Expr:
        aliases = {"years": "year", "months": "month", "days": "day", "dayofweek": "dow"}
        part = aliases.get(part, part)
        if part not in EXTRACT_PARTS:
            raise self.refuse(
                node,
                f"EXTRACT({part.upper()} ...)",
                "not every holder engine computes it the same way",
                f"use one of {', '.join(p.upper() for p in EXTRACT_PARTS)}",
            )
        inner = self.row(operand)
        if isinstance(inner, Literal):
            return Literal(extract_part(part, inner.value))
        return Extract(part, inner)

    def _trunc(self, node: exp.Expression) -> Expr:
        unit_node = node.args.get("unit")
        unit = unit_node.name.lower() if unit_node is not None else ""
        if unit not in DATE_TRUNC_UNITS:
            raise self.refuse(
                node,
                f"date_trunc('{unit}', ...)",
                "not every holder engine computes it the same way",
                f"use one of {', '.join(DATE_TRUNC_UNITS)}",
            )
        return DateTrunc(unit, self.row(node.this))

    row_TimestampTrunc = _trunc
    row_DateTrunc = _trunc

    def coerce(self, value: Expr, other: Expr, node: exp.Expression) -> Expr:
        """Cast a string literal compared with a typed column the way DuckDB would."""
        if not (isinstance(value, Literal) and isinstance(value.value, str)):
            return value
        if not isinstance(other, Column):
            return value
        assert self.table is not None
        info = self.table.column(other.name)
        if info is None:
            return value
        text = value.value
        try:
            if info.type.kind == "DATE":
                return Literal(dt.date.fromisoformat(text))
            if info.type.kind == "TIMESTAMP":
                return Literal(dt.datetime.fromisoformat(text))
            if info.type.kind == "INTEGER":
                return Literal(int(text))
            if info.type.numeric:
                return Literal(Decimal(text))
        except (ValueError, InvalidOperation) as exc:
            raise self.error(node, f"{text!r} is not a valid {info.type} for {info.name}") from exc
        return value
