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
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from engine.errors import QueryError
from engine.layout import GroupMoments
from engine.plan import Encoding
from engine.query import (
    AggRef,
    CompiledQuery,
    Const,
    GroupRef,
    OutBetween,
    OutBinary,
    OutExpr,
    OutFunc,
    OutIn,
    OutIsNull,
    OutputRef,
    OutUnary,
)
from engine.result import Result, json_value

__all__ = ["Row", "finish", "finish_aggregates"]


@dataclass
class Row:
    key: tuple[Any, ...]
    aggregates: list[Any]
    outputs: list[Any]
    suppressed: bool


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
        elif n == 0:
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


def evaluate(node: OutExpr, row: Row) -> Any:
    """Evaluate an output expression with SQL's three-valued logic."""
    if isinstance(node, AggRef):
        return row.aggregates[node.index]
    if isinstance(node, GroupRef):
        return row.key[node.index]
    if isinstance(node, OutputRef):
        return row.outputs[node.index]
    if isinstance(node, Const):
        return node.value
    if isinstance(node, OutUnary):
        value = evaluate(node.operand, row)
        if value is None:
            return None
        return (not value) if node.op == "NOT" else -value
    if isinstance(node, OutBinary):
        if node.op in ("AND", "OR"):
            left, right = evaluate(node.left, row), evaluate(node.right, row)
            if node.op == "AND":
                if left is False or right is False:
                    return False
                return None if left is None or right is None else True
            if left is True or right is True:
                return True
            return None if left is None or right is None else False
        left, right = evaluate(node.left, row), evaluate(node.right, row)
        if node.op in ("+", "-", "*", "/"):
            return _arith(node.op, left, right)
        return _compare(node.op, left, right)
    if isinstance(node, OutIsNull):
        return (evaluate(node.operand, row) is None) != node.negated
    if isinstance(node, OutBetween):
        value = evaluate(node.operand, row)
        low, high = evaluate(node.low, row), evaluate(node.high, row)
        inside = _and(_compare(">=", value, low), _compare("<=", value, high))
        return inside if inside is None or not node.negated else not inside
    if isinstance(node, OutIn):
        value = evaluate(node.operand, row)
        if value is None:
            return None
        results = [_compare("=", value, evaluate(v, row)) for v in node.values]
        found = True if True in results else (None if None in results else False)
        return found if found is None or not node.negated else not found
    if isinstance(node, OutFunc):
        return _function(node.name, [evaluate(a, row) for a in node.args])
    raise QueryError(f"unknown output node {type(node).__name__}")


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
) -> Result:
    """Turn decrypted group moments into the query's result table."""
    plan = query.plan
    keys: list[tuple[Any, ...]] = [()]
    for group in plan.groups:
        keys = [(*k, v) for k in keys for v in group.domain]
    rows: list[Row] = []
    suppressed_meta = []
    for index, (key, mom) in enumerate(zip(keys, moments, strict=True)):
        hidden = index in suppressed
        if query.grouped and mom.rows == 0 and not hidden:
            continue  # a group present at no holder does not exist
        aggregates = [None] * len(query.aggregates) if hidden else finish_aggregates(query, mom)
        row = Row(key, aggregates, [], hidden)
        for out in query.outputs:
            row.outputs.append(evaluate(out, row))
        if hidden:
            suppressed_meta.append(
                {
                    "group": dict(
                        zip((g.column for g in plan.groups), map(json_value, key), strict=True)
                    )
                }
            )
        elif query.having is not None and evaluate(query.having, row) is not True:
            continue
        rows.append(row)
    if query.order:
        rows = _order_rows(rows, query)
    end = None if query.limit is None else query.offset + query.limit
    rows = rows[query.offset : end]
    meta = dict(meta)
    meta["suppressed"] = suppressed_meta
    return Result(list(query.columns), [r.outputs for r in rows], meta)
