"""What a query will make each holder compute, told before anything runs.

``unseen query --explain "SQL"`` compiles the query against the federation's
catalog (the only thing it fetches) and prints the plan: the table and its
holders, the row filter, each GROUP BY key with the size and origin of its
domain, each measure with its exact grid, which columns are read for which
use, the privacy rules that apply and what the analyst finishes after
decryption. It touches no data and sends no plan.

The SQL shown for expressions comes from :class:`SqlText`, one more back end
of the expression tree (``unseen.engine.query.expr``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from unseen.engine.governance.voucher import plan_reads
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.compiled import CompiledQuery
from unseen.engine.query.expr import (
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
    Like,
    Literal,
    LiteralValue,
    OutputRef,
    Unary,
    UnaryOp,
    Visitor,
)
from unseen.engine.query.layout import layout_for
from unseen.engine.query.plan import Encoding
from unseen.engine.query.result import Result, json_value

__all__ = ["SqlText", "explain", "sql_text"]


def _literal(value: LiteralValue) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


class SqlText(Visitor[str]):
    """An expression as readable SQL (for people: holders never run this text)."""

    def __init__(self, aggregates: list[str] | None = None, groups: list[str] | None = None):
        self.aggregates = aggregates or []
        self.groups = groups or []

    def visit_Column(self, node: Column) -> str:
        return node.name

    def visit_Literal(self, node: Literal) -> str:
        return _literal(node.value)

    def visit_Binary(self, node: Binary) -> str:
        return f"({self.visit(node.left)} {node.op.value} {self.visit(node.right)})"

    def visit_Unary(self, node: Unary) -> str:
        prefix = "NOT " if node.op is UnaryOp.NOT else "-"
        return f"{prefix}{self.visit(node.operand)}"

    def visit_Between(self, node: Between) -> str:
        word = "NOT BETWEEN" if node.negated else "BETWEEN"
        low, high = self.visit(node.low), self.visit(node.high)
        return f"{self.visit(node.operand)} {word} {low} AND {high}"

    def visit_InList(self, node: InList) -> str:
        shown = ", ".join(_literal(v) for v in node.values[:5])
        more = f", ... {len(node.values) - 5} more" if len(node.values) > 5 else ""
        word = "NOT IN" if node.negated else "IN"
        return f"{self.visit(node.operand)} {word} ({shown}{more})"

    def visit_Like(self, node: Like) -> str:
        word = ("NOT " if node.negated else "") + ("ILIKE" if node.case_insensitive else "LIKE")
        return f"{self.visit(node.operand)} {word} {_literal(node.pattern)}"

    def visit_IsNull(self, node: IsNull) -> str:
        return f"{self.visit(node.operand)} IS {'NOT ' if node.negated else ''}NULL"

    def visit_Case(self, node: Case) -> str:
        arms = " ".join(f"WHEN {self.visit(c)} THEN {self.visit(r)}" for c, r in node.whens)
        default = f" ELSE {self.visit(node.default)}" if node.default is not None else ""
        return f"CASE {arms}{default} END"

    def visit_Func(self, node: Func) -> str:
        return f"{node.name.upper()}({', '.join(self.visit(a) for a in node.args)})"

    def visit_Extract(self, node: Extract) -> str:
        return f"EXTRACT({node.part.upper()} FROM {self.visit(node.operand)})"

    def visit_DateTrunc(self, node: DateTrunc) -> str:
        return f"date_trunc('{node.unit}', {self.visit(node.operand)})"

    def visit_Cast(self, node: Cast) -> str:
        return f"CAST({self.visit(node.operand)} AS {node.type})"

    def visit_AggRef(self, node: AggRef) -> str:
        return self.aggregates[node.index] if node.index < len(self.aggregates) else "?"

    def visit_GroupRef(self, node: GroupRef) -> str:
        return self.groups[node.index] if node.index < len(self.groups) else "?"

    def visit_OutputRef(self, node: OutputRef) -> str:
        return f"output #{node.index + 1}"


def sql_text(node: Expr) -> str:
    """``node`` as readable SQL."""
    return SqlText().visit(node)


def _grid(encoding: Encoding, scale: int, fraction_bits: int) -> str:
    if encoding is Encoding.INTEGER:
        return "exact integers"
    if encoding is Encoding.DECIMAL:
        return f"exact decimals, scale {scale} (grid 10^-{scale})"
    return f"binary grid 2^-{fraction_bits} (floating point)"


def explain(compiled: CompiledQuery, catalog: Catalog) -> Result:
    """The plan of ``compiled`` as a two-column table (``what``, ``detail``) plus ``meta.plan``."""
    plan = compiled.plan
    table = catalog.table(plan.table)
    holders = list(table.holders) if table is not None else []
    k = table.min_group_size if table is not None else None
    rows: list[list[Any]] = [
        ["table", f"{plan.table} at {len(holders)} holder(s): {', '.join(holders) or '?'}"],
        ["filter (WHERE)", sql_text(plan.filter) if plan.filter is not None else "all rows"],
    ]
    groups_meta: list[dict[str, Any]] = []
    for group in plan.groups:
        if group.expr is None:
            info = table.column(group.column) if table is not None else None
            published = info.domain if info is not None else None
            origin = "published domain" if published is not None else "listed in WHERE"
            if published is not None and len(group.domain) < len(published):
                origin = "published domain narrowed by WHERE"
        elif isinstance(group.expr, Case):
            origin = "the CASE labels"
        else:
            origin = "derived from the column's published date range"
        key = group.column if group.expr is None else sql_text(group.expr)
        rows.append(["group key", f"{key}: {len(group.domain)} values ({origin})"])
        groups_meta.append(
            {"key": key, "values": len(group.domain), "origin": origin, "derived": bool(group.expr)}
        )
    rows.append(["groups", f"{plan.group_count} (every holder answers all, in a fixed order)"])
    measures_meta = []
    for i, measure in enumerate(plan.measures):
        moments = ["non-NULL count"]
        if measure.want_sum or measure.want_square:
            moments.append("sum")
        if measure.want_square:
            moments.append("second moment")
        grid = _grid(measure.encoding, measure.decimal_scale, plan.codec.fraction_bits)
        text = sql_text(measure.expr)
        rows.append([f"measure {i + 1}", f"{text}: {', '.join(moments)}; {grid}"])
        measures_meta.append(
            {
                "expr": text,
                "moments": moments,
                "encoding": measure.encoding.value,
                "scale": measure.decimal_scale,
            }
        )
    reads = plan_reads(plan).get(plan.table.lower(), {})
    for column, uses in sorted(reads.items()):
        rows.append([f"column {column}", ", ".join(sorted(uses))])
    layout = layout_for(plan)
    rows.append(
        [
            "answer size",
            f"{layout.total_slots} slots, {layout.ciphertexts} ciphertext(s) per holder",
        ]
    )
    rules = [
        f"k = {k}: a group with 0 < rows < k at any holder is suppressed (NULL, listed in meta)",
        "dominance and differential privacy: as each holder's policy sets them, "
        "evaluated per measure on the rows' contributions",
        "the coordinator only adds ciphertexts; only the analyst's key decrypts the total",
    ]
    rows += [["rule", rule] for rule in rules]
    names = [
        f"{a.function.upper()}(measure {a.measure + 1})" if a.measure is not None else "COUNT(*)"
        for a in compiled.aggregates
    ]
    printer = SqlText(names, [str(g["key"]) for g in groups_meta])
    outputs = [printer.visit(o) for o in compiled.outputs]
    rows.append(
        [
            "after decryption",
            "; ".join(f"{c} = {o}" for c, o in zip(compiled.columns, outputs, strict=True)),
        ]
    )
    if compiled.having is not None:
        rows.append(["HAVING", printer.visit(compiled.having)])
    if compiled.order:
        keys = [printer.visit(o.expr) + (" DESC" if o.descending else "") for o in compiled.order]
        rows.append(["ORDER BY", ", ".join(keys)])
    if compiled.limit is not None or compiled.offset:
        rows.append(["LIMIT", f"{compiled.limit} OFFSET {compiled.offset}"])
    meta = {
        "plan": {
            "table": plan.table,
            "holders": holders,
            "filter": sql_text(plan.filter) if plan.filter is not None else None,
            "groups": groups_meta,
            "group_count": plan.group_count,
            "measures": measures_meta,
            "columns": {c: sorted(u) for c, u in sorted(reads.items())},
            "slots": layout.total_slots,
            "ciphertexts": layout.ciphertexts,
            "rules": {"k": k, "masks": True},
            "outputs": dict(zip(compiled.columns, outputs, strict=True)),
        },
        "ran": False,
    }
    return Result(["what", "detail"], [[w, json_value(d)] for w, d in rows], meta)
