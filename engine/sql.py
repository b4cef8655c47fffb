"""SQL front end: parse an analyst's SELECT with sqlglot and compile it.

The result is a :class:`~engine.query.CompiledQuery`: an aggregate plan for
the federation plus the post-decryption work. What additive HE cannot
answer (MIN, MAX, MEDIAN, joins, subqueries, window functions, row-level
SELECTs ...) is refused with :class:`~engine.errors.UnsupportedError`,
naming the construct and its line and column in the SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from engine.catalog import Catalog, TableInfo
from engine.errors import PlanError, PolicyError, SqlSyntaxError, UnsupportedError
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
    conjuncts,
    pinned_values,
)
from engine.plan import (
    AggregatePlan,
    GroupColumn,
    Measure,
    SlotCodec,
    check_plan,
    encoding_for,
    expr_type,
)
from engine.query import (
    AggCall,
    AggRef,
    CompiledQuery,
    Const,
    GroupRef,
    OrderKey,
    OutBetween,
    OutBinary,
    OutExpr,
    OutFunc,
    OutIn,
    OutIsNull,
    OutputRef,
    OutUnary,
)
from engine.types import SqlType

__all__ = ["compile_condition", "compile_sql"]

_AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Variance: "var_samp",
    exp.VariancePop: "var_pop",
    exp.Stddev: "stddev_samp",
    exp.StddevSamp: "stddev_samp",
    exp.StddevPop: "stddev_pop",
}
_NEEDS_SQUARE = {"var_samp", "var_pop", "stddev_samp", "stddev_pop"}

_COMPARE: dict[type[exp.Expression], BinaryOp] = {
    exp.EQ: BinaryOp.EQ,
    exp.NEQ: BinaryOp.NE,
    exp.LT: BinaryOp.LT,
    exp.LTE: BinaryOp.LE,
    exp.GT: BinaryOp.GT,
    exp.GTE: BinaryOp.GE,
}
_ARITH: dict[type[exp.Expression], BinaryOp] = {
    exp.Add: BinaryOp.ADD,
    exp.Sub: BinaryOp.SUB,
    exp.Mul: BinaryOp.MUL,
    exp.Div: BinaryOp.DIV,
}
_LOGIC: dict[type[exp.Expression], BinaryOp] = {exp.And: BinaryOp.AND, exp.Or: BinaryOp.OR}
_OUT_FUNCS: dict[type[exp.Expression], str] = {
    exp.Round: "round",
    exp.Abs: "abs",
    exp.Sqrt: "sqrt",
    exp.Coalesce: "coalesce",
}
# Constructs refused wherever they appear, with the reason shown to the analyst.
_REFUSED: dict[type[exp.Expression], tuple[str, str]] = {
    exp.Join: ("JOIN", "tables of different holders cannot be joined under additive HE"),
    exp.Subquery: ("a subquery", "a query reads one table once"),
    exp.Exists: ("EXISTS (subquery)", "a query reads one table once"),
    exp.Window: ("a window function", "rows never leave their holder"),
    exp.With: ("WITH (common table expressions)", "a query reads one table once"),
    exp.Filter: ("an aggregate FILTER clause", "move the condition to WHERE"),
    exp.Case: ("CASE", ""),
    exp.Lateral: ("LATERAL", ""),
    exp.Pivot: ("PIVOT", ""),
    exp.TableSample: ("TABLESAMPLE", ""),
    exp.Qualify: ("QUALIFY", ""),
    exp.Escape: ("LIKE ... ESCAPE", ""),
}
_INTEGER = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^[0-9]*\.[0-9]*$")


def _name(node: exp.Expression) -> str:
    """A node's SQL name (MIN, UPPER ...) for messages."""
    return node.sql_name() if isinstance(node, exp.Func) else node.key.upper()


def _chain(node: exp.Expression, kind: type) -> list[exp.Expression]:
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


