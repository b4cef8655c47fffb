"""The one expression tree of unseen: small, immutable, typed nodes and a visitor.

Every expression a query holds is a tree of these nodes: the plan's filter,
each measure and each derived GROUP BY key (row level, evaluated by holders),
and the select list, HAVING and ORDER BY (output level, evaluated by the
analyst over finished aggregates). Output-only leaves (:class:`AggRef`,
:class:`GroupRef`, :class:`OutputRef`) never enter a plan: validation refuses
them there.

Back ends are :class:`Visitor` subclasses dispatched by node type
(``visit_<NodeClass>``, as sqlglot's planner and ibis's compiler do): SQL
pushdown (``unseen.engine.data.pushdown``), wire serde (``unseen.engine.transport.serde``), type
checking
(``unseen.engine.query.plan``) and evaluation after decryption (``unseen.engine.query.finish``). A
new
construct is one node class here plus one ``visit_`` method per back end; a
back end that lacks the method refuses the node by name instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Generic, TypeVar

__all__ = [
    "DATE_TRUNC_UNITS",
    "EXTRACT_PARTS",
    "FUNCTIONS",
    "AggRef",
    "Between",
    "Binary",
    "BinaryOp",
    "Case",
    "Cast",
    "Column",
    "DateTrunc",
    "Expr",
    "Extract",
    "Func",
    "GroupRef",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "LiteralValue",
    "OutputRef",
    "Unary",
    "UnaryOp",
    "Visitor",
    "children",
    "column_names",
    "column_roles",
    "conjuncts",
    "depth",
    "key_values",
    "literal_kind",
    "pinned_expr",
    "pinned_values",
    "walk",
]

LiteralValue = None | bool | int | float | Decimal | str | dt.date | dt.datetime

# Parts EXTRACT may take and units date_trunc may take: the ones every holder
# engine (DuckDB, SQLite) computes the same way.
EXTRACT_PARTS = ("year", "quarter", "month", "day", "dow", "doy", "hour", "minute")
DATE_TRUNC_UNITS = ("year", "quarter", "month", "day")
# Scalar functions by name: which may run at a holder inside a row expression.
FUNCTIONS = {"coalesce": True, "nullif": True, "abs": True, "round": False, "sqrt": False}


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


class _Node:
    """Base of every node: children are the fields that hold nodes, in field order."""

    __slots__ = ()

    def children(self) -> tuple[Expr, ...]:
        out: list[Any] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _Node):
                out.append(value)
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, _Node):
                        out.append(item)
                    elif isinstance(item, tuple):  # CASE's (condition, result) pairs
                        out.extend(x for x in item if isinstance(x, _Node))
        return tuple(out)


# -- row-level leaves and operators (may travel in a plan) -------------------------


@dataclass(frozen=True)
class Column(_Node):
    name: str


@dataclass(frozen=True)
class Literal(_Node):
    value: LiteralValue


@dataclass(frozen=True)
class Binary(_Node):
    op: BinaryOp
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Unary(_Node):
    op: UnaryOp
    operand: Expr


@dataclass(frozen=True)
class Between(_Node):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class InList(_Node):
    operand: Expr
    values: tuple[LiteralValue, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like(_Node):
    operand: Expr
    pattern: str
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True)
class IsNull(_Node):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class Case(_Node):
    """Searched ``CASE WHEN c THEN r ... ELSE d END``; a simple CASE is compiled to this."""

    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None = None


@dataclass(frozen=True)
class Func(_Node):
    """A scalar function from :data:`FUNCTIONS` (COALESCE, NULLIF, ABS, ROUND, SQRT)."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Extract(_Node):
    """``EXTRACT(part FROM operand)`` with ``part`` one of :data:`EXTRACT_PARTS`."""

    part: str
    operand: Expr


@dataclass(frozen=True)
class DateTrunc(_Node):
    """``date_trunc(unit, operand)``, a TIMESTAMP, with ``unit`` in :data:`DATE_TRUNC_UNITS`."""

    unit: str
    operand: Expr


@dataclass(frozen=True)
class Cast(_Node):
    """``CAST(operand AS type)``; ``type`` is a catalog type spelling (``DECIMAL(12,4)``)."""

    operand: Expr
    type: str


