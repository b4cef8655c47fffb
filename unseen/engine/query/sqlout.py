"""From sqlglot's AST to the analyst's side of a query: aggregates and output expressions.

The select list, HAVING and ORDER BY range over finished aggregates and group
values. This translator turns each aggregate call into an
:class:`~unseen.engine.query.compiled.AggCall` over a plan *measure* (a row expression the
holders sum; ``FILTER (WHERE c)`` becomes ``CASE WHEN c THEN arg END``), and
everything around them into nodes of the one expression tree with
:class:`~unseen.engine.query.expr.AggRef` / :class:`~unseen.engine.query.expr.GroupRef` leaves.
Dispatch is by sqlglot class (``out_<Node>``), as in ``unseen.engine.query.sqlrow``.
Aggregates additive HE cannot give are refused with why and what to ask.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from unseen.engine.query.compiled import AggCall, OutExpr
from unseen.engine.query.expr import (
    AggRef,
    Between,
    Binary,
    Case,
    Cast,
    DateTrunc,
    Expr,
    Extract,
    Func,
    GroupRef,
    InList,
    IsNull,
    Literal,
    OutputRef,
    Unary,
    UnaryOp,
)
from unseen.engine.query.plan import Measure, encoding_for, expr_type
from unseen.engine.query.sqlrow import (
    ARITH,
    COMPARE,
    LOGIC,
    RowTranslator,
    node_name,
    sql_type_name,
)

__all__ = ["DERIVED_KEYS", "HISTOGRAM", "ONE_ROW", "OutputTranslator", "key_label"]

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
ONE_ROW = "it is one row's value, which k and dominance exist to hide, and sums cannot carry it"
HISTOGRAM = (
    "ask for a histogram, COUNT(*) ... GROUP BY CASE WHEN x < a THEN 'low' ... END, "
    "or for AVG and STDDEV"
)
_REFUSED_AGGREGATES: dict[type[exp.Expression], tuple[str, str, str]] = {
    exp.Min: ("MIN", ONE_ROW, "ask COUNT(*) ... WHERE x < v for a threshold, or " + HISTOGRAM),
    exp.Max: ("MAX", ONE_ROW, "ask COUNT(*) ... WHERE x > v for a threshold, or " + HISTOGRAM),
    exp.Median: ("MEDIAN", ONE_ROW, HISTOGRAM),
    exp.Quantile: ("a quantile", ONE_ROW, HISTOGRAM),
    exp.PercentileCont: ("PERCENTILE_CONT", ONE_ROW, HISTOGRAM),
    exp.PercentileDisc: ("PERCENTILE_DISC", ONE_ROW, HISTOGRAM),
    exp.ApproxQuantile: ("APPROX_QUANTILE", ONE_ROW, HISTOGRAM),
    exp.Mode: ("MODE", ONE_ROW, "ask COUNT(*) ... GROUP BY the column"),
    exp.ArgMax: ("ARG_MAX", ONE_ROW, HISTOGRAM),
    exp.ArgMin: ("ARG_MIN", ONE_ROW, HISTOGRAM),
}
_DISTINCT = (
    "distinct counts are not additive: a value held at two holders would count twice, "
    "and deduplicating needs the values themselves",
    "ask COUNT(*) ... GROUP BY the column over its published domain and count the non-empty groups",
)
# Derived GROUP BY keys whose domain unseen can derive from published information.
DERIVED_KEYS: tuple[type[exp.Expression], ...] = (
    exp.Extract,
    exp.TimestampTrunc,
    exp.DateTrunc,
    exp.Case,
    exp.Year,
    exp.Month,
)


def key_label(node: exp.Expression) -> str:
    """A derived key's name: its SQL text, as DuckDB prints it."""
    return node.sql("duckdb")


def _constant(node: exp.Expression) -> bool:
    """True when ``node`` reads no column and no aggregate (a literal to fold)."""
    return not any(isinstance(n, (exp.Column, exp.AggFunc, exp.Star)) for n in node.walk())


