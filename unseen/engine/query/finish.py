"""Finish a query after decryption: aggregates from moments, then SQL's last steps.

From each group's exact moments the analyst computes the requested
aggregates with SQL's NULL rules (SUM and AVG of no values are NULL,
VAR_SAMP of one value is NULL, COUNT is never NULL), evaluates the select
list, applies HAVING, ORDER BY (NULLS LAST by default, as DuckDB) and
LIMIT/OFFSET. Arithmetic follows DuckDB: ``/`` is floating division with
IEEE results for a zero divisor.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from unseen.engine.errors import QueryError
from unseen.engine.query.compiled import CompiledQuery, OutExpr
from unseen.engine.query.dates import cast_value, extract_part, truncate
from unseen.engine.query.expr import (
    AggRef,
    Between,
    Binary,
    BinaryOp,
    Case,
    Cast,
    DateTrunc,
    Expr,
    Extract,
    Func,
    GroupRef,
    InList,
    IsNull,
    Like,
    Literal,
    OutputRef,
    Unary,
    UnaryOp,
    Visitor,
)
from unseen.engine.query.layout import GroupMoments
from unseen.engine.query.plan import Encoding
from unseen.engine.query.result import Result, json_value
from unseen.engine.query.types import SqlType

__all__ = ["Row", "evaluate", "finish", "finish_aggregates"]


@dataclass
class Row:
    key: tuple[Any, ...]
    aggregates: list[Any]
    outputs: list[Any]
    suppressed: bool
    # dp mode: the noise sd of each output that is an aggregate (None elsewhere).
    noise: list[float | None] | None = None


def _decimal(value: Fraction, scale: int) -> Decimal:
    scaled = value * 10**scale
    assert scaled.denominator == 1
    return Decimal(scaled.numerator).scaleb(-scale)


def finish_aggregates(query: CompiledQuery, moments: GroupMoments) -> list[Any]:
    """The values of every AggCall for one group, from its exact moments."""
    out: list[Any] = []
    for call in query.aggregates:
        if call.function == "count_star":
            out.append(moments.rows)
            continue
        assert call.measure is not None
        measure = query.plan.measures[call.measure]
        mm = moments.measures[call.measure]
        n = mm.count
        if call.function == "count":
            out.append(n)
        elif n == 0 or (n < 0 and call.function != "sum"):
            # A dp count is noisy and may be negative: a noisy SUM stands (unbiased),
            # a ratio over a non-positive count does not.
            out.append(None)
        elif call.function == "sum":
            assert mm.total is not None
            if measure.encoding is Encoding.INTEGER:
                out.append(int(mm.total))
            elif measure.encoding is Encoding.DECIMAL:
                out.append(_decimal(mm.total, measure.decimal_scale))
            else:
                out.append(float(mm.total))
        elif call.function == "avg":
            assert mm.total is not None
            out.append(float(mm.total / n))
        else:
            assert mm.square is not None
            m2 = max(mm.square, Fraction(0))
            sample = call.function.endswith("samp")
            if sample and n < 2:
                out.append(None)
                continue
            variance = float(m2 / (n - 1 if sample else n))
            out.append(math.sqrt(variance) if call.function.startswith("stddev") else variance)
    return out


def _num(value: Any) -> Any:
    # Decimal meets float as float, the way an engine widens DECIMAL to DOUBLE.
    return float(value) if isinstance(value, Decimal) else value


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, Decimal) != isinstance(b, Decimal) and (
        isinstance(a, float) or isinstance(b, float)
    ):
        a, b = _num(a), _num(b)
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        x, y = float(a), float(b)
    except TypeError as exc:
        raise QueryError(f"cannot apply {op} to {a!r} and {b!r}") from exc
    if y == 0.0:
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    try:
        return {
            "=": a == b,
            "<>": a != b,
            "<": a < b,
            "<=": a <= b,
            ">": a > b,
            ">=": a >= b,
        }[op]
    except TypeError as exc:
        raise QueryError(f"cannot compare {a!r} with {b!r}") from exc


def _round(value: Any, digits: int) -> Any:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    if not math.isfinite(value):
        return value
    factor = 10.0**digits
    return math.copysign(math.floor(abs(value) * factor + 0.5), value) / factor


def _function(name: str, args: list[Any]) -> Any:
    if name == "coalesce":
        return next((a for a in args if a is not None), None)
    if name == "nullif":
        return None if _compare("=", args[0], args[1]) is True else args[0]
    value = args[0]
    if value is None:
        return None
    if name == "abs":
        return abs(value)
    if name == "sqrt":
        number = float(value)
        return math.sqrt(number) if number >= 0 else math.nan
    if name == "round":
        digits = int(args[1]) if len(args) > 1 and args[1] is not None else 0
        return _round(value, digits)
    raise QueryError(f"unknown function {name}")


class _Evaluator(Visitor[Any]):
    """Evaluate an output expression over one result row, with SQL's three-valued logic."""

    def __init__(self, row: Row):
        self.row = row

    def unsupported(self, node: Expr) -> Any:
        raise QueryError(f"unknown output node {type(node).__name__}")

    def visit_AggRef(self, node: AggRef) -> Any:
        return self.row.aggregates[node.index]

    def visit_GroupRef(self, node: GroupRef) -> Any:
        return self.row.key[node.index]

    def visit_OutputRef(self, node: OutputRef) -> Any:
        return self.row.outputs[node.index]

    def visit_Literal(self, node: Literal) -> Any:
        return node.value

    def visit_Unary(self, node: Unary) -> Any:
        value = self.visit(node.operand)
        if value is None:
            return None
        return (not value) if node.op is UnaryOp.NOT else -value

    def visit_Binary(self, node: Binary) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if node.op is BinaryOp.AND:
            return _and(left, right)
        if node.op is BinaryOp.OR:
            if left is True or right is True:
                return True
            return None if left is None or right is None else False
        if node.op.is_arithmetic:
            return _arith(node.op.value, left, right)
        return _compare(node.op.value, left, right)

    def visit_IsNull(self, node: IsNull) -> Any:
        return (self.visit(node.operand) is None) != node.negated

    def visit_Between(self, node: Between) -> Any:
        value = self.visit(node.operand)
        low, high = self.visit(node.low), self.visit(node.high)
        inside = _and(_compare(">=", value, low), _compare("<=", value, high))
        return inside if inside is None or not node.negated else not inside

    def visit_InList(self, node: InList) -> Any:
        value = self.visit(node.operand)
        if value is None:
            return None
        results = [_compare("=", value, v) for v in node.values]
        found = True if True in results else (None if None in results else False)
        return found if found is None or not node.negated else not found

    def visit_Like(self, node: Like) -> Any:
        value = self.visit(node.operand)
        if value is None:
            return None
        # SQL LIKE: % is any run, _ one character; everything else literal.
        pattern = "".join(
            ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in node.pattern
        )
        flags = re.IGNORECASE | re.DOTALL if node.case_insensitive else re.DOTALL
        found = re.fullmatch(pattern, str(value), flags) is not None
        return found != node.negated

    def visit_Case(self, node: Case) -> Any:
        for condition, result in node.whens:
            if self.visit(condition) is True:
                return self.visit(result)
        return None if node.default is None else self.visit(node.default)

    def visit_Func(self, node: Func) -> Any:
        return _function(node.name, [self.visit(a) for a in node.args])

    def visit_Extract(self, node: Extract) -> Any:
        return extract_part(node.part, self.visit(node.operand))

    def visit_DateTrunc(self, node: DateTrunc) -> Any:
        return truncate(node.unit, self.visit(node.operand))

    def visit_Cast(self, node: Cast) -> Any:
        return cast_value(self.visit(node.operand), SqlType.parse(node.type))


