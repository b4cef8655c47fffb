"""Aggregate plans and their validation against a table's catalog entry.

The plan is the contract between analyst, coordinator and holders: which
table, which rows (``filter``), which groups in which slot order
(``groups``, each with its domain), which measures and how their sums are
laid on an exact grid (``Measure.encoding``), and the slot codec. The same
:func:`check_plan` runs at the coordinator (to fail fast) and at each holder
(which trusts nobody), before any SQL is built.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from decimal import Decimal

from engine.catalog import TableInfo
from engine.errors import PlanError, PolicyError
from engine.expr import (
    Between,
    Binary,
    Column,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    LiteralValue,
    Unary,
    UnaryOp,
    depth,
    walk,
)
from engine.types import SqlType

__all__ = [
    "DEFAULT_LIMITS",
    "AggregatePlan",
    "Encoding",
    "GroupColumn",
    "Limits",
    "Measure",
    "SlotCodec",
    "check_expression_size",
    "check_plan",
    "encoding_for",
    "expr_type",
]


class Encoding(enum.Enum):
    """The exact grid a measure's sums are laid on before encryption."""

    INTEGER = "integer"  # grid 1: sums of integers are exact
    DECIMAL = "decimal"  # grid 10^-scale: sums of decimals are exact
    FLOAT = "float"  # grid 2^-fraction_bits


@dataclass(frozen=True)
class Measure:
    """One aggregated input expression and which moments of it are needed."""

    expr: Expr
    encoding: Encoding
    decimal_scale: int = 0
    want_sum: bool = True
    want_square: bool = False


@dataclass(frozen=True)
class GroupColumn:
    column: str
    domain: tuple[LiteralValue, ...]


@dataclass(frozen=True)
class SlotCodec:
    """How exact integers are split into CKKS slots (see ``engine.layout``).

    Limbs of ``limb_bits`` keep every slot sum far below the magnitude where
    CKKS rounding (about 2^-20 absolute at 2^34 with scale 2^50) could flip
    the nearest integer, even when a thousand holders add their limbs.
    """

    limb_bits: int = 20
    count_limbs: int = 3  # 60 bits of rows
    sum_limbs: int = 6  # 120 bits: 2^80 at the float grid, 2^120 for integers
    square_limbs: int = 8  # 160 bits: 2^120 at the float grid
    fraction_bits: int = 40  # float grid 2^-40 (about 9e-13)
    slots: int = 4096


@dataclass(frozen=True)
class Limits:
    """Bounds a node enforces on plans before doing any work."""

    max_groups: int = 16_384
    # 16 ciphertexts per holder per answer: what one query may make a node hold.
    max_slots: int = 1 << 16
    max_measures: int = 64
    # protobuf's parser stops at 100 nested messages; an expression level is
    # two (Expr, BinaryExpr) under three of the request's own: 40 stays clear.
    max_depth: int = 40
    # Each value is a bound parameter at the holder: 10 000 cost a SQLite holder
    # about 6 s of CPU; a hundred thousand would cost ten times more. The limit
    # holds for all IN lists of a plan together, not per list.
    max_in_values: int = 10_000
    max_group_columns: int = 8
    # Expression nodes in a whole plan (filter and every measure). Holder cost
    # grows faster than linearly with size (SQL generation, the engine's
    # binder): 4 000 nodes cost a holder 1.2-2.4 CPU-s and ~100 MB, ~96 000
    # (once accepted) ~90 CPU-s and 1.9 GB. 1 000 cost ~0.25 s and ~15 MB and
    # leave room for 64 measures of a dozen operators each (TPC-H Q1 needs ~30).
    max_nodes: int = 1_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class AggregatePlan:
    table: str
    filter: Expr | None
    groups: tuple[GroupColumn, ...]
    measures: tuple[Measure, ...]
    codec: SlotCodec = field(default_factory=SlotCodec)

    @property
    def group_count(self) -> int:
        return math.prod(len(g.domain) for g in self.groups)


_LITERAL_TYPES: dict[type, SqlType] = {
    bool: SqlType("BOOLEAN"),
    int: SqlType("INTEGER"),
    float: SqlType("FLOAT"),
    str: SqlType("VARCHAR"),
    dt.datetime: SqlType("TIMESTAMP"),
    dt.date: SqlType("DATE"),
}