class OutputTranslator(RowTranslator):
    """Aggregates and output expressions; the SQL compiler inherits it.

    Subclasses provide the state it fills: ``measures``, ``aggregates``,
    ``group_columns`` (names of the GROUP BY keys) and ``aliases``.
    """

    measures: list[Measure]
    aggregates: list[AggCall]
    group_columns: list[str]
    aliases: dict[str, int]

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
        """An expression over finished aggregates and group values.

        Dispatch is by sqlglot class (``out_<Node>``); ``allow_alias`` lets
        ORDER BY and HAVING name an output column.
        """
        if isinstance(node, DERIVED_KEYS) and key_label(node) in self.group_columns:
            return GroupRef(self.group_columns.index(key_label(node)))
        method = getattr(self, "out_" + type(node).__name__, None)
        if method is not None:
            result: OutExpr = method(node, allow_alias)
            return result
        if type(node) in _AGGREGATES:
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
        binary = COMPARE.get(type(node)) or ARITH.get(type(node)) or LOGIC.get(type(node))
        if binary is not None:
            if isinstance(node, (exp.Add, exp.Sub)) and _constant(node):
                return Literal(self.literal(node))  # date arithmetic folds
            return Binary(
                binary, self.out(node.this, allow_alias), self.out(node.expression, allow_alias)
            )
        if type(node) in _OUT_FUNCS:
            return self._out_function(node, allow_alias)
        if isinstance(node, exp.Func):
            raise self.refuse(node, f"function {node_name(node)}")
        raise self.refuse(node, node.key.upper())

    def out_Paren(self, node: exp.Paren, allow_alias: bool) -> OutExpr:
        return self.out(node.this, allow_alias)

    def out_Filter(self, node: exp.Filter, allow_alias: bool) -> OutExpr:
        inner = node.this
        if not (isinstance(inner, exp.Count) or type(inner) in _AGGREGATES):
            return self.out(inner, allow_alias)  # refused there with its own reason
        return self.aggregate(inner, self.row(node.expression.this))

    def out_Count(self, node: exp.Count, allow_alias: bool) -> OutExpr:
        return self.aggregate(node)

    def out_Column(self, node: exp.Column, allow_alias: bool) -> OutExpr:
        return self._out_column(node, allow_alias)

    def _out_constant(self, node: exp.Expression, allow_alias: bool) -> OutExpr:
        return Literal(self.literal(node))

    out_Literal = _out_constant
    out_Null = _out_constant
    out_Boolean = _out_constant

    def out_Neg(self, node: exp.Neg, allow_alias: bool) -> OutExpr:
        if isinstance(node.this, exp.Literal):
            return Literal(self.literal(node))
        return Unary(UnaryOp.NEG, self.out(node.this, allow_alias))

    def out_Not(self, node: exp.Not, allow_alias: bool) -> OutExpr:
        return Unary(UnaryOp.NOT, self.out(node.this, allow_alias))

    def out_Is(self, node: exp.Is, allow_alias: bool) -> OutExpr:
        if not isinstance(node.expression, exp.Null):
            raise self.refuse(node, f"IS {node.expression.sql('duckdb')}", instead="use IS NULL")
        return IsNull(self.out(node.this, allow_alias))

    def out_Between(self, node: exp.Between, allow_alias: bool) -> OutExpr:
        return Between(
            self.out(node.this, allow_alias),
            self.out(node.args["low"], allow_alias),
            self.out(node.args["high"], allow_alias),
            negated=bool(node.args.get("negate")),
        )

    def out_In(self, node: exp.In, allow_alias: bool) -> OutExpr:
        if node.args.get("query") is not None:
            raise self.refuse(node, "IN (subquery)", instead="list literal values")
        return InList(
            self.out(node.this, allow_alias),
            tuple(self.literal(v) for v in node.expressions),
            negated=bool(node.args.get("negate")),
        )

    def out_Cast(self, node: exp.Cast, allow_alias: bool) -> OutExpr:
        if _constant(node):
            return Literal(self.literal(node))
        target = sql_type_name(node.to)
        if target is None:
            raise self.refuse(node, f"CAST to {node.to.sql('duckdb')}")
        return Cast(self.out(node.this, allow_alias), target)

    def out_Star(self, node: exp.Star, allow_alias: bool) -> OutExpr:
        raise self.refuse(
            node, "SELECT *", "a row-level SELECT reveals rows", "ask for COUNT(*) or SUM(col)"
        )

    def _out_function(self, node: exp.Expression, allow_alias: bool) -> OutExpr:
        args = [node.this] + [a for a in (node.args.get("decimals"),) if a is not None]
        if isinstance(node, exp.Coalesce):
            args = [node.this, *node.expressions]
        if isinstance(node, exp.Nullif):
            args = [node.this, node.expression]
        return Func(_OUT_FUNCS[type(node)], tuple(self.out(a, allow_alias) for a in args))

    def out_Extract(self, node: exp.Extract, allow_alias: bool) -> OutExpr:
        part = node.this.name.lower()
        return Extract(part, self.out(node.expression, allow_alias))

    def _out_trunc(self, node: exp.Expression, allow_alias: bool) -> OutExpr:
        unit = node.args["unit"].name.lower() if node.args.get("unit") is not None else ""
        return DateTrunc(unit, self.out(node.this, allow_alias))

    out_TimestampTrunc = _out_trunc
    out_DateTrunc = _out_trunc

    def out_Case(self, node: exp.Case, allow_alias: bool) -> OutExpr:
        return self._out_case(node, allow_alias)

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
