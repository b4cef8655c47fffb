"""SQL front end: parse an analyst's SELECT with sqlglot and compile it.

The result is a :class:`~engine.query.CompiledQuery`: an aggregate plan for
the federation plus the post-decryption work. Row-level pieces (WHERE,
aggregate arguments, FILTER, derived GROUP BY keys) are translated by
``engine.sqlrow``; this module binds the table, the groups and their domains,
the aggregates and the output expressions. What additive HE cannot answer
(MIN, MAX, MEDIAN, joins, subqueries, window functions, row-level SELECTs
...) is refused with :class:`~engine.errors.UnsupportedError`, naming the
construct, its line and column in the SQL text, why, and what to ask instead.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from engine.catalog import Catalog, TableInfo
from engine.dates import calendar_domain
from engine.errors import PlanError, PolicyError, SqlSyntaxError
from engine.expr import (
    AggRef,
    Between,
    Binary,
    Case,
    Cast,
    Column,
    DateTrunc,
    Expr,
    Extract,
    Func,
    GroupRef,
    InList,
    IsNull,
    Literal,
    LiteralValue,
    OutputRef,
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
    derived_group_use,
    encoding_for,
    expr_type,
)
from engine.query import AggCall, CompiledQuery, OrderKey, OutExpr
from engine.sqlrow import ARITH, COMPARE, LOGIC, RowTranslator, node_name, sql_type_name
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
_OUT_FUNCS: dict[type[exp.Expression], str] = {
    exp.Round: "round",
    exp.Abs: "abs",
    exp.Sqrt: "sqrt",
    exp.Coalesce: "coalesce",
    exp.Nullif: "nullif",
}
# Aggregates refused, each with why and what to ask instead.
_ONE_ROW = "it is one row's value, which k and dominance exist to hide, and sums cannot carry it"
_HISTOGRAM = (
    "ask for a histogram, COUNT(*) ... GROUP BY CASE WHEN x < a THEN 'low' ... END, "
    "or for AVG and STDDEV"
)
_REFUSED_AGGREGATES: dict[type[exp.Expression], tuple[str, str, str]] = {
    exp.Min: ("MIN", _ONE_ROW, "ask COUNT(*) ... WHERE x < v for a threshold, or " + _HISTOGRAM),
    exp.Max: ("MAX", _ONE_ROW, "ask COUNT(*) ... WHERE x > v for a threshold, or " + _HISTOGRAM),
    exp.Median: ("MEDIAN", _ONE_ROW, _HISTOGRAM),
    exp.Quantile: ("a quantile", _ONE_ROW, _HISTOGRAM),
    exp.PercentileCont: ("PERCENTILE_CONT", _ONE_ROW, _HISTOGRAM),
    exp.PercentileDisc: ("PERCENTILE_DISC", _ONE_ROW, _HISTOGRAM),
    exp.ApproxQuantile: ("APPROX_QUANTILE", _ONE_ROW, _HISTOGRAM),
    exp.Mode: ("MODE", _ONE_ROW, "ask COUNT(*) ... GROUP BY the column"),
    exp.ArgMax: ("ARG_MAX", _ONE_ROW, _HISTOGRAM),
    exp.ArgMin: ("ARG_MIN", _ONE_ROW, _HISTOGRAM),
}
_DISTINCT = (
    "distinct counts are not additive: a value held at two holders would count twice, "
    "and deduplicating needs the values themselves",
    "ask COUNT(*) ... GROUP BY the column over its published domain and count the non-empty groups",
)
# Constructs refused wherever they appear, with the reason shown to the analyst.
_REFUSED: dict[type[exp.Expression], tuple[str, str, str]] = {
    exp.Join: (
        "JOIN",
        "tables of different holders cannot be joined under additive HE",
        "aggregate each table on its own",
    ),
    exp.Subquery: ("a subquery", "a query reads one table once", ""),
    exp.Exists: ("EXISTS (subquery)", "a query reads one table once", ""),
    exp.Window: ("a window function", "rows never leave their holder", "use GROUP BY"),
    exp.With: ("WITH (common table expressions)", "a query reads one table once", ""),
    exp.WithinGroup: ("PERCENTILE ... WITHIN GROUP", _ONE_ROW, _HISTOGRAM),
    exp.Lateral: ("LATERAL", "", ""),
    exp.Pivot: ("PIVOT", "", "GROUP BY the pivot column"),
    exp.TableSample: ("TABLESAMPLE", "", ""),
    exp.Qualify: ("QUALIFY", "rows never leave their holder", "use HAVING"),
    exp.Escape: ("LIKE ... ESCAPE", "", "use a pattern without escapes"),
}
# Derived GROUP BY keys whose domain unseen can derive from published information.
_DERIVED_KEYS: tuple[type[exp.Expression], ...] = (
    exp.Extract,
    exp.TimestampTrunc,
    exp.DateTrunc,
    exp.Case,
    exp.Year,
    exp.Month,
)
_INTEGER = re.compile(r"^[0-9]+$")


def _label(node: exp.Expression) -> str:
    """A derived key's name: its SQL text, as DuckDB prints it."""
    return node.sql("duckdb")