# -- output-level leaves (only after decryption) ----------------------------------


@dataclass(frozen=True)
class AggRef(_Node):
    index: int  # into CompiledQuery.aggregates


@dataclass(frozen=True)
class GroupRef(_Node):
    index: int  # into the plan's groups


@dataclass(frozen=True)
class OutputRef(_Node):
    index: int  # into CompiledQuery.outputs (ORDER BY an alias or position)


Expr = (
    Column
    | Literal
    | Binary
    | Unary
    | Between
    | InList
    | Like
    | IsNull
    | Case
    | Func
    | Extract
    | DateTrunc
    | Cast
    | AggRef
    | GroupRef
    | OutputRef
)

T = TypeVar("T")


class Visitor(Generic[T]):
    """Dispatch on a node's class to ``visit_<ClassName>``.

    A back end implements the methods for the nodes it understands; any other
    node reaches :meth:`unsupported`, which back ends override to raise their
    own error (a holder refuses an output-only node in a plan, for instance).
    """

    def visit(self, node: Expr) -> T:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            return self.unsupported(node)
        result: T = method(node)
        return result

    def unsupported(self, node: Expr) -> T:
        raise TypeError(f"{type(self).__name__} cannot handle {type(node).__name__}")


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
    return node.children()


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


def _conditions(node: Expr) -> tuple[Expr, ...]:
    """The children of ``node`` that act as conditions (they select rows)."""
    if isinstance(node, Binary) and (node.op.is_comparison or node.op.is_logical):
        return (node.left, node.right)
    if isinstance(node, Unary) and node.op is UnaryOp.NOT:
        return (node.operand,)
    if isinstance(node, (Between, InList, Like, IsNull)):
        return node.children()
    if isinstance(node, Case):
        return tuple(c for c, _ in node.whens)
    if isinstance(node, Func) and node.name == "nullif":
        return node.args
    return ()


def column_roles(node: Expr | None) -> tuple[set[str], set[str]]:
    """``(values, conditions)``: columns whose values an expression uses, and columns
    read inside a condition (a comparison, CASE WHEN, NULLIF ...) of it.

    A condition column selects rows even within a measure, so it needs the
    ``filter`` use as a WHERE clause would (``unseen.engine.query.plan`` checks the same);
    ``NULLIF(c, 0)`` puts ``c`` in both sets.
    """
    values: set[str] = set()
    conditions: set[str] = set()
    stack: list[tuple[Expr, bool]] = [] if node is None else [(node, False)]
    while stack:
        current, inside = stack.pop()
        if isinstance(current, Column):
            (conditions if inside else values).add(current.name)
        tests = _conditions(current)
        if isinstance(current, Func) and current.name == "nullif":
            stack.append((current.args[0], inside))  # its value passes through too
        for child in children(current):
            stack.append((child, inside or any(child is c for c in tests)))
    return values, conditions


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


def pinned_expr(conjunct: Expr) -> tuple[Expr, tuple[LiteralValue, ...]] | None:
    """``(expression, values)`` when ``conjunct`` is ``e IN (v, ...)`` or ``e = v``."""
    if isinstance(conjunct, InList) and not conjunct.negated:
        return conjunct.operand, conjunct.values
    if isinstance(conjunct, Binary) and conjunct.op is BinaryOp.EQ:
        for a, b in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
            if isinstance(b, Literal) and not isinstance(a, Literal):
                return a, (b.value,)
    return None


def key_values(key: Expr, condition: Expr | None) -> tuple[LiteralValue, ...] | None:
    """The values ``condition`` (a WHERE) allows ``key`` to take, or None if it does not pin it.

    Rows failing the WHERE never reach a group, so a derived GROUP BY key
    pinned by ``WHERE key IN (...)`` takes only those values.
    """
    found: list[LiteralValue] | None = None
    for conjunct in conjuncts(condition):
        pinned = pinned_expr(conjunct)
        if pinned is None or pinned[0] != key:
            continue
        values: list[LiteralValue] = [v for v in dict.fromkeys(pinned[1]) if v is not None]
        found = values if found is None else [v for v in found if v in values]
    return None if found is None else tuple(found)


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
