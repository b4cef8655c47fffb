"""Row-level expression nodes of a plan: small, immutable, typed.

A plan's filter and each measure are trees of these nodes. They are built by
the SQL front end (``engine.sql``), carried over the wire (``engine.serde``),
checked against the catalog (``engine.plan``) and turned back into SQL by the
holder (``engine.pushdown``), which binds every literal as a parameter.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "Between",
    "Binary",
    "BinaryOp",
    "Column",
    "Expr",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "LiteralValue",
    "Unary",
    "UnaryOp",
    "children",
    "column_names",
    "conjuncts",
    "depth",
    "literal_kind",
    "pinned_values",
    "walk",
]

LiteralValue = None | bool | int | float | Decimal | str | dt.date | dt.datetime


class BinaryOp(enum.Enum):
    EQ = "="
    NE = "<>"
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "AND"
    OR = "OR"
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"

    @property
    def is_comparison(self) -> bool:
        return self in _COMPARISONS

    @property
    def is_logical(self) -> bool:
        return self in (BinaryOp.AND, BinaryOp.OR)

    @property
    def is_arithmetic(self) -> bool:
        return self in (BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV)


_COMPARISONS = frozenset(
    {BinaryOp.EQ, BinaryOp.NE, BinaryOp.LT, BinaryOp.LE, BinaryOp.GT, BinaryOp.GE}
)


class UnaryOp(enum.Enum):
    NOT = "NOT"
    NEG = "-"


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    value: LiteralValue


@dataclass(frozen=True)
class Binary:
    op: BinaryOp
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Unary:
    op: UnaryOp
    operand: Expr


@dataclass(frozen=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class InList:
    operand: Expr
    values: tuple[LiteralValue, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    operand: Expr
    pattern: str
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool = False


Expr = Column | Literal | Binary | Unary | Between | InList | Like | IsNull


def literal_kind(value: LiteralValue) -> str:
    """The wire kind of a literal value (bool is tested before int on purpose)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    raise TypeError(f"not a literal value: {type(value).__name__}")


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``node``."""
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, (Unary,)):
        return (node.operand,)
    if isinstance(node, (InList, Like, IsNull)):
        return (node.operand,)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, without recursion."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def column_names(node: Expr | None) -> set[str]:
    """Names of the columns an expression reads."""
    if node is None:
        return set()
    return {n.name for n in walk(node) if isinstance(n, Column)}


def conjuncts(node: Expr | None) -> list[Expr]:
    """The terms of a chain of ANDs, left to right (iteratively, like :func:`depth`)."""
    out: list[Expr] = []
    stack = [] if node is None else [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Binary) and current.op is BinaryOp.AND:
            stack += [current.right, current.left]
        else:
            out.append(current)
    return out


def pinned_values(conjunct: Expr) -> tuple[str, tuple[LiteralValue, ...]] | None:
    """``(column, values)`` when ``conjunct`` pins a column to listed values, else None.

    That is ``c IN (v, ...)`` (not negated) or ``c = v`` / ``v = c``: what both
    a group domain and an entity-scoped voucher are narrowed by.
    """
    if isinstance(conjunct, InList) and not conjunct.negated:
        if isinstance(conjunct.operand, Column):
            return conjunct.operand.name, conjunct.values
    elif isinstance(conjunct, Binary) and conjunct.op is BinaryOp.EQ:
        for a, b in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
            if isinstance(a, Column) and isinstance(b, Literal):
                return a.name, (b.value,)
    return None


def depth(node: Expr) -> int:
    """Height of the tree, computed iteratively so hostile depth cannot blow the stack."""
    best = 0
    stack = [(node, 1)]
    while stack:
        current, level = stack.pop()
        best = max(best, level)
        stack.extend((child, level + 1) for child in children(current))
    return best