def evaluate(node: OutExpr, row: Row) -> Any:
    """Evaluate an output expression with SQL's three-valued logic."""
    return _Evaluator(row).visit(node)


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _order_rows(rows: list[Row], query: CompiledQuery) -> list[Row]:
    def compare(x: Row, y: Row) -> int:
        for key in query.order:
            a, b = evaluate(key.expr, x), evaluate(key.expr, y)
            if a is None or b is None:
                if a is None and b is None:
                    continue
                first = -1 if key.nulls_first else 1
                return first if a is None else -first
            a, b = _num(a), _num(b)
            try:
                if a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
                    continue
                less = a < b
            except TypeError as exc:
                raise QueryError(f"cannot order {a!r} against {b!r}") from exc
            return (1 if less else -1) if key.descending else (-1 if less else 1)
        return 0

    return sorted(rows, key=functools.cmp_to_key(compare))


def finish(
    query: CompiledQuery,
    moments: Sequence[GroupMoments],
    suppressed: set[int],
    meta: dict[str, Any],
    noise: Callable[[GroupMoments], list[float | None]] | None = None,
    reasons: Mapping[int, str] | None = None,
) -> Result:
    """Turn decrypted group moments into the query's result table.

    ``noise`` (dp mode) gives each aggregate's noise sd for a group; the
    result's ``meta["noise_sd"]`` then lists it per output cell, row by row.
    Each suppressed group is listed in ``meta["suppressed"]`` with its key
    and, when the holders said, the ``reason`` (``unseen.engine.privacy.suppression``).
    """
    plan = query.plan
    keys: list[tuple[Any, ...]] = [()]
    for group in plan.groups:
        keys = [(*k, v) for k in keys for v in group.domain]
    rows: list[Row] = []
    suppressed_meta = []
    for index, (key, mom) in enumerate(zip(keys, moments, strict=True)):
        hidden = index in suppressed
        if query.grouped and mom.rows == 0 and not hidden and noise is None:
            continue  # a group present at no holder does not exist
        aggregates = [None] * len(query.aggregates) if hidden else finish_aggregates(query, mom)
        row = Row(key, aggregates, [], hidden)
        for out in query.outputs:
            row.outputs.append(evaluate(out, row))
        if noise is not None and not hidden:
            sds = noise(mom)
            row.noise = [sds[o.index] if isinstance(o, AggRef) else None for o in query.outputs]
        if hidden:
            entry: dict[str, Any] = {
                "group": dict(
                    zip((g.column for g in plan.groups), map(json_value, key), strict=True)
                )
            }
            if reasons and reasons.get(index):
                entry["reason"] = reasons[index]
            suppressed_meta.append(entry)
        elif query.having is not None and evaluate(query.having, row) is not True:
            continue
        rows.append(row)
    if query.order:
        rows = _order_rows(rows, query)
    end = None if query.limit is None else query.offset + query.limit
    rows = rows[query.offset : end]
    meta = dict(meta)
    meta["suppressed"] = suppressed_meta
    if noise is not None:
        meta["noise_sd"] = [r.noise or [None] * len(query.outputs) for r in rows]
    return Result(list(query.columns), [r.outputs for r in rows], meta)
