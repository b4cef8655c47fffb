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

from unseen.engine.errors import PlanError, PolicyError
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.dates import calendar_domain, truncate
from unseen.engine.query.expr import (
    DATE_TRUNC_UNITS,
    EXTRACT_PARTS,
    FUNCTIONS,
    Between,
    Binary,
    BinaryOp,
    Case,
    Cast,
    Column,
    DateTrunc,
    Expr,
    Extract,
    Func,
    InList,
    IsNull,
    Like,
    Literal,
    LiteralValue,
    Unary,
    UnaryOp,
    Visitor,
    depth,
    key_values,
    walk,
)
from unseen.engine.query.types import SqlType, widen

__all__ = [
    "DEFAULT_LIMITS",
    "AggregatePlan",
    "Encoding",
    "GroupColumn",
    "Limits",
    "Measure",
    "SlotCodec",
    "arithmetic_type",
    "check_expression_size",
    "check_plan",
    "common_type",
    "derived_group_use",
    "derived_key_values",
    "encoding_for",
    "expr_type",
    "group_key_type",
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
    """One GROUP BY key and the domain that fixes its slot positions.

    ``column`` names the key (the column, or the SQL text of a derived key);
    ``expr`` is the derived key's row expression (EXTRACT, date_trunc, a CASE
    bucketing into literal labels), None for a plain column.
    """

    column: str
    domain: tuple[LiteralValue, ...]
    expr: Expr | None = None

    @property
    def key(self) -> Expr:
        """The row expression a holder groups by."""
        return self.expr if self.expr is not None else Column(self.column)


@dataclass(frozen=True)
class SlotCodec:
    """How exact integers are split into CKKS slots (see ``unseen.engine.query.layout``).

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
_FLOAT = SqlType("FLOAT")
_INTEGER = SqlType("INTEGER")
_TEMPORAL = ("DATE", "TIMESTAMP")
# Casts every holder engine performs alike (DATE <-> TIMESTAMP, to FLOAT, BOOLEAN <-> INTEGER).
# Numeric casts are allowed only where no value can overflow (see _cast_cannot_fail): a cast that
# fails on some row would answer "does any row exceed this bound?" through an error, past k.
_CASTS = {
    "INTEGER": ("INTEGER", "DECIMAL", "FLOAT", "BOOLEAN"),
    "DECIMAL": ("INTEGER", "DECIMAL", "FLOAT"),
    "FLOAT": ("FLOAT",),
    "DATE": ("DATE", "TIMESTAMP"),
    "TIMESTAMP": ("DATE", "TIMESTAMP"),
    "VARCHAR": ("VARCHAR",),
    "BOOLEAN": ("BOOLEAN", "INTEGER"),
}
_BIGINT_DIGITS = 19  # an INTEGER column is at most a BIGINT: 19 digits


def _integer_digits(kind: SqlType) -> int:
    if kind.kind == "DECIMAL":
        return kind.precision - kind.scale
    return _BIGINT_DIGITS


def _cast_cannot_fail(source: SqlType, target: SqlType) -> bool:
    """True when every value of ``source`` fits ``target`` (rounding aside)."""
    if target.kind == "DECIMAL" and source.kind in ("INTEGER", "DECIMAL"):
        return target.precision - target.scale >= _integer_digits(source)
    if target.kind == "INTEGER" and source.kind == "DECIMAL":
        return _integer_digits(source) <= _BIGINT_DIGITS - 1  # rounding up must still fit
    return True


def arithmetic_type(op: BinaryOp, left: SqlType | None, right: SqlType | None) -> SqlType:
    """The type of ``left op right`` as DuckDB computes it.

    Division is floating; a product of decimals has the *sum* of their scales
    (DECIMAL(15,2) * DECIMAL(15,2) is DECIMAL(38,4)), a sum or difference the
    larger scale, so exact sums of revenue expressions stay exact.
    """
    if op is BinaryOp.DIV or _FLOAT in (left, right):
        return _FLOAT
    scales = [t.scale if t is not None and t.kind == "DECIMAL" else 0 for t in (left, right)]
    if not any(t is not None and t.kind == "DECIMAL" for t in (left, right)):
        return _INTEGER
    scale = sum(scales) if op is BinaryOp.MUL else max(scales)
    if scale > 38:
        raise PlanError(
            f"a product of decimals needs scale {scale}, above 38; CAST a factor to a "
            "lower scale or to DOUBLE"
        )
    return SqlType("DECIMAL", 38, scale)


def common_type(types: list[SqlType | None], what: str) -> SqlType | None:
    """The one type of CASE results or COALESCE arguments (NULL fits anything)."""
    result: SqlType | None = None
    for kind in types:
        if kind is None:
            continue
        merged = kind if result is None else widen(result, kind)
        if merged is None:
            raise PlanError(f"{what} mixes {result} and {kind}")
        result = merged
    return result


class _TypeChecker(Visitor["SqlType | None"]):
    """Types a row-level tree against a table; every column read must permit ``use``."""

    def __init__(self, table: TableInfo, use: str):
        self.table = table
        self.use = use

    def condition(self, node: Expr) -> SqlType | None:
        """Type a condition: the columns it reads select rows, so they need ``filter``.

        ``SUM(CASE WHEN c > 5 THEN 1 END)`` or ``COUNT(*) FILTER (WHERE c > 5)``
        counts exactly what ``WHERE c > 5`` would: a column that may only be
        aggregated must not become a filter by hiding inside a measure.
        """
        saved, self.use = self.use, "filter"
        try:
            return self.visit(node)
        finally:
            self.use = saved

    def unsupported(self, node: Expr) -> SqlType | None:
        raise PlanError(f"{type(node).__name__} cannot appear in a row expression of a plan")

    def visit_Column(self, node: Column) -> SqlType | None:
        table = self.table
        col = table.column(node.name)
        if col is None:
            raise PlanError(f"table {table.name} has no column {node.name}")
        if not col.allows(self.use):
            raise PolicyError(f"column {table.name}.{col.name} may not be used to {self.use}")
        if col.type.kind == "OTHER":
            raise PlanError(f"column {table.name}.{col.name} has a type unseen cannot use")
        return col.type

    def visit_Literal(self, node: Literal) -> SqlType | None:
        return _literal_type(node.value)

    def visit_Binary(self, node: Binary) -> SqlType | None:
        if node.op.is_logical or node.op.is_comparison:
            left, right = self.condition(node.left), self.condition(node.right)
        else:
            left, right = self.visit(node.left), self.visit(node.right)
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
        return arithmetic_type(node.op, left, right)

    def visit_Unary(self, node: Unary) -> SqlType | None:
        if node.op is UnaryOp.NOT:
            operand = self.condition(node.operand)
            if operand is not None and operand != _BOOLEAN:
                raise PlanError(f"NOT needs a boolean operand, not {operand}")
            return _BOOLEAN
        operand = self.visit(node.operand)
        if operand is not None and not operand.numeric:
            raise PlanError(f"unary minus needs a number, not {operand}")
        return operand

    def visit_Between(self, node: Between) -> SqlType | None:
        kinds = [self.condition(n) for n in (node.operand, node.low, node.high)]
        if not (_comparable(kinds[0], kinds[1]) and _comparable(kinds[0], kinds[2])):
            raise PlanError(f"cannot compare {kinds[0]} with BETWEEN bounds {kinds[1]}, {kinds[2]}")
        return _BOOLEAN

    def visit_InList(self, node: InList) -> SqlType | None:
        operand = self.condition(node.operand)
        for value in node.values:
            if not _comparable(operand, _literal_type(value)):
                raise PlanError(f"cannot compare {operand} with IN value {value!r}")
        return _BOOLEAN

    def visit_Like(self, node: Like) -> SqlType | None:
        operand = self.condition(node.operand)
        if operand is not None and operand.kind != "VARCHAR":
            raise PlanError(f"LIKE needs a text operand, not {operand}")
        return _BOOLEAN

    def visit_IsNull(self, node: IsNull) -> SqlType | None:
        self.condition(node.operand)
        return _BOOLEAN

    def visit_Case(self, node: Case) -> SqlType | None:
        if not node.whens:
            raise PlanError("CASE needs at least one WHEN")
        for condition, _ in node.whens:
            kind = self.condition(condition)
            if kind is not None and kind != _BOOLEAN:
                raise PlanError(f"CASE WHEN needs a condition, not a {kind} value")
        results = [self.visit(result) for _, result in node.whens]
        if node.default is not None:
            results.append(self.visit(node.default))
        return common_type(results, "CASE")

    def visit_Func(self, node: Func) -> SqlType | None:
        if not FUNCTIONS.get(node.name, False):
            raise PlanError(f"function {node.name.upper()} cannot run at a holder")
        kinds = [self.visit(arg) for arg in node.args]
        if node.name == "coalesce":
            if not kinds:
                raise PlanError("COALESCE needs arguments")
            return common_type(kinds, "COALESCE")
        if node.name == "nullif":
            # NULLIF(c, v) keeps exactly the rows where c <> v: a comparison.
            kinds = [self.condition(arg) for arg in node.args]
            if len(kinds) != 2 or not _comparable(kinds[0], kinds[1]):
                raise PlanError("NULLIF needs two comparable arguments")
            return kinds[0]
        # abs
        if len(kinds) != 1 or (kinds[0] is not None and not kinds[0].numeric):
            raise PlanError("ABS needs one number")
        return kinds[0]

    def visit_Extract(self, node: Extract) -> SqlType | None:
        if node.part not in EXTRACT_PARTS:
            raise PlanError(f"EXTRACT({node.part.upper()} ...) is not supported")
        operand = self.visit(node.operand)
        if operand is not None and operand.kind not in _TEMPORAL:
            raise PlanError(f"EXTRACT needs a date or timestamp, not {operand}")
        if node.part in ("hour", "minute") and operand is not None and operand.kind == "DATE":
            raise PlanError(f"EXTRACT({node.part.upper()} ...) needs a timestamp, not a DATE")
        return _INTEGER

    def visit_DateTrunc(self, node: DateTrunc) -> SqlType | None:
        if node.unit not in DATE_TRUNC_UNITS:
            raise PlanError(f"date_trunc('{node.unit}', ...) is not supported")
        operand = self.visit(node.operand)
        if operand is not None and operand.kind not in _TEMPORAL:
            raise PlanError(f"date_trunc needs a date or timestamp, not {operand}")
        return SqlType("TIMESTAMP")

    def visit_Cast(self, node: Cast) -> SqlType | None:
        try:
            target = SqlType.parse(node.type)
        except ValueError as exc:
            raise PlanError(f"cannot CAST to {node.type}") from exc
        if target.kind == "DECIMAL" and not 0 <= target.scale <= target.precision <= 38:
            raise PlanError(f"CAST to {target}: precision 1..38 and scale <= precision")
        operand = self.visit(node.operand)
        if operand is not None and target.kind not in _CASTS.get(operand.kind, ()):
            raise PlanError(f"cannot CAST a {operand} value to {target} at a holder")
        if operand is not None and not _cast_cannot_fail(operand, target):
            raise PlanError(
                f"CAST of a {operand} value to {target} could overflow on some row; cast to a "
                "wider type (DECIMAL(38,s), DOUBLE)"
            )
        return target


def expr_type(node: Expr, table: TableInfo, use: str) -> SqlType | None:
    """Type-check ``node`` against ``table``; None is the type of a bare NULL.

    Every column read must exist and permit ``use`` (``filter`` or
    ``aggregate``); the error names the column so the analyst can fix the query.
    """
    return _TypeChecker(table, use).visit(node)


def derived_group_use(key: Expr) -> str:
    """The use a derived GROUP BY key makes of the columns it reads.

    A key whose values are literal labels (``CASE ... THEN 'small' ...``) or
    calendar units of one column (``EXTRACT(year FROM d)``, ``date_trunc``)
    splits rows exactly as one WHERE per group value would, so its columns
    need only ``filter``; any other derived key reveals column values and
    needs ``group`` on every column it reads.
    """
    if isinstance(key, Case):
        results = [r for _, r in key.whens] + ([key.default] if key.default is not None else [])
        if all(isinstance(r, Literal) for r in results):
            return "filter"
    if isinstance(key, (Extract, DateTrunc)) and isinstance(key.operand, Column):
        return "filter"
    return "group"


def group_key_type(group: GroupColumn, table: TableInfo) -> SqlType:
    """Check one GROUP BY key against ``table``'s policy and return its type."""
    if group.expr is None:
        col = table.column(group.column)
        if col is None:
            raise PlanError(f"table {table.name} has no column {group.column}")
        if not col.allows("group"):
            raise PolicyError(f"column {table.name}.{col.name} may not be used to group")
        return col.type
    kind = expr_type(group.expr, table, derived_group_use(group.expr))
    if kind is None or kind.kind == "FLOAT":
        raise PlanError(f"GROUP BY {group.column} needs a key with exact values, not {kind}")
    return kind


def derived_key_values(
    key: Expr, table: TableInfo, condition: Expr | None
) -> tuple[LiteralValue, ...] | None:
    """Every value a derived key can take over ``table``'s rows that pass ``condition``.

    A CASE takes its literal labels (NULL without ELSE); EXTRACT of a cyclic
    part its cycle; EXTRACT(year) and date_trunc every unit of the column's
    published range; a ``WHERE key IN (...)`` narrows all of these (and
    stands in for a range the column does not publish). None when the values
    cannot be derived.
    """
    pinned = key_values(key, condition)
    if pinned is not None and isinstance(key, DateTrunc):
        pinned = tuple(truncate("day", v) if isinstance(v, dt.date) else v for v in pinned)
    derived: tuple[LiteralValue, ...] | None = None
    if isinstance(key, Case) and derived_group_use(key) == "filter":
        results = [r for _, r in key.whens] + [key.default or Literal(None)]
        derived = tuple(dict.fromkeys(r.value for r in results if isinstance(r, Literal)))
    elif isinstance(key, (Extract, DateTrunc)) and isinstance(key.operand, Column):
        col = table.column(key.operand.name)
        bounds = col.bounds if col is not None else None
        if bounds is not None and not all(isinstance(b, dt.date) for b in bounds):
            bounds = None
        if pinned is not None:
            # Check the listed values one by one: never build a calendar the WHERE narrows.
            return tuple(v for v in pinned if _on_calendar(key, v, bounds))
        part = key.part if isinstance(key, Extract) else key.unit
        if isinstance(key, Extract) and part != "year":
            derived = calendar_domain("extract", part, dt.date.min, dt.date.min)
        elif bounds is not None:
            low, high = bounds
            assert isinstance(low, dt.date) and isinstance(high, dt.date)
            kind = "extract" if isinstance(key, Extract) else "date_trunc"
            derived = calendar_domain(kind, part, low, high)
    if pinned is None:
        return derived
    if derived is None:
        return pinned
    allowed = set(map(_hashable, pinned))
    return tuple(v for v in derived if _hashable(v) in allowed)


def _on_calendar(
    key: Extract | DateTrunc,
    value: LiteralValue,
    bounds: tuple[LiteralValue, LiteralValue] | None,
) -> bool:
    """Whether a calendar key can take ``value`` within the column's published range."""
    low, high = bounds if bounds is not None else (None, None)
    if isinstance(key, Extract):
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        if key.part == "year":
            if isinstance(low, dt.date) and isinstance(high, dt.date):
                return low.year <= value <= high.year
            return True
        return value in calendar_domain("extract", key.part, dt.date.min, dt.date.min)
    if not isinstance(value, dt.datetime) or truncate(key.unit, value) != value:
        return False
    if isinstance(low, dt.date) and isinstance(high, dt.date):
        return low <= value.date() <= high
    return True


def _check_derived_domain(group: GroupColumn, table: TableInfo, condition: Expr | None) -> None:
    """A derived key's domain must hold every value the key can take here.

    Then no row can fall outside the plan's groups, so a crafted plan that
    leaves a label out cannot learn, from an error, that some row carries it
    (an answer that would bypass k). A CASE takes its literal labels (NULL
    without ELSE); a calendar key every unit of the column's published range.
    """
    assert group.expr is not None
    expected = derived_key_values(group.expr, table, condition)
    if expected is None:
        if derived_group_use(group.expr) == "filter":
            raise PlanError(
                f"GROUP BY {group.column}: its values cannot be derived here (no published "
                "date range and no WHERE ... IN (...) on the key)"
            )
        return
    have = set(map(_hashable, group.domain))
    if any(_hashable(v) not in have for v in expected):
        raise PlanError(f"GROUP BY {group.column}: the domain leaves out values the key can take")


def encoding_for(sql_type: SqlType | None) -> tuple[Encoding, int]:
    """The exact grid for sums of a measure of type ``sql_type``."""
    if sql_type is None or sql_type.kind == "INTEGER" or sql_type.kind == "BOOLEAN":
        return Encoding.INTEGER, 0
    if sql_type.kind == "DECIMAL":
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
    nodes += [g.expr for g in plan.groups if g.expr is not None]
    check_expression_size(nodes, limits)
    if plan.filter is not None:
        kind = expr_type(plan.filter, table, "filter")
        if kind is not None and kind != _BOOLEAN:
            raise PlanError(f"WHERE must be a condition, not a {kind} value")
    seen: set[str] = set()
    for group in plan.groups:
        kind = group_key_type(group, table)
        if group.expr is not None:
            _check_derived_domain(group, table, plan.filter)
        label = group.column
        if label.lower() in seen:
            raise PlanError(f"{label} appears twice in GROUP BY")
        seen.add(label.lower())
        if not group.domain:
            raise PlanError(f"group key {label} has an empty domain")
        if len(set(map(_hashable, group.domain))) != len(group.domain):
            raise PlanError(f"group key {label} has repeated domain values")
        for value in group.domain:
            if not _comparable(kind, _literal_type(value)):
                raise PlanError(f"domain value {value!r} does not fit {label} ({kind})")
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