def _literal_type(value: LiteralValue) -> SqlType | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return SqlType("DECIMAL", max(len(value.as_tuple().digits), scale, 1), scale)
    for kind, sql_type in _LITERAL_TYPES.items():
        if type(value) is kind:
            return sql_type
    raise PlanError(f"unsupported literal {value!r}")


def _comparable(a: SqlType | None, b: SqlType | None) -> bool:
    if a is None or b is None:
        return True
    if a.numeric and b.numeric:
        return True
    temporal = {"DATE", "TIMESTAMP"}
    # A string literal compared with a date is cast by the engine, as in SQL.
    if a.kind in temporal and b.kind in temporal | {"VARCHAR"}:
        return True
    if b.kind in temporal and a.kind == "VARCHAR":
        return True
    return a.kind == b.kind


_BOOLEAN = SqlType("BOOLEAN")


def expr_type(node: Expr, table: TableInfo, use: str) -> SqlType | None:
    """Type-check ``node`` against ``table``; None is the type of a bare NULL.

    Every column read must exist and permit ``use`` (``filter`` or
    ``aggregate``); the error names the column so the analyst can fix the query.
    """
    if isinstance(node, Column):
        col = table.column(node.name)
        if col is None:
            raise PlanError(f"table {table.name} has no column {node.name}")
        if not col.allows(use):
            raise PolicyError(f"column {table.name}.{col.name} may not be used to {use}")
        if col.type.kind == "OTHER":
            raise PlanError(f"column {table.name}.{col.name} has a type unseen cannot use")
        return col.type
    if isinstance(node, Literal):
        return _literal_type(node.value)
    if isinstance(node, Binary):
        left = expr_type(node.left, table, use)
        right = expr_type(node.right, table, use)
        if node.op.is_logical:
            for side in (left, right):
                if side is not None and side != _BOOLEAN:
                    raise PlanError(f"{node.op.value} needs boolean operands, not {side}")
            return _BOOLEAN
        if node.op.is_comparison:
            if not _comparable(left, right):
                raise PlanError(f"cannot compare {left} with {right}")
            return _BOOLEAN
        for side in (left, right):
            if side is not None and not side.numeric:
                raise PlanError(f"arithmetic {node.op.value} needs numbers, not {side}")
        if node.op.value == "/" or SqlType("FLOAT") in (left, right):
            return SqlType("FLOAT")
        if left is not None and right is not None and "DECIMAL" in (left.kind, right.kind):
            return SqlType("DECIMAL", 38, max(left.scale, right.scale))
        return SqlType("INTEGER")
    if isinstance(node, Unary):
        operand = expr_type(node.operand, table, use)
        if node.op is UnaryOp.NOT:
            if operand is not None and operand != _BOOLEAN:
                raise PlanError(f"NOT needs a boolean operand, not {operand}")
            return _BOOLEAN
        if operand is not None and not operand.numeric:
            raise PlanError(f"unary minus needs a number, not {operand}")
        return operand
    if isinstance(node, Between):
        kinds = [expr_type(n, table, use) for n in (node.operand, node.low, node.high)]
        if not (_comparable(kinds[0], kinds[1]) and _comparable(kinds[0], kinds[2])):
            raise PlanError(f"cannot compare {kinds[0]} with BETWEEN bounds {kinds[1]}, {kinds[2]}")
        return _BOOLEAN
    if isinstance(node, InList):
        operand = expr_type(node.operand, table, use)
        for value in node.values:
            if not _comparable(operand, _literal_type(value)):
                raise PlanError(f"cannot compare {operand} with IN value {value!r}")
        return _BOOLEAN
    if isinstance(node, Like):
        operand = expr_type(node.operand, table, use)
        if operand is not None and operand.kind != "VARCHAR":
            raise PlanError(f"LIKE needs a text operand, not {operand}")
        return _BOOLEAN
    if isinstance(node, IsNull):
        expr_type(node.operand, table, use)
        return _BOOLEAN
    raise PlanError(f"unknown expression node {type(node).__name__}")


def encoding_for(sql_type: SqlType | None) -> tuple[Encoding, int]:
    """The exact grid for sums of a measure of type ``sql_type``."""
    if sql_type is None or sql_type.kind == "INTEGER" or sql_type.kind == "BOOLEAN":
        return Encoding.INTEGER, 0
    if sql_type.kind == "DECIMAL" and sql_type.scale <= 18:
        return Encoding.DECIMAL, sql_type.scale
    if sql_type.numeric:
        return Encoding.FLOAT, 0
    raise PlanError(f"cannot sum a {sql_type} value")


