"""SQL front end: parse an analyst's SELECT with sqlglot and compile it.

The result is a :class:`~unseen.engine.query.compiled.CompiledQuery`: an aggregate plan for
the federation plus the post-decryption work. Row-level pieces (WHERE,
aggregate arguments, FILTER, derived GROUP BY keys) are translated by
``unseen.engine.query.sqlrow``; this module binds the table, the groups and their domains,
the aggregates and the output expressions. What additive HE cannot answer
(MIN, MAX, MEDIAN, joins, subqueries, window functions, row-level SELECTs
...) is refused with :class:`~unseen.engine.errors.UnsupportedError`, naming the
construct, its line and column in the SQL text, why, and what to ask instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from unseen.engine.errors import PlanError, PolicyError, SqlSyntaxError
from unseen.engine.query.catalog import Catalog, TableInfo
from unseen.engine.query.compiled import AggCall, CompiledQuery, OrderKey, OutExpr
from unseen.engine.query.expr import (
    Case,
    Column,
    DateTrunc,
    Expr,
    Extract,
    LiteralValue,
    OutputRef,
    conjuncts,
    pinned_values,
)
from unseen.engine.query.plan import (
    AggregatePlan,
    GroupColumn,
    Measure,
    SlotCodec,
    check_plan,
    derived_group_use,
    derived_key_values,
    expr_type,
)
from unseen.engine.query.sqlout import DERIVED_KEYS, HISTOGRAM, ONE_ROW, OutputTranslator, key_label
from unseen.engine.query.types import SqlType

__all__ = ["compile_condition", "compile_sql"]

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
    exp.WithinGroup: ("PERCENTILE ... WITHIN GROUP", ONE_ROW, HISTOGRAM),
    exp.Lateral: ("LATERAL", "", ""),
    exp.Pivot: ("PIVOT", "", "GROUP BY the pivot column"),
    exp.TableSample: ("TABLESAMPLE", "", ""),
    exp.Qualify: ("QUALIFY", "rows never leave their holder", "use HAVING"),
    exp.Escape: ("LIKE ... ESCAPE", "", "use a pattern without escapes"),
}
_INTEGER = re.compile(r"^[0-9]+$")


@dataclass
class _Compiler(OutputTranslator):
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
            else GroupColumn(name, self._derived_domain(key, node, filter_expr), key)
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
            if isinstance(inner, DERIVED_KEYS):
                label = key_label(inner)
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

    def _derived_domain(
        self, key: Expr, node: exp.Expression, filter_expr: Expr | None
    ) -> tuple[LiteralValue, ...]:
        """A derived key's domain from published information (and the WHERE) alone.

        CASE keys take their literal labels; calendar keys take every unit
        between the column's published bounds (cyclic parts their cycle);
        ``WHERE key IN (...)`` narrows either (see ``plan.derived_key_values``,
        which holders run too).
        """
        assert self.table is not None
        if isinstance(key, Case) and derived_group_use(key) != "filter":
            raise self.refuse(
                node,
                "GROUP BY a CASE whose results are not literals",
                "the group domain must be known before any holder encrypts",
                "make every THEN and ELSE a literal label",
            )
        if not isinstance(key, (Case, Extract, DateTrunc)) or (
            not isinstance(key, Case) and not isinstance(key.operand, Column)
        ):
            raise self.refuse(
                node,
                "GROUP BY this expression",
                "its values cannot be derived from published information",
                "group by EXTRACT or date_trunc of a date column, or by a CASE with literal labels",
            )
        domain = derived_key_values(key, self.table, filter_expr)
        if domain is None:
            assert isinstance(key, (Extract, DateTrunc)) and isinstance(key.operand, Column)
            raise self.error(
                node,
                f"column {key.operand.name} publishes no date range, so the groups of "
                f"{key_label(node)} are unknown; list them with WHERE {key_label(node)} IN (...), "
                "or group by a CASE with literal labels",
            )
        if not domain:
            raise self.error(node, f"WHERE leaves no value of group key {key_label(node)}")
        return domain

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


_TOO_DEEP = "SQL does not parse: expression nested too deeply (at most 40 levels)"


def _parse_message(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else "invalid SQL"


def compile_sql(sql: str, catalog: Catalog, codec: SlotCodec | None = None) -> CompiledQuery:
    """Compile one SELECT against the federation's merged catalog."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SqlSyntaxError(f"SQL does not parse: {_parse_message(exc)}") from exc
    except RecursionError as exc:
        # sqlglot's recursive-descent parser runs out of stack near 50 nested
        # parentheses; plans refuse more than 40 levels anyway.
        raise SqlSyntaxError(_TOO_DEEP) from exc
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
    except RecursionError as exc:
        raise SqlSyntaxError(_TOO_DEEP) from exc
    compiler = _Compiler(text, catalog, SlotCodec())
    compiler.table = table
    compiler.table_names = {table.name.lower()}
    assert isinstance(node, exp.Expression)
    compiler.screen(node, "a filter reads one table")
    expr = compiler.row(node)
    if expr_type(expr, table, "filter") not in (None, SqlType("BOOLEAN")):
        raise PlanError(f"filter {text!r} is not a condition")
    return expr