@dataclass
class _Compiler:
    sql: str
    catalog: Catalog
    codec: SlotCodec
    table: TableInfo | None = None
    table_names: set[str] = field(default_factory=set)
    group_columns: list[str] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    aggregates: list[AggCall] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)

    # -- positions and refusals -------------------------------------------------
    def position(self, node: exp.Expression) -> tuple[int, int] | None:
        starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
        if not starts:
            # Nodes such as CURRENT_DATE carry no token position: find their text.
            found = self.sql.upper().find(node.sql("duckdb").upper())
            if found < 0 and isinstance(node, exp.Func):
                found = self.sql.upper().find(_name(node).upper())
            if found < 0:
                return None
            starts = [found]
        start = min(starts)
        if "start" not in node.meta and isinstance(node, exp.Func):
            # Functions like MIN carry no position of their own: find the name.
            name = _name(node).upper()
            found = self.sql.upper().rfind(name, 0, start)
            if found >= 0:
                start = found
        line = self.sql.count("\n", 0, start) + 1
        column = start - (self.sql.rfind("\n", 0, start) + 1) + 1
        return (line, column)

    def refuse(self, node: exp.Expression, construct: str, why: str = "") -> UnsupportedError:
        return UnsupportedError(construct, self.position(node), why)

    def error(self, node: exp.Expression, message: str) -> PlanError:
        where = self.position(node)
        suffix = f" (line {where[0]}, column {where[1]})" if where else ""
        return PlanError(message + suffix)

    def screen(self, tree: exp.Expression, subquery_why: str) -> None:
        """Refuse the constructs no plan carries, and any SELECT nested in ``tree``."""
        for node in tree.walk():
            for kind, (construct, why) in _REFUSED.items():
                if isinstance(node, kind):
                    raise self.refuse(node, construct, why)
            if isinstance(node, exp.Select) and node is not tree:
                raise self.refuse(node, "a subquery", subquery_why)

    # -- whole statement --------------------------------------------------------
    def compile(self, tree: exp.Expression) -> CompiledQuery:
        if isinstance(tree, (exp.Union, exp.Intersect, exp.Except)):
            raise self.refuse(tree, "UNION/INTERSECT/EXCEPT", "a query reads one table once")
        if not isinstance(tree, exp.Select):
            raise self.refuse(tree, f"{tree.key.upper()} statements", "only SELECT is answered")
        self.screen(tree, "a query reads one table once")
        if tree.args.get("distinct"):
            raise self.refuse(tree, "SELECT DISTINCT", "group with GROUP BY instead")
        self._bind_table(tree)
        assert self.table is not None
        if tree.args.get("group") is None and not any(map(self._has_aggregate, tree.expressions)):
            raise self.refuse(
                tree, "a row-level SELECT", "ask for aggregates such as COUNT(*) or SUM(col)"
            )
        where = tree.args.get("where")
        filter_expr = self.row(where.this) if where is not None else None
        grouped = tree.args.get("group") is not None
        self._bind_groups(tree)
        columns, outputs = self._outputs(tree)
        having_node = tree.args.get("having")
        having = self.out(having_node.this) if having_node is not None else None
        order = self._order(tree, len(outputs))
        limit, offset = self._limit(tree)
        groups = tuple(
            GroupColumn(name, self._domain(name, filter_expr, tree)) for name in self.group_columns
        )
        plan = AggregatePlan(self.table.name, filter_expr, groups, tuple(self.measures), self.codec)
        check_plan(plan, self.table)
        return CompiledQuery(
            sql=self.sql,
            plan=plan,
            aggregates=tuple(self.aggregates),
            columns=tuple(columns),
            outputs=tuple(outputs),
            having=having,
            order=tuple(order),
            limit=limit,
            offset=offset,
            grouped=grouped,
        )

    def _bind_table(self, tree: exp.Select) -> None:
        source = tree.args.get("from_") or tree.args.get("from")
        if source is None:
            raise self.refuse(tree, "SELECT without FROM", "name the table to aggregate")
        table_node = source.this
        if not isinstance(table_node, exp.Table) or not isinstance(table_node.this, exp.Identifier):
            raise self.refuse(table_node, f"FROM {table_node.key.upper()}", "name one table")
        if table_node.args.get("db") or table_node.args.get("catalog"):
            raise self.refuse(table_node, "qualified table names", "name the table alone")
        name = table_node.name
        self.table = self.catalog.table(name)
        if self.table is None:
            conflict = self.catalog.conflict(name)
            if conflict:
                raise PlanError(conflict)
            known = ", ".join(t.name for t in self.catalog.tables) or "none"
            raise self.error(table_node, f"no holder serves a table {name} (tables: {known})")
        self.table_names = {name.lower()}
        if table_node.alias:
            self.table_names.add(table_node.alias.lower())

    # -- row-level expressions (WHERE, aggregate arguments) ----------------------
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
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Boolean):
            return bool(node.this)
        if isinstance(node, exp.Neg):
            value = self.literal(node.this)
            if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
                return -value
            raise self.error(node, "unary minus needs a number")
        if isinstance(node, exp.Paren):
            return self.literal(node.this)
        if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
            return self._cast_literal(node)
        if isinstance(node, exp.Literal):
            text = str(node.this)
            if node.is_string:
                return text
            if _INTEGER.match(text):
                value = int(text)
                return value if value < 2**63 else Decimal(text)
            if _DECIMAL.match(text):
                return Decimal(text)
            return float(text)
        raise self.refuse(node, f"{node.key.upper()} here", "only literal values are allowed")

    def _cast_literal(self, node: exp.Cast) -> LiteralValue:
        text = str(node.this.this)
        target = node.to.this
        try:
            if target == exp.DataType.Type.DATE:
                return dt.date.fromisoformat(text)
            if target in (
                exp.DataType.Type.TIMESTAMP,
                exp.DataType.Type.TIMESTAMPNTZ,
                exp.DataType.Type.DATETIME,
            ):
                return dt.datetime.fromisoformat(text)
            if node.to.is_type(*exp.DataType.INTEGER_TYPES):
                return int(text)
            if node.to.is_type(*exp.DataType.REAL_TYPES):
                return float(text)
            if node.to.is_type(exp.DataType.Type.DECIMAL):
                return Decimal(text)
            if node.to.is_type(*exp.DataType.TEXT_TYPES):
                return text
        except (ValueError, InvalidOperation) as exc:
            raise self.error(node, f"cannot cast {text!r} to {node.to.sql('duckdb')}") from exc
        raise self.refuse(node, f"CAST to {node.to.sql('duckdb')}")

    def row(self, node: exp.Expression) -> Expr:
        """A row-level expression: columns, literals, arithmetic, conditions."""
        if isinstance(node, exp.Paren):
            return self.row(node.this)
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)) or (
            isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal)
        ):
            return Literal(self.literal(node))
        if isinstance(node, exp.Neg):
            if isinstance(node.this, exp.Literal):
                return Literal(self.literal(node))
            return Unary(UnaryOp.NEG, self.row(node.this))
        if isinstance(node, exp.Not):
            return Unary(UnaryOp.NOT, self.row(node.this))
        if type(node) in _COMPARE:
            left, right = self.row(node.this), self.row(node.expression)
            left, right = self._coerce(left, right, node), self._coerce(right, left, node)
            return Binary(_COMPARE[type(node)], left, right)
        if type(node) in _LOGIC:
            # Long AND/OR chains become balanced trees: 240 conditions nest
            # 10 levels deep, not 240 (the wire's depth limit is 40; its size
            # limit, Limits.max_nodes, refuses much longer chains).
            operands = [self.row(part) for part in _chain(node, type(node))]
            return _balanced(_LOGIC[type(node)], operands)
        if type(node) in _ARITH:
            return Binary(_ARITH[type(node)], self.row(node.this), self.row(node.expression))
        if isinstance(node, exp.Between):
            operand = self.row(node.this)
            low = self._coerce(self.row(node.args["low"]), operand, node)
            high = self._coerce(self.row(node.args["high"]), operand, node)
            return Between(operand, low, high, negated=bool(node.args.get("negate")))
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                raise self.refuse(node, "IN (subquery)", "list literal values")
            operand = self.row(node.this)
            values = []
            for item in node.expressions:
                value = Literal(self.literal(item))
                values.append(self._coerce(value, operand, item).value)  # type: ignore[union-attr]
            return InList(operand, tuple(values), negated=bool(node.args.get("negate")))
        if isinstance(node, (exp.Like, exp.ILike)):
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
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise self.refuse(node, f"IS {node.expression.sql('duckdb')}", "use = or IS NULL")
            return IsNull(self.row(node.this))
        if (
            isinstance(node, exp.AggFunc)
            or type(node) in _AGGREGATES
            or isinstance(node, exp.Count)
        ):
            raise self.refuse(
                node,
                f"aggregate {_name(node)} here",
                "aggregates belong in SELECT or HAVING, not in WHERE or inside another aggregate",
            )
        if isinstance(node, exp.Cast):
            raise self.refuse(node, "CAST of a column")
        if isinstance(node, exp.Func):
            raise self.refuse(node, f"function {_name(node)}")
        raise self.refuse(node, node.key.upper())

    def _coerce(self, value: Expr, other: Expr, node: exp.Expression) -> Expr:
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

    # -- GROUP BY ---------------------------------------------------------------
    def _bind_groups(self, tree: exp.Select) -> None:
        group = tree.args.get("group")
        if group is None:
            return
        items = list(tree.expressions)
        targets: list[exp.Expression] = []
        if group.args.get("all"):
            targets = [i for i in items if not self._has_aggregate(i)]
        for node in group.expressions:
            if (
                isinstance(node, exp.Literal)
                and not node.is_string
                and _INTEGER.match(str(node.this))
            ):
                position = int(str(node.this))
                if not 1 <= position <= len(items):
                    raise self.error(
                        node, f"GROUP BY position {position} is not in the select list"
                    )
                targets.append(items[position - 1])
            elif isinstance(node, exp.Column) and self._alias_target(node, items) is not None:
                targets.append(self._alias_target(node, items))  # type: ignore[arg-type]
            else:
                targets.append(node)
        for node in targets:
            inner = node.this if isinstance(node, exp.Alias) else node
            if not isinstance(inner, exp.Column):
                raise self.refuse(inner, "GROUP BY an expression", "group by a column")
            name = self.column(inner).name
            assert self.table is not None
            info = self.table.column(name)
            if info is not None and not info.allows("group"):
                raise PolicyError(f"column {self.table.name}.{name} may not be used to group")
            if name not in self.group_columns:
                self.group_columns.append(name)

    def _alias_target(self, node: exp.Column, items: list[exp.Expression]) -> exp.Expression | None:
        assert self.table is not None
        if node.table or self.table.column(node.name) is not None:
            return None
        for item in items:
            if isinstance(item, exp.Alias) and item.alias.lower() == node.name.lower():
                return item.this
        return None

    @staticmethod
    def _has_aggregate(node: exp.Expression) -> bool:
        return any(isinstance(n, (exp.AggFunc, exp.Count)) for n in node.walk())

    def _domain(
        self, name: str, filter_expr: Expr | None, tree: exp.Select
    ) -> tuple[LiteralValue, ...]:
        """The group domain: from WHERE name IN/= (...) if present, else published."""
        assert self.table is not None
        domain: list[LiteralValue] | None = None
        for conjunct in conjuncts(filter_expr):
            pinned = pinned_values(conjunct)
            if pinned is None or pinned[0] != name:
                continue
            values: list[LiteralValue] = [v for v in dict.fromkeys(pinned[1]) if v is not None]
            domain = values if domain is None else [v for v in domain if v in values]
        if domain is None:
            info = self.table.column(name)
            assert info is not None
            if info.domain is None:
                raise self.error(
                    tree.args["group"],
                    f"column {name} has no published group domain; restrict it with "
                    f"WHERE {name} IN (...)",
                )
            return tuple(info.domain)
        if not domain:
            raise self.error(tree, f"WHERE leaves no value of group column {name}")
        return tuple(domain)

    # -- post-decryption expressions ---------------------------------------------
    def aggregate(self, node: exp.Expression) -> AggRef:
        if isinstance(node, exp.Count):
            arg = node.this
            if isinstance(arg, exp.Star):
                return self._agg_ref(AggCall("count_star", None))
            if isinstance(arg, exp.Distinct):
                raise self.refuse(node, "COUNT(DISTINCT ...)", "distinct counts are not additive")
            return self._agg_ref(AggCall("count", self._measure(arg, "count")))
        function = _AGGREGATES[type(node)]
        arg = node.this
        if isinstance(arg, exp.Distinct):
            raise self.refuse(node, f"{_name(node)}(DISTINCT ...)", "not additive")
        return self._agg_ref(AggCall(function, self._measure(arg, function)))

    def _measure(self, node: exp.Expression, function: str) -> int:
        assert self.table is not None
        expr = self.row(node)
        kind = expr_type(expr, self.table, "aggregate")
        want_sum = function != "count"
        want_square = function in _NEEDS_SQUARE
        if want_sum and kind is not None and not kind.numeric:
            raise self.error(node, f"{function.upper()} needs a number, not {kind}")
        encoding, scale = encoding_for(kind) if want_sum else encoding_for(None)
        for i, measure in enumerate(self.measures):
            if measure.expr == expr:
                if want_sum and not measure.want_sum:
                    measure = replace(measure, encoding=encoding, decimal_scale=scale)
                self.measures[i] = replace(
                    measure,
                    want_sum=measure.want_sum or want_sum,
                    want_square=measure.want_square or want_square,
                )
                return i
        self.measures.append(Measure(expr, encoding, scale, want_sum, want_square))
        return len(self.measures) - 1

    def _agg_ref(self, call: AggCall) -> AggRef:
        if call not in self.aggregates:
            self.aggregates.append(call)
        return AggRef(self.aggregates.index(call))

    def out(self, node: exp.Expression, allow_alias: bool = False) -> OutExpr:
        """An expression over finished aggregates and group values."""
        if isinstance(node, exp.Paren):
            return self.out(node.this, allow_alias)
        if isinstance(node, exp.Count) or type(node) in _AGGREGATES:
            return self.aggregate(node)
        if isinstance(node, exp.AggFunc):
            raise self.refuse(node, _name(node), "additive HE cannot compute it")
        if isinstance(node, exp.Column):
            assert self.table is not None
            # ORDER BY / HAVING may name an output alias, unless it is a group column.
            if (
                allow_alias
                and not node.table
                and node.name.lower() in self.aliases
                and (
                    self.table.column(node.name) is None
                    or node.name.lower() not in (c.lower() for c in self.group_columns)
                )
            ):
                return OutputRef(self.aliases[node.name.lower()])
            name = self.column(node).name
            if name not in self.group_columns:
                raise self.refuse(
                    node,
                    f"column {name} outside an aggregate",
                    "a row-level value never leaves its holder; GROUP BY it or aggregate it",
                )
            return GroupRef(self.group_columns.index(name))
        if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)) or (
            isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal)
        ):
            return Const(self.literal(node))
        if isinstance(node, exp.Neg):
            if isinstance(node.this, exp.Literal):
                return Const(self.literal(node))
            return OutUnary("-", self.out(node.this, allow_alias))
        if isinstance(node, exp.Not):
            return OutUnary("NOT", self.out(node.this, allow_alias))
        binary = _COMPARE.get(type(node)) or _ARITH.get(type(node)) or _LOGIC.get(type(node))
        if binary is not None:
            return OutBinary(
                binary.value,
                self.out(node.this, allow_alias),
                self.out(node.expression, allow_alias),
            )
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return OutIsNull(self.out(node.this, allow_alias))
        if isinstance(node, exp.Between):
            return OutBetween(
                self.out(node.this, allow_alias),
                self.out(node.args["low"], allow_alias),
                self.out(node.args["high"], allow_alias),
                negated=bool(node.args.get("negate")),
            )
        if isinstance(node, exp.In) and node.args.get("query") is None:
            return OutIn(
                self.out(node.this, allow_alias),
                tuple(self.out(v, allow_alias) for v in node.expressions),
                negated=bool(node.args.get("negate")),
            )
        if type(node) in _OUT_FUNCS:
            args = [node.this] + [a for a in (node.args.get("decimals"),) if a is not None]
            if isinstance(node, exp.Coalesce):
                args = [node.this, *node.expressions]
            return OutFunc(_OUT_FUNCS[type(node)], tuple(self.out(a, allow_alias) for a in args))
        if isinstance(node, exp.Star):
            raise self.refuse(node, "SELECT *", "a row-level SELECT reveals rows")
        if isinstance(node, exp.Func):
            raise self.refuse(node, f"function {_name(node)}")
        raise self.refuse(node, node.key.upper())

    def _outputs(self, tree: exp.Select) -> tuple[list[str], list[OutExpr]]:
        columns, outputs = [], []
        for item in tree.expressions:
            inner = item.this if isinstance(item, exp.Alias) else item
            if isinstance(item, exp.Alias):
                name = item.alias
            elif isinstance(item, exp.Column):
                name = item.name
            else:
                name = item.sql("duckdb")
            outputs.append(self.out(inner))
            columns.append(name)
            self.aliases.setdefault(name.lower(), len(outputs) - 1)
        return columns, outputs

    def _order(self, tree: exp.Select, outputs: int) -> list[OrderKey]:
        order = tree.args.get("order")
        if order is None:
            return []
        keys = []
        for ordered in order.expressions:
            node = ordered.this
            if (
                isinstance(node, exp.Literal)
                and not node.is_string
                and _INTEGER.match(str(node.this))
            ):
                position = int(str(node.this))
                if not 1 <= position <= outputs:
                    raise self.error(
                        node, f"ORDER BY position {position} is not in the select list"
                    )
                expr: OutExpr = OutputRef(position - 1)
            else:
                expr = self.out(node, allow_alias=True)
            keys.append(
                OrderKey(
                    expr, bool(ordered.args.get("desc")), bool(ordered.args.get("nulls_first"))
                )
            )
        return keys

    def _limit(self, tree: exp.Select) -> tuple[int | None, int]:
        def number(clause: exp.Expression | None) -> int | None:
            if clause is None:
                return None
            node = clause.expression if clause.expression is not None else clause.this
            if not (isinstance(node, exp.Literal) and _INTEGER.match(str(node.this))):
                raise self.refuse(node, "a LIMIT/OFFSET that is not a whole number")
            return int(str(node.this))

        return number(tree.args.get("limit")), number(tree.args.get("offset")) or 0