def _check_codec(codec: SlotCodec) -> None:
    if not 8 <= codec.limb_bits <= 24:
        raise PlanError("codec limb_bits must be between 8 and 24")
    if codec.count_limbs * codec.limb_bits < 40:
        raise PlanError("codec must carry counts of at least 40 bits")
    if not 1 <= codec.sum_limbs <= 16 or not 1 <= codec.square_limbs <= 16:
        raise PlanError("codec sum and square limbs must be between 1 and 16")
    if not 0 <= codec.fraction_bits <= 64:
        raise PlanError("codec fraction_bits must be between 0 and 64")
    if codec.slots <= 0 or codec.slots & (codec.slots - 1):
        raise PlanError("codec slots must be a power of two")


def check_expression_size(roots: list[Expr], limits: Limits | None = None) -> None:
    """Refuse expressions (a plan's, or a model's feature filters) beyond the size limits:
    nodes and IN values counted over all of ``roots`` together, and depth per root."""
    limits = limits or DEFAULT_LIMITS
    nodes = values = 0
    for root in roots:
        if depth(root) > limits.max_depth:
            raise PlanError(f"expression nested deeper than {limits.max_depth} levels")
        for sub in walk(root):
            nodes += 1
            if isinstance(sub, InList):
                values += len(sub.values)
    if nodes > limits.max_nodes:
        raise PlanError(f"expressions of {nodes} nodes, more than {limits.max_nodes}")
    if values > limits.max_in_values:
        raise PlanError(f"IN lists of {values} values in all, more than {limits.max_in_values}")


def check_plan(plan: AggregatePlan, table: TableInfo, limits: Limits | None = None) -> None:
    """Refuse a plan that does not fit ``table``'s schema and policy, or the limits."""
    limits = limits or DEFAULT_LIMITS
    _check_codec(plan.codec)
    if len(plan.measures) > limits.max_measures:
        raise PlanError(f"too many measures ({len(plan.measures)} > {limits.max_measures})")
    if len(plan.groups) > limits.max_group_columns:
        raise PlanError(f"too many GROUP BY columns (> {limits.max_group_columns})")
    nodes = [plan.filter] if plan.filter is not None else []
    nodes += [m.expr for m in plan.measures]
    check_expression_size(nodes, limits)
    if plan.filter is not None:
        kind = expr_type(plan.filter, table, "filter")
        if kind is not None and kind != _BOOLEAN:
            raise PlanError(f"WHERE must be a condition, not a {kind} value")
    seen: set[str] = set()
    for group in plan.groups:
        col = table.column(group.column)
        if col is None:
            raise PlanError(f"table {table.name} has no column {group.column}")
        if not col.allows("group"):
            raise PolicyError(f"column {table.name}.{col.name} may not be used to group")
        if col.name.lower() in seen:
            raise PlanError(f"column {col.name} appears twice in GROUP BY")
        seen.add(col.name.lower())
        if not group.domain:
            raise PlanError(f"group column {col.name} has an empty domain")
        if len(set(map(_hashable, group.domain))) != len(group.domain):
            raise PlanError(f"group column {col.name} has repeated domain values")
        for value in group.domain:
            if not _comparable(col.type, _literal_type(value)):
                raise PlanError(f"domain value {value!r} does not fit {col.name} ({col.type})")
    if plan.group_count > limits.max_groups:
        raise PlanError(
            f"the group domain has {plan.group_count} groups, more than {limits.max_groups}; "
            "narrow it with WHERE ... IN (...)"
        )
    for measure in plan.measures:
        kind = expr_type(measure.expr, table, "aggregate")
        if measure.want_sum or measure.want_square:
            if kind is not None and not kind.numeric:
                raise PlanError(f"cannot sum a {kind} value")
            expected = encoding_for(kind)
            if (measure.encoding, measure.decimal_scale) != expected and not (
                measure.encoding is Encoding.FLOAT and kind is not None and kind.numeric
            ):
                raise PlanError(
                    f"measure encoding {measure.encoding.value} does not fit a {kind} value"
                )


def _hashable(value: LiteralValue) -> tuple[str, object]:
    return (type(value).__name__, value)