@dataclass
class _Compiler(RowTranslator):
    sql: str
    catalog: Catalog
    codec: SlotCodec
    table: TableInfo | None = None
    table_names: set[str] = field(default_factory=set)
    group_columns: list[str] = field(default_factory=list)
    group_exprs: list[Expr | None] = field(default_factory=list)
    group_nodes: list[exp.Expression] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    aggregates: list[AggCall] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)

    def screen(self, tree: exp.Expression, subquery_why: str) -> None:
        """Refuse the constructs no plan carries, and any SELECT nested in ``tree``."""
        for node in tree.walk():
            for kind, (construct, why, instead) in _REFUSED.items():
                if isinstance(node, kind):
                    raise self.refuse(node, construct, why, instead)
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
            GroupColumn(name, self._domain(name, filter_expr, tree))
            if key is None
            else GroupColumn(name, self._derived_domain(key, node), key)
            for name, key, node in zip(
                self.group_columns, self.group_exprs, self.group_nodes, strict=True
            )
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
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, _DERIVED_KEYS):
                label = _label(inner)
                if label not in self.group_columns:
                    key = self.row(inner)
                    assert self.table is not None
                    expr_type(key, self.table, derived_group_use(key))
                    self.group_columns.append(label)
                    self.group_exprs.append(key)
                    self.group_nodes.append(inner)
                continue
            if not isinstance(inner, exp.Column):
                raise self.refuse(
                    inner,
                    "GROUP BY this expression",
                    "the group domain must be known before any holder encrypts",
                    "group by a column with a published domain, EXTRACT(year FROM d), "
                    "date_trunc('month', d), or a CASE mapping rows to literal labels",
                )
            name = self.column(inner).name
            assert self.table is not None
            info = self.table.column(name)
            if info is not None and not info.allows("group"):
                raise PolicyError(f"column {self.table.name}.{name} may not be used to group")
            if name not in self.group_columns:
                self.group_columns.append(name)
                self.group_exprs.append(None)
                self.group_nodes.append(inner)

    def _derived_domain(self, key: Expr, node: exp.Expression) -> tuple[LiteralValue, ...]:
        """A derived key's domain from published information alone.

        CASE keys take their literal labels; calendar keys take every unit
        between the column's published bounds (cyclic parts their cycle).
        """
        assert self.table is not None
        if isinstance(key, Case):
            results = [r for _, r in key.whens]
            results.append(key.default if key.default is not None else Literal(None))
            if not all(isinstance(r, Literal) for r in results):
                raise self.refuse(
                    node,
                    "GROUP BY a CASE whose results are not literals",
                    "the group domain must be known before any holder encrypts",
                    "make every THEN and ELSE a literal label",
                )
            labels = dict.fromkeys(r.value for r in results if isinstance(r, Literal))
            return tuple(labels)
        if isinstance(key, (Extract, DateTrunc)) and isinstance(key.operand, Column):
            part = key.part if isinstance(key, Extract) else key.unit
            info = self.table.column(key.operand.name)
            assert info is not None
            if isinstance(key, Extract) and part != "year":
                return calendar_domain("extract", part, dt.date.min, dt.date.min)
            if info.bounds is None:
                raise self.error(
                    node,
                    f"column {info.name} publishes no date range, so the groups of "
                    f"{_label(node)} are unknown; ask its holders to publish the range, or "
                    "group by a CASE with literal labels",
                )
            low, high = info.bounds
            assert isinstance(low, dt.date) and isinstance(high, dt.date)
            kind = "extract" if isinstance(key, Extract) else "date_trunc"
            return calendar_domain(kind, part, low, high)
        raise self.refuse(
            node,
            "GROUP BY this expression",
            "its values cannot be derived from published information",
            "group by EXTRACT or date_trunc of a date column, or by a CASE with literal labels",
        )

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
    def aggregate(self, node: exp.Expression, condition: Expr | None = None) -> AggRef:
        """One aggregate call; ``condition`` is its FILTER (WHERE ...), applied per row.

        A filtered aggregate's measure is ``CASE WHEN condition THEN arg END``:
        rows failing the condition contribute NULL, which every aggregate skips,
        so the holder still sums one row expression per measure.
        """
        if isinstance(node, exp.Count):
            arg = node.this
            if isinstance(arg, exp.Distinct):
                raise self.refuse(node, "COUNT(DISTINCT ...)", *_DISTINCT)
            if isinstance(arg, exp.Star) or arg is None:
                if condition is None:
                    return self._agg_ref(AggCall("count_star", None))
                key = Case(((condition, Literal(1)),))
                return self._agg_ref(AggCall("count", self._measure_expr(key, "count", node)))
            return self._agg_ref(AggCall("count", self._measure(arg, "count", condition)))
        function = _AGGREGATES[type(node)]
        arg = node.this
        if isinstance(arg, exp.Distinct):
            raise self.refuse(node, f"{node_name(node)}(DISTINCT ...)", *_DISTINCT)
        return self._agg_ref(AggCall(function, self._measure(arg, function, condition)))

    def _measure(self, node: exp.Expression, function: str, condition: Expr | None) -> int:
        expr = self.row(node)
        if condition is not None:
            expr = Case(((condition, expr),))
        return self._measure_expr(expr, function, node)

    def _measure_expr(self, expr: Expr, function: str, node: exp.Expression) -> int:
        assert self.table is not None
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
        if isinstance(node, _DERIVED_KEYS) and _label(node) in self.group_columns:
            return GroupRef(self.group_columns.index(_label(node)))
        if isinstance(node, exp.Filter):
            inner = node.this
            if not (isinstance(inner, exp.Count) or type(inner) in _AGGREGATES):
                return self.out(inner, allow_alias)  # refused below with its own reason
            return self.aggregate(inner, self.row(node.expression.this))
        if isinstance(node, exp.Count) or type(node) in _AGGREGATES:
            return self.aggregate(node)
        if type(node) in _REFUSED_AGGREGATES:
            construct, why, instead = _REFUSED_AGGREGATES[type(node)]
            raise self.refuse(node, construct, why, instead)
        if isinstance(node, exp.AggFunc):
            raise self.refuse(
                node,
                node_name(node),
                "additive HE cannot compute it",
                "use COUNT, SUM, AVG, VAR_SAMP/VAR_POP or STDDEV_SAMP/STDDEV_POP",
            )
        if isinstance(node, exp.Column):
            return self._out_column(node, allow_alias)
        if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)) or (
            isinstance(node, (exp.Cast, exp.Sub, exp.Add))
            and not any(isinstance(n, (exp.Column, exp.AggFunc)) for n in node.walk())
        ):
            return Literal(self.literal(node))
        if isinstance(node, exp.Neg):
            if isinstance(node.this, exp.Literal):
                return Literal(self.literal(node))
            return Unary(UnaryOp.NEG, self.out(node.this, allow_alias))
        if isinstance(node, exp.Not):
            return Unary(UnaryOp.NOT, self.out(node.this, allow_alias))
        binary = COMPARE.get(type(node)) or ARITH.get(type(node)) or LOGIC.get(type(node))
        if binary is not None:
            return Binary(
                binary, self.out(node.this, allow_alias), self.out(node.expression, allow_alias)
            )
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return IsNull(self.out(node.this, allow_alias))
        if isinstance(node, exp.Between):
            return Between(
                self.out(node.this, allow_alias),
                self.out(node.args["low"], allow_alias),
                self.out(node.args["high"], allow_alias),
                negated=bool(node.args.get("negate")),
            )
        if isinstance(node, exp.In) and node.args.get("query") is None:
            return InList(
                self.out(node.this, allow_alias),
                tuple(self.literal(v) for v in node.expressions),
                negated=bool(node.args.get("negate")),
            )
        if isinstance(node, exp.Case):
            return self._out_case(node, allow_alias)
        if isinstance(node, exp.Cast) and sql_type_name(node.to) is not None:
            return Cast(self.out(node.this, allow_alias), str(sql_type_name(node.to)))
        if type(node) in _OUT_FUNCS:
            args = [node.this] + [a for a in (node.args.get("decimals"),) if a is not None]
            if isinstance(node, exp.Coalesce):
                args = [node.this, *node.expressions]
            if isinstance(node, exp.Nullif):
                args = [node.this, node.expression]
            return Func(_OUT_FUNCS[type(node)], tuple(self.out(a, allow_alias) for a in args))
        if isinstance(node, exp.Star):
            raise self.refuse(
                node, "SELECT *", "a row-level SELECT reveals rows", "ask for COUNT(*) or SUM(col)"
            )
        if isinstance(node, exp.Func):
            raise self.refuse(node, f"function {node_name(node)}")
        raise self.refuse(node, node.key.upper())

    def _out_case(self, node: exp.Case, allow_alias: bool) -> OutExpr:
        subject = node.this
        whens = []
        for branch in node.args.get("ifs") or []:
            condition = branch.this
            if subject is not None:
                condition = exp.EQ(this=subject.copy(), expression=condition)
            whens.append((self.out(condition, allow_alias), self.out(branch.args["true"])))
        default = node.args.get("default")
        return Case(tuple(whens), self.out(default, allow_alias) if default is not None else None)

    def _out_column(self, node: exp.Column, allow_alias: bool) -> OutExpr:
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
                "a row-level value never leaves its holder",
                f"GROUP BY {name} or aggregate it, e.g. SUM({name})",
            )
        return GroupRef(self.group_columns.index(name))

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