def _parse_message(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else "invalid SQL"


def compile_sql(sql: str, catalog: Catalog, codec: SlotCodec | None = None) -> CompiledQuery:
    """Compile one SELECT against the federation's merged catalog."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SqlSyntaxError(f"SQL does not parse: {_parse_message(exc)}") from exc
    if len(statements) != 1:
        raise SqlSyntaxError(f"expected one SQL statement, got {len(statements)}")
    compiler = _Compiler(sql, catalog, codec or SlotCodec())
    statement = statements[0]
    assert isinstance(statement, exp.Expression)
    return compiler.compile(statement)


def compile_condition(text: str, table: TableInfo, catalog: Catalog) -> Expr:
    """Compile a stand-alone SQL condition over ``table`` (a model feature's filter)."""
    try:
        node = sqlglot.parse_one(text, read="duckdb", into=exp.Condition)
    except (ParseError, TokenError) as exc:
        raise SqlSyntaxError(f"filter {text!r} does not parse: {_parse_message(exc)}") from exc
    compiler = _Compiler(text, catalog, SlotCodec())
    compiler.table = table
    compiler.table_names = {table.name.lower()}
    assert isinstance(node, exp.Expression)
    compiler.screen(node, "a filter reads one table")
    expr = compiler.row(node)
    if expr_type(expr, table, "filter") not in (None, SqlType("BOOLEAN")):
        raise PlanError(f"filter {text!r} is not a condition")
    return expr
