"""The only module that converts between domain objects and protobuf messages.

Matched ``x_to_proto`` / ``x_from_proto`` pairs, each round-trip tested.
Decoding is defensive: a message from the network that does not describe a
valid object raises :class:`~unseen.engine.errors.PlanError` (INVALID_ARGUMENT),
never a bare ``KeyError`` or ``ValueError``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType
from typing import Any, TypeVar

from google.protobuf.message import Message

from unseen.engine.errors import CryptoError, PlanError
from unseen.engine.governance.signing import is_hex_digest
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.masks import MAX_PARTICIPANTS, Participant
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.expr import (
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
    literal_kind,
)
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import (
    DEFAULT_LIMITS,
    AggregatePlan,
    Encoding,
    GroupColumn,
    Measure,
    SlotCodec,
)
from unseen.engine.query.types import SqlType
from unseen.engine.training.psi import AlignAsk, PsiAnswer
from unseen.engine.training.train_job import TrainAnswer, TrainCall, TrainFeatures
from unseen.engine.transport.memory_budget import ENTITY_OVERHEAD
from unseen.v1 import (
    align_pb2,
    audit_pb2,
    catalog_pb2,
    crypto_pb2,
    mask_pb2,
    plan_pb2,
    query_pb2,
    score_pb2,
    train_pb2,
)

__all__ = [
    "KEY_CHUNK_BYTES",
    "MAX_ENTITIES",
    "MAX_FEATURES",
    "MAX_MODEL_BYTES",
    "aggregate_request",
    "align_from_proto",
    "align_reply",
    "align_reply_from_proto",
    "align_to_proto",
    "catalog_digest",
    "catalog_from_proto",
    "catalog_request",
    "catalog_to_proto",
    "ciphertext_reply",
    "expr_from_proto",
    "expr_to_proto",
    "failing_groups_from_reply",
    "failing_groups_reply",
    "feature_from_proto",
    "feature_to_proto",
    "has_key_reply",
    "has_key_request",
    "has_model_reply",
    "has_model_request",
    "header_from_proto",
    "header_to_proto",
    "join_key_chunks",
    "key_ack",
    "key_chunks",
    "ledger_reply",
    "ledger_request",
    "ledger_request_fields",
    "mask_key_from_proto",
    "mask_key_to_proto",
    "mask_round_from_proto",
    "mask_round_request",
    "missing_from_header",
    "model_ack",
    "model_from_parts",
    "model_parts",
    "plan_from_proto",
    "plan_to_proto",
    "prepare_from_parts",
    "prepare_parts",
    "prepare_reply",
    "reply_catalog_digest",
    "score_parts",
    "score_reply_ciphertext",
    "score_reply_header",
    "score_request_from_parts",
    "suppression_reasons",
    "train_answer_from_proto",
    "train_answer_to_proto",
    "train_call_from_proto",
    "train_call_to_proto",
    "value_from_proto",
    "value_to_proto",
]

# -- values ---------------------------------------------------------------------


def value_to_proto(value: LiteralValue) -> plan_pb2.Value:
    kind = literal_kind(value)
    msg = plan_pb2.Value()
    if kind == "null":
        msg.null_value = True
    elif kind == "boolean":
        msg.bool_value = bool(value)
    elif kind == "int":
        assert isinstance(value, int)
        if not -(2**63) <= value < 2**63:
            msg.decimal_value = str(value)
        else:
            msg.int_value = value
    elif kind == "float":
        msg.float_value = float(value)  # type: ignore[arg-type]
    elif kind == "decimal":
        msg.decimal_value = str(value)
    elif kind == "text":
        msg.text_value = str(value)
    elif kind == "timestamp":
        assert isinstance(value, dt.datetime)
        msg.timestamp_value = value.isoformat()
    else:
        assert isinstance(value, dt.date)
        msg.date_value = value.isoformat()
    return msg


def value_from_proto(msg: plan_pb2.Value) -> LiteralValue:
    kind = msg.WhichOneof("kind")
    try:
        if kind == "null_value":
            return None
        if kind == "bool_value":
            return msg.bool_value
        if kind == "int_value":
            return msg.int_value
        if kind == "float_value":
            return msg.float_value
        if kind == "decimal_value":
            value = Decimal(msg.decimal_value)
            if not value.is_finite():
                raise PlanError("a decimal literal must be finite")
            return value
        if kind == "text_value":
            return msg.text_value
        if kind == "date_value":
            return dt.date.fromisoformat(msg.date_value)
        if kind == "timestamp_value":
            return dt.datetime.fromisoformat(msg.timestamp_value)
    except (ValueError, InvalidOperation) as exc:
        raise PlanError(f"malformed {kind} literal") from exc
    raise PlanError("a literal value has no kind")


# -- expressions ----------------------------------------------------------------

_BINARY_TO = {op: getattr(plan_pb2, f"BINARY_OP_{op.name}") for op in BinaryOp}
_BINARY_FROM = {v: k for k, v in _BINARY_TO.items()}
_UNARY_TO = {op: getattr(plan_pb2, f"UNARY_OP_{op.name}") for op in UnaryOp}
_UNARY_FROM = {v: k for k, v in _UNARY_TO.items()}


class _ExprWriter(Visitor[plan_pb2.Expr]):
    """One node to its wire message (children recursively; depth is bounded by check_plan)."""

    def unsupported(self, node: Expr) -> plan_pb2.Expr:
        raise TypeError(f"not a row expression node: {type(node).__name__}")

    def visit_Column(self, node: Column) -> plan_pb2.Expr:
        return plan_pb2.Expr(column=node.name)

    def visit_Literal(self, node: Literal) -> plan_pb2.Expr:
        return plan_pb2.Expr(literal=value_to_proto(node.value))

    def visit_Binary(self, node: Binary) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            binary=plan_pb2.BinaryExpr(
                op=_BINARY_TO[node.op], left=self.visit(node.left), right=self.visit(node.right)
            )
        )

    def visit_Unary(self, node: Unary) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            unary=plan_pb2.UnaryExpr(op=_UNARY_TO[node.op], operand=self.visit(node.operand))
        )

    def visit_Between(self, node: Between) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            between=plan_pb2.BetweenExpr(
                operand=self.visit(node.operand),
                low=self.visit(node.low),
                high=self.visit(node.high),
                negated=node.negated,
            )
        )

    def visit_InList(self, node: InList) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            in_list=plan_pb2.InExpr(
                operand=self.visit(node.operand),
                values=[value_to_proto(v) for v in node.values],
                negated=node.negated,
            )
        )

    def visit_Like(self, node: Like) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            like=plan_pb2.LikeExpr(
                operand=self.visit(node.operand),
                pattern=node.pattern,
                negated=node.negated,
                case_insensitive=node.case_insensitive,
            )
        )

    def visit_IsNull(self, node: IsNull) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            is_null=plan_pb2.IsNullExpr(operand=self.visit(node.operand), negated=node.negated)
        )

    def visit_Case(self, node: Case) -> plan_pb2.Expr:
        msg = plan_pb2.CaseExpr(
            whens=[
                plan_pb2.WhenClause(condition=self.visit(c), result=self.visit(r))
                for c, r in node.whens
            ]
        )
        if node.default is not None:
            msg.default.CopyFrom(self.visit(node.default))
        return plan_pb2.Expr(case_expr=msg)

    def visit_Func(self, node: Func) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            func=plan_pb2.FuncExpr(name=node.name, args=[self.visit(a) for a in node.args])
        )

    def visit_Extract(self, node: Extract) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            extract=plan_pb2.ExtractExpr(part=node.part, operand=self.visit(node.operand))
        )

    def visit_DateTrunc(self, node: DateTrunc) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            date_trunc=plan_pb2.DateTruncExpr(unit=node.unit, operand=self.visit(node.operand))
        )

    def visit_Cast(self, node: Cast) -> plan_pb2.Expr:
        return plan_pb2.Expr(
            cast=plan_pb2.CastExpr(operand=self.visit(node.operand), type=node.type)
        )


def expr_to_proto(node: Expr) -> plan_pb2.Expr:
    return _ExprWriter().visit(node)


def _required(msg: plan_pb2.Expr, parent: str) -> plan_pb2.Expr:
    if msg.WhichOneof("kind") is None:
        raise PlanError(f"{parent} is missing an operand")
    return msg


def _binary_from(msg: plan_pb2.BinaryExpr) -> Expr:
    if msg.op not in _BINARY_FROM:
        raise PlanError("unknown binary operator")
    return Binary(
        _BINARY_FROM[msg.op],
        expr_from_proto(_required(msg.left, "a binary expression")),
        expr_from_proto(_required(msg.right, "a binary expression")),
    )


def _unary_from(msg: plan_pb2.UnaryExpr) -> Expr:
    if msg.op not in _UNARY_FROM:
        raise PlanError("unknown unary operator")
    return Unary(_UNARY_FROM[msg.op], expr_from_proto(_required(msg.operand, "a unary expression")))


def _case_from(msg: plan_pb2.CaseExpr) -> Expr:
    if not msg.whens:
        raise PlanError("CASE has no WHEN")
    return Case(
        tuple(
            (
                expr_from_proto(_required(w.condition, "CASE WHEN")),
                expr_from_proto(_required(w.result, "CASE THEN")),
            )
            for w in msg.whens
        ),
        expr_from_proto(msg.default) if msg.HasField("default") else None,
    )


_EXPR_FROM: dict[str, Callable[[Any], Expr]] = {
    "binary": _binary_from,
    "unary": _unary_from,
    "between": lambda b: Between(
        expr_from_proto(_required(b.operand, "BETWEEN")),
        expr_from_proto(_required(b.low, "BETWEEN")),
        expr_from_proto(_required(b.high, "BETWEEN")),
        b.negated,
    ),
    "in_list": lambda m: InList(
        expr_from_proto(_required(m.operand, "IN")),
        tuple(value_from_proto(v) for v in m.values),
        m.negated,
    ),
    "like": lambda m: Like(
        expr_from_proto(_required(m.operand, "LIKE")), m.pattern, m.negated, m.case_insensitive
    ),
    "is_null": lambda m: IsNull(expr_from_proto(_required(m.operand, "IS NULL")), m.negated),
    "case_expr": _case_from,
    "func": lambda m: Func(m.name, tuple(expr_from_proto(_required(a, m.name)) for a in m.args)),
    "extract": lambda m: Extract(m.part, expr_from_proto(_required(m.operand, "EXTRACT"))),
    "date_trunc": lambda m: DateTrunc(m.unit, expr_from_proto(_required(m.operand, "date_trunc"))),
    "cast": lambda m: Cast(expr_from_proto(_required(m.operand, "CAST")), m.type),
}


def expr_from_proto(msg: plan_pb2.Expr) -> Expr:
    kind = msg.WhichOneof("kind")
    if kind == "column":
        if not msg.column:
            raise PlanError("a column reference has no name")
        return Column(msg.column)
    if kind == "literal":
        return Literal(value_from_proto(msg.literal))
    if kind in _EXPR_FROM:
        return _EXPR_FROM[kind](getattr(msg, kind))
    raise PlanError("an expression has no kind")


def _sub_exprs(node: plan_pb2.Expr) -> list[plan_pb2.Expr]:
    """The direct sub-expression messages of one wire node (for size checks)."""
    kind = node.WhichOneof("kind")
    if kind in (None, "column", "literal"):
        return []
    inner = getattr(node, kind)
    if kind == "case_expr":
        out = [x for w in inner.whens for x in (w.condition, w.result)]
        return out + ([inner.default] if inner.HasField("default") else [])
    if kind == "func":
        return list(inner.args)
    return [v for f, v in inner.ListFields() if isinstance(v, plan_pb2.Expr)]


# -- plans ----------------------------------------------------------------------

_ENCODING_TO = {e: getattr(plan_pb2, f"NUMERIC_ENCODING_{e.name}") for e in Encoding}
_ENCODING_FROM = {v: k for k, v in _ENCODING_TO.items()}


def plan_to_proto(plan: AggregatePlan) -> plan_pb2.AggregatePlan:
    msg = plan_pb2.AggregatePlan(table=plan.table)
    if plan.filter is not None:
        msg.filter.CopyFrom(expr_to_proto(plan.filter))
    for group in plan.groups:
        g = msg.groups.add(column=group.column, domain=[value_to_proto(v) for v in group.domain])
        if group.expr is not None:
            g.expr.CopyFrom(expr_to_proto(group.expr))
    for m in plan.measures:
        msg.measures.add(
            expr=expr_to_proto(m.expr),
            encoding=_ENCODING_TO[m.encoding],
            decimal_scale=m.decimal_scale,
            want_sum=m.want_sum,
            want_square=m.want_square,
        )
    c = plan.codec
    msg.codec.CopyFrom(
        plan_pb2.SlotCodec(
            limb_bits=c.limb_bits,
            count_limbs=c.count_limbs,
            sum_limbs=c.sum_limbs,
            square_limbs=c.square_limbs,
            fraction_bits=c.fraction_bits,
            slots=c.slots,
        )
    )
    return msg


def _check_sizes(msg: plan_pb2.AggregatePlan) -> None:
    """Count a plan's values on the message itself, before any becomes a Python object.

    Decoding costs far more memory than the message (a 9 MB domain becomes
    hundreds of MB of objects), so the limits are enforced first.
    """
    limits = DEFAULT_LIMITS
    if len(msg.measures) > limits.max_measures or len(msg.groups) > limits.max_group_columns:
        raise PlanError("the plan has too many measures or group columns")
    groups = 1
    for group in msg.groups:
        if len(group.domain) > limits.max_groups:
            raise PlanError(f"a group domain has more than {limits.max_groups} values")
        groups *= max(len(group.domain), 1)
    if groups > limits.max_groups:
        raise PlanError(f"the group domain has more than {limits.max_groups} groups")
    roots = [m.expr for m in msg.measures]
    roots += [g.expr for g in msg.groups if g.HasField("expr")]
    if msg.HasField("filter"):
        roots.append(msg.filter)
    _check_expression_messages(roots)


_EXPR = plan_pb2.Expr.DESCRIPTOR
_VALUE = plan_pb2.Value.DESCRIPTOR


def _check_expression_messages(roots: Sequence[Message]) -> None:
    """The node, IN-value and depth limits, counted on the wire messages.

    The walk knows no node kinds: every ``Expr`` message below the roots is
    a node and every repeated ``Value`` field a list of IN values, so a node
    kind added to the proto is counted without a change here. It stops as
    soon as a limit is passed, so a huge expression costs no more than a
    small one to refuse.
    """
    limits = DEFAULT_LIMITS
    nodes = values = 0
    stack: list[tuple[Message, int]] = [(root, 1) for root in roots]
    while stack:
        message, level = stack.pop()
        if message.DESCRIPTOR is _EXPR:
            nodes += 1
            if nodes > limits.max_nodes:
                raise PlanError(f"expressions of more than {limits.max_nodes} nodes")
            if level > limits.max_depth:
                raise PlanError(f"expression nested deeper than {limits.max_depth} levels")
            level += 1
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            single = isinstance(value, Message)  # else a repeated field's container
            if field.message_type is _VALUE:
                if not single:
                    values += len(value)
                    if values > limits.max_in_values:
                        raise PlanError(
                            f"IN lists of more than {limits.max_in_values} values in all"
                        )
                continue
            if single:
                stack.append((value, level))
            else:
                stack.extend((item, level) for item in value)


def plan_from_proto(msg: plan_pb2.AggregatePlan) -> AggregatePlan:
    if not msg.table:
        raise PlanError("the plan names no table")
    _check_sizes(msg)
    measures = []
    for m in msg.measures:
        if m.encoding not in _ENCODING_FROM:
            raise PlanError("a measure has no known encoding")
        if m.decimal_scale > 38:
            raise PlanError("a decimal scale above 38 is not allowed")
        measures.append(
            Measure(
                expr_from_proto(_required(m.expr, "a measure")),
                _ENCODING_FROM[m.encoding],
                m.decimal_scale,
                m.want_sum,
                m.want_square,
            )
        )
    if not msg.HasField("codec"):
        raise PlanError("the plan carries no slot codec")
    c = msg.codec
    return AggregatePlan(
        table=msg.table,
        filter=expr_from_proto(msg.filter) if msg.HasField("filter") else None,
        groups=tuple(
            GroupColumn(
                g.column,
                tuple(value_from_proto(v) for v in g.domain),
                expr_from_proto(g.expr) if g.HasField("expr") else None,
            )
            for g in msg.groups
        ),
        measures=tuple(measures),
        codec=SlotCodec(
            c.limb_bits, c.count_limbs, c.sum_limbs, c.square_limbs, c.fraction_bits, c.slots
        ),
    )


# -- catalogs -------------------------------------------------------------------


def dp_policy_to_proto(policy: DpPolicy) -> catalog_pb2.DpPolicy:
    msg = catalog_pb2.DpPolicy(
        unit=policy.unit,
        max_rows=policy.max_rows,
        rho=str(policy.rho),
        honest_holders=policy.honest_holders,
        unit_holders=policy.unit_holders,
    )
    for column, (low, high) in sorted(policy.bounds.items()):
        msg.bounds.add(column=column, lower=str(low), upper=str(high))
    return msg


def dp_policy_from_proto(msg: catalog_pb2.DpPolicy) -> DpPolicy:
    try:
        bounds = {b.column.lower(): (Fraction(b.lower), Fraction(b.upper)) for b in msg.bounds}
        rho = Fraction(msg.rho)
    except (ValueError, ZeroDivisionError) as exc:
        raise PlanError("a catalog's dp policy carries a malformed number") from exc
    return DpPolicy(
        unit=msg.unit,
        max_rows=max(1, msg.max_rows),
        rho=rho,
        bounds=MappingProxyType(bounds),
        honest_holders=max(1, msg.honest_holders),
        unit_holders=max(1, msg.unit_holders),
    )


def catalog_to_proto(catalog: Catalog) -> catalog_pb2.Catalog:
    msg = catalog_pb2.Catalog(holder=catalog.holder, vouchers_required=catalog.vouchers_required)
    for table in catalog.tables:
        t = msg.tables.add(
            name=table.name,
            min_group_size=table.min_group_size,
            holders=list(table.holders),
            assets=list(table.assets),
        )
        for col in table.columns:
            c = t.columns.add(
                name=col.name,
                type=str(col.type),
                uses=sorted(col.uses),
                domain_published=col.domain is not None,
                grade=col.grade or "",
            )
            if col.domain is not None:
                c.domain.extend(value_to_proto(v) for v in col.domain)
            if col.bounds is not None:
                c.bound_low.CopyFrom(value_to_proto(col.bounds[0]))
                c.bound_high.CopyFrom(value_to_proto(col.bounds[1]))
        if table.dp is not None:
            t.dp.CopyFrom(dp_policy_to_proto(table.dp))
    for table_name, reason in catalog.conflicts:
        msg.conflicts.add(table=table_name, reason=reason)
    if catalog.mask_key is not None:
        msg.mask_key.CopyFrom(mask_key_to_proto(catalog.mask_key))
    for leaf in catalog.leaves:  # hierarchy (issue 14.1)
        msg.leaf_keys.add(holder=leaf.holder, key=mask_key_to_proto(leaf))
    return msg


def catalog_from_proto(msg: catalog_pb2.Catalog) -> Catalog:
    if len(msg.leaf_keys) > MAX_PARTICIPANTS:
        raise PlanError(f"a catalog relays at most {MAX_PARTICIPANTS} leaf holders' mask keys")
    tables = []
    for t in msg.tables:
        columns = []
        for c in t.columns:
            try:
                sql_type = SqlType.parse(c.type)
            except ValueError:
                sql_type = SqlType("OTHER")
            domain = tuple(value_from_proto(v) for v in c.domain) if c.domain_published else None
            bounds = None
            if c.HasField("bound_low") and c.HasField("bound_high"):
                bounds = (value_from_proto(c.bound_low), value_from_proto(c.bound_high))
            columns.append(
                ColumnInfo(c.name, sql_type, frozenset(c.uses), domain, bounds, c.grade or None)
            )
        dp = dp_policy_from_proto(t.dp) if t.HasField("dp") else None
        tables.append(
            TableInfo(
                t.name,
                tuple(columns),
                t.min_group_size or 1,
                tuple(t.holders),
                assets=tuple(t.assets),
                dp=dp,
            )
        )
    return Catalog(
        holder=msg.holder,
        tables=tuple(tables),
        vouchers_required=msg.vouchers_required,
        conflicts=tuple((c.table, c.reason) for c in msg.conflicts),
        mask_key=mask_key_from_proto(msg.holder, msg.mask_key)
        if msg.HasField("mask_key")
        else None,
        leaves=tuple(mask_key_from_proto(p.holder, p.key) for p in msg.leaf_keys),
    )


# -- aggregate reply headers ----------------------------------------------------


def header_to_proto(
    ciphertexts: int,
    suppressed: Sequence[int],
    holders: Sequence[str],
    receipts: Sequence[str] = (),
    missing: Sequence[str] = (),
    reasons: Sequence[str] = (),
) -> query_pb2.AggregateReply:
    """The header of an aggregate reply; ``reasons`` parallels ``suppressed``."""
    return query_pb2.AggregateReply(
        header=query_pb2.AggregateHeader(
            ciphertexts=ciphertexts,
            suppressed_groups=list(suppressed),
            holders=list(holders),
            receipts=list(receipts),
            missing_holders=list(missing),
            suppression_reasons=list(reasons),
        )
    )


def suppression_reasons(msg: query_pb2.AggregateHeader) -> dict[int, str]:
    """Suppressed group index -> reason; empty when the peer sent none (or a wrong count)."""
    if len(msg.suppression_reasons) != len(msg.suppressed_groups):
        return {}
    return dict(zip(msg.suppressed_groups, msg.suppression_reasons, strict=True))


def header_from_proto(
    msg: query_pb2.AggregateHeader,
) -> tuple[int, tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """(ciphertext count, suppressed group indices, holders, receipts)."""
    return msg.ciphertexts, tuple(msg.suppressed_groups), tuple(msg.holders), tuple(msg.receipts)


def missing_from_header(msg: query_pb2.AggregateHeader) -> tuple[str, ...]:
    """The configured holders an ``allow_partial`` answer left out (empty otherwise)."""
    return tuple(msg.missing_holders)


def aggregate_request(
    key_id: str,
    plan: AggregatePlan | plan_pb2.AggregatePlan,
    vouchers: Sequence[str] = (),
    allow_partial: bool = False,
    request_id: str = "",
) -> query_pb2.AggregateRequest:
    """An Aggregate request; ``plan`` may be encoded already (by :func:`plan_to_proto`),
    so that a coordinator encodes a plan once for all its holders."""
    if isinstance(plan, AggregatePlan):
        plan = plan_to_proto(plan)
    return query_pb2.AggregateRequest(
        key_id=key_id,
        plan=plan,
        vouchers=list(vouchers),
        allow_partial=allow_partial,
        request_id=request_id,
    )


def ciphertext_reply(index: int, data: bytes) -> query_pb2.AggregateReply:
    return query_pb2.AggregateReply(ciphertext=crypto_pb2.Ciphertext(index=index, data=data))


# -- key transfer ---------------------------------------------------------------

KEY_CHUNK_BYTES = 1 << 20


def key_chunks(data: bytes) -> Iterator[crypto_pb2.KeyChunk]:
    """Split a public context into KeyChunk messages of at most 1 MiB."""
    for start in range(0, len(data), KEY_CHUNK_BYTES):
        yield crypto_pb2.KeyChunk(data=data[start : start + KEY_CHUNK_BYTES])


def join_key_chunks(stream: Iterable[crypto_pb2.KeyChunk], max_bytes: int) -> bytes:
    """Join a KeyChunk stream; stop reading as soon as it passes ``max_bytes``."""
    parts: list[bytes] = []
    size = 0
    for chunk in stream:
        size += len(chunk.data)
        if size > max_bytes:
            raise CryptoError(f"public context exceeds {max_bytes} bytes")
        parts.append(chunk.data)
    if not size:
        raise CryptoError("empty public context")
    return b"".join(parts)


# -- scoring ---------------------------------------------------------------------


def feature_bytes(feature: FeatureSpec) -> bytes:
    """A feature's canonical bytes (deterministic wire form), which approvals digest."""
    return feature_to_proto(feature).SerializeToString(deterministic=True)


def feature_to_proto(feature: FeatureSpec) -> score_pb2.FeatureSpec:
    msg = score_pb2.FeatureSpec(
        table=feature.table,
        column=feature.column,
        key=feature.key,
        aggregate=feature.aggregate,
        transform=feature.transform,
        default_value=feature.default,
    )
    if feature.filter is not None:
        msg.filter.CopyFrom(expr_to_proto(feature.filter))
    return msg


def feature_from_proto(msg: score_pb2.FeatureSpec) -> FeatureSpec:
    if not msg.table or not msg.column or not msg.key:
        raise PlanError("a feature needs a table, a column and an entity key")
    if not math.isfinite(msg.default_value):
        raise PlanError("a feature's default must be finite")
    return FeatureSpec(
        table=msg.table,
        column=msg.column,
        key=msg.key,
        aggregate=msg.aggregate,
        filter=expr_from_proto(msg.filter) if msg.HasField("filter") else None,
        transform=msg.transform,
        default=msg.default_value,
    )


# A model's features; its weights (~0.4 MB each) are bounded by MAX_MODEL_BYTES.
MAX_FEATURES = 512


def _features_from_proto(
    messages: Sequence[score_pb2.FeatureSpec],
) -> tuple[FeatureSpec, ...]:
    """A header's features, counted (and their filters sized) before any is decoded."""
    if len(messages) > MAX_FEATURES:
        raise PlanError(f"a model has at most {MAX_FEATURES} features")
    _check_expression_messages([m.filter for m in messages if m.HasField("filter")])
    return tuple(feature_from_proto(m) for m in messages)


def prepare_parts(
    key_id: str,
    features: Sequence[FeatureSpec],
    ids: Sequence[str],
    vouchers: Sequence[str] = (),
    chunk: int = 4096,
) -> Iterator[score_pb2.PreparePart]:
    """The PrepareModel stream: a header, then the entity ids in chunks."""
    yield score_pb2.PreparePart(
        header=score_pb2.PrepareModelRequest(
            key_id=key_id,
            features=[feature_to_proto(f) for f in features],
            vouchers=list(vouchers),
            entities=len(ids),
        )
    )
    yield from _entity_parts(score_pb2.PreparePart, ids, chunk)


def prepare_from_parts(
    parts: Iterable[score_pb2.PreparePart],
    max_entities: int,
    check: Callable[[str], None] | None = None,
    charge: Callable[[int], None] | None = None,
) -> tuple[str, tuple[FeatureSpec, ...], list[str], tuple[str, ...]]:
    """Read a PrepareModel stream: (key id, features, entity ids, vouchers).

    ``check(key_id)`` runs on the header, before any entity id is read, so a
    request for an unknown key costs the node nothing. ``charge(bytes)`` is
    called for each chunk of ids before it is kept (a node-wide budget).
    """
    header, iterator = _split_header(parts, "a model preparation")
    features = _features_from_proto(header.features)
    if not features:
        raise PlanError("a model preparation names no features")
    _check_id(header.key_id, "key")
    if check is not None:
        check(header.key_id)
    ids = _entity_stream(iterator, header.entities, max_entities, "a model preparation", charge)
    return header.key_id, features, ids, tuple(header.vouchers)


# Entity ids are codes (credit codes, account numbers), not documents. One
# request carries at most a million (the documented use: a million entities
# per score request; more go in several requests), in at most 64 MiB of ids:
# held as Python strings that is ~120 MB at the worst, checked while the
# stream is read, so a lying or oversized request is refused before it is
# buffered (5M ids once took a holder from 179 MB to 1.2 GB).
MAX_ENTITIES = 1_000_000
MAX_ENTITY_ID = 256
MAX_ENTITY_BYTES = 64 << 20
# Encrypted weights are ~0.4 MB each; 512 features is a generous ceiling.
MAX_MODEL_BYTES = 512 << 20

_Part = TypeVar("_Part")


def _entity_parts(part: Callable[..., _Part], ids: Sequence[str], chunk: int) -> Iterator[_Part]:
    """The entity ids of a PrepareModel or Score stream, ``chunk`` ids per message."""
    for start in range(0, len(ids), chunk):
        yield part(entities=score_pb2.EntityChunk(ids=ids[start : start + chunk]))


def _split_header(parts: Iterable[Any], what: str) -> tuple[Any, Iterator[Any]]:
    """A request stream's header, which must come first, and the rest of the stream."""
    iterator = iter(parts)
    first = next(iterator, None)
    if first is None or first.WhichOneof("part") != "header":
        raise PlanError(f"{what} must start with its header")
    return first.header, iterator


def _entity_stream(
    iterator: Iterator[Any],
    announced: int,
    max_entities: int,
    what: str,
    charge: Callable[[int], None] | None = None,
) -> list[str]:
    if announced > max_entities:
        raise PlanError(f"at most {max_entities} entities per request")
    ids: list[str] = []
    size = 0
    for part in iterator:
        if part.WhichOneof("part") != "entities":
            raise PlanError(f"{what} has a second header")
        chunk = part.entities.ids
        chunk_size = 0
        for entity in chunk:
            if len(entity) > MAX_ENTITY_ID:
                raise PlanError(f"an entity id longer than {MAX_ENTITY_ID} characters")
            chunk_size += len(entity)
        size += chunk_size
        if size > MAX_ENTITY_BYTES:
            raise PlanError(f"entity ids beyond {MAX_ENTITY_BYTES >> 20} MiB in one request")
        if charge is not None:
            charge(chunk_size + ENTITY_OVERHEAD * len(chunk))
        ids.extend(chunk)
        if len(ids) > announced:
            raise PlanError(f"{what} sent more entities than announced")
    if len(ids) != announced:
        raise PlanError(f"{what} announced {announced} entities but sent {len(ids)}")
    return ids


def model_parts(
    key_id: str,
    model_id: str,
    features: Sequence[FeatureSpec],
    exponents: Sequence[int],
    weights: Sequence[bytes],
) -> Iterator[score_pb2.ModelPart]:
    """The RegisterModel stream: a header, then one message per encrypted weight."""
    yield score_pb2.ModelPart(
        header=score_pb2.ModelHeader(
            key_id=key_id,
            model_id=model_id,
            features=[feature_to_proto(f) for f in features],
            exponents=list(exponents),
        )
    )
    for index, data in enumerate(weights):
        yield score_pb2.ModelPart(weight=score_pb2.WeightCiphertext(feature=index, data=data))


def model_from_parts(
    parts: Iterable[score_pb2.ModelPart],
    max_bytes: int,
    check: Callable[[str], None] | None = None,
) -> tuple[str, str, tuple[FeatureSpec, ...], tuple[int, ...], tuple[bytes, ...]]:
    """Read a RegisterModel stream: (key id, model id, features, exponents, weights).

    ``check(key_id)`` runs on the header, before any weight is read.
    """
    header, iterator = _split_header(parts, "a model registration")
    features = _features_from_proto(header.features)
    if not features or len(header.exponents) != len(features):
        raise PlanError("a model needs features, each with an exponent")
    if any(not 0 <= e <= 1000 for e in header.exponents):
        raise PlanError("feature exponents must be between 0 and 1000")
    _check_id(header.model_id, "model")
    _check_id(header.key_id, "key")
    if check is not None:
        check(header.key_id)
    weights: list[bytes | None] = [None] * len(features)
    size = 0
    for part in iterator:
        if part.WhichOneof("part") != "weight":
            raise PlanError("a model registration has a second header")
        index = part.weight.feature
        if index >= len(features) or weights[index] is not None:
            raise PlanError(f"weight {index} is out of place")
        size += len(part.weight.data)
        if size > max_bytes:
            raise PlanError(f"model weights exceed {max_bytes} bytes")
        weights[index] = part.weight.data
    if any(w is None for w in weights):
        raise PlanError("a model registration lacks a weight for some feature")
    return (
        header.key_id,
        header.model_id,
        features,
        tuple(header.exponents),
        tuple(w for w in weights if w is not None),
    )


def score_parts(
    key_id: str,
    model_id: str,
    ids: Sequence[str],
    vouchers: Sequence[str] = (),
    chunk: int = 4096,
) -> Iterator[score_pb2.ScorePart]:
    yield score_pb2.ScorePart(
        header=score_pb2.ScoreHeader(
            model_id=model_id, key_id=key_id, entities=len(ids), vouchers=list(vouchers)
        )
    )
    yield from _entity_parts(score_pb2.ScorePart, ids, chunk)


def _check_id(value: str, what: str) -> None:
    """Key and model ids are hex SHA-256 digests; anything else is refused."""
    if not is_hex_digest(value):
        raise PlanError(f"a {what} id must be 64 lowercase hex digits")


def score_request_from_parts(
    parts: Iterable[score_pb2.ScorePart],
    max_entities: int,
    check: Callable[[str, str], None] | None = None,
    charge: Callable[[int], None] | None = None,
) -> tuple[str, str, list[str], tuple[str, ...]]:
    """Read a whole Score request stream: (key id, model id, entity ids, vouchers).

    ``check(key_id, model_id)`` runs on the header, before any entity id is
    read; ``charge(bytes)`` for each chunk of ids before it is kept.
    """
    header, iterator = _split_header(parts, "a score request")
    _check_id(header.model_id, "model")
    _check_id(header.key_id, "key")
    if check is not None:
        check(header.key_id, header.model_id)
    ids = _entity_stream(iterator, header.entities, max_entities, "a score request", charge)
    return header.key_id, header.model_id, ids, tuple(header.vouchers)


def score_reply_header(
    ciphertexts: int, slots: int, holders: Sequence[str], receipts: Sequence[str] = ()
) -> score_pb2.ScoreReply:
    return score_pb2.ScoreReply(
        header=score_pb2.ScoreReplyHeader(
            ciphertexts=ciphertexts, slots=slots, holders=list(holders), receipts=list(receipts)
        )
    )


def score_reply_ciphertext(index: int, data: bytes) -> score_pb2.ScoreReply:
    return score_pb2.ScoreReply(ciphertext=crypto_pb2.Ciphertext(index=index, data=data))


# -- masked aggregate rounds (unseen.engine.privacy.masks) -------------------------------------

MAX_MASK_KEY_BYTES = 64
MAX_MASK_CERTIFICATE_BYTES = 16 << 10


def mask_key_to_proto(participant: Participant) -> mask_pb2.MaskKey:
    return mask_pb2.MaskKey(
        public_key=participant.public,
        certificate=participant.certificate,
        signature=participant.signature,
    )


def mask_key_from_proto(holder: str, msg: mask_pb2.MaskKey) -> Participant:
    if len(msg.public_key) > MAX_MASK_KEY_BYTES or len(msg.signature) > MAX_MASK_KEY_BYTES * 4:
        raise CryptoError(f"holder {holder}: its mask key is oversized")
    if len(msg.certificate) > MAX_MASK_CERTIFICATE_BYTES:
        raise CryptoError(f"holder {holder}: its mask key certificate is oversized")
    return Participant(holder, msg.public_key, msg.certificate, msg.signature)


def mask_round_request(
    key_id: str,
    query_id: str,
    nonce: bytes,
    participants: Sequence[Participant],
    suppressed: Iterable[int],
) -> query_pb2.AggregateRequest:
    """Round 2 of a masked aggregate: no plan (the holder kept round 1's), no vouchers."""
    mask = mask_pb2.MaskRound(nonce=nonce, suppressed_groups=sorted(set(suppressed)))
    for p in participants:
        mask.participants.add(holder=p.holder, key=mask_key_to_proto(p))
    return query_pb2.AggregateRequest(key_id=key_id, request_id=query_id, mask=mask)


def mask_round_from_proto(
    msg: query_pb2.AggregateRequest,
) -> tuple[bytes, tuple[Participant, ...], frozenset[int]]:
    """(nonce, participants, suppressed groups) of a round-2 request.

    Round 2 answers the plan round 1 kept, so it carries none. A plan sent anyway
    is counted against the same limits first (on the message, before anything is
    decoded), so that an oversized plan is refused as cheaply and with the same
    words in either round, then refused for being there at all.
    """
    if msg.HasField("plan"):
        _check_sizes(msg.plan)
        raise PlanError("round 2 of an aggregate carries no plan: it answers round 1's")
    if not msg.HasField("mask"):
        raise PlanError(
            "holders answer aggregates only masked: send PrepareAggregate, then Aggregate "
            "with the participants' mask round"
        )
    mask = msg.mask
    participants = tuple(mask_key_from_proto(p.holder, p.key) for p in mask.participants)
    return bytes(mask.nonce), participants, frozenset(mask.suppressed_groups)


def failing_groups_reply(
    query_id: str,
    failing: Mapping[int, str],
    receipts: Sequence[str] = (),
    catalog_digest: str = "",
) -> mask_pb2.PrepareAggregateReply:
    """Round 1's reply: each failing group with the first rule it fails, and the
    digest of the catalog the holder publishes now (:func:`catalog_digest`)."""
    groups = sorted(failing)
    return mask_pb2.PrepareAggregateReply(
        query_id=query_id,
        failing_groups=groups,
        receipts=list(receipts),
        failing_reasons=[failing[g] for g in groups],
        catalog_digest=catalog_digest,
    )


def failing_groups_from_reply(
    msg: mask_pb2.PrepareAggregateReply,
) -> tuple[str, dict[int, str], tuple[str, ...]]:
    """(query id, failing group -> reason, receipts); a reason is "" when the
    holder sent none (or a wrong count)."""
    reasons = list(msg.failing_reasons)
    if len(reasons) != len(msg.failing_groups):
        reasons = [""] * len(msg.failing_groups)
    return msg.query_id, dict(zip(msg.failing_groups, reasons, strict=True)), tuple(msg.receipts)


def reply_catalog_digest(msg: mask_pb2.PrepareAggregateReply) -> str:
    """The catalog digest a round-1 reply carries ("" from a holder that sends none)."""
    return str(msg.catalog_digest)


def catalog_digest(catalog: Catalog) -> str:
    """SHA-256 (hex) of ``catalog``'s deterministic wire form.

    Why on the wire form: the holder digests the catalog it publishes and the
    coordinator the one it received, decoded; both encode to the same bytes
    (tables, policies, mask keys and a city's relayed leaf keys), so equal
    digests mean the coordinator's cached copy is the holder's current one.
    """
    data = catalog_to_proto(catalog).SerializeToString(deterministic=True)
    return hashlib.sha256(data).hexdigest()


# -- small requests and replies (the transport seam: peers and servicers build none) --


def catalog_request() -> catalog_pb2.GetCatalogRequest:
    return catalog_pb2.GetCatalogRequest()


def has_key_request(key_id: str) -> crypto_pb2.HasKeyRequest:
    return crypto_pb2.HasKeyRequest(key_id=key_id)


def key_ack(key_id: str, size: int) -> crypto_pb2.KeyAck:
    return crypto_pb2.KeyAck(key_id=key_id, size=size)


def has_key_reply(known: bool) -> crypto_pb2.HasKeyReply:
    return crypto_pb2.HasKeyReply(known=known)


def has_model_request(key_id: str, model_id: str) -> score_pb2.HasModelRequest:
    return score_pb2.HasModelRequest(key_id=key_id, model_id=model_id)


def has_model_reply(known: bool) -> score_pb2.HasModelReply:
    return score_pb2.HasModelReply(known=known)


def prepare_reply(exponents: Sequence[int], receipts: Sequence[str]) -> score_pb2.PrepareModelReply:
    return score_pb2.PrepareModelReply(exponents=list(exponents), receipts=list(receipts))


def model_ack(model_id: str) -> score_pb2.ModelAck:
    return score_pb2.ModelAck(model_id=model_id)


def ledger_request(
    supervisor_key_id: str, start: int, end: int, issued_at: str, signature: bytes
) -> audit_pb2.ReadLedgerRequest:
    return audit_pb2.ReadLedgerRequest(
        supervisor_key_id=supervisor_key_id,
        start=start,
        end=end,
        issued_at=issued_at,
        signature=signature,
    )


def ledger_request_fields(msg: audit_pb2.ReadLedgerRequest) -> dict[str, object]:
    """The signed fields of a ledger read request (the holder adds its own name)."""
    return {
        "start": msg.start,
        "end": msg.end,
        "issued_at": msg.issued_at,
        "supervisor": msg.supervisor_key_id,
    }


def ledger_reply(ledger_range: str, checkpoint: str) -> audit_pb2.ReadLedgerReply:
    return audit_pb2.ReadLedgerReply(range=ledger_range, checkpoint=checkpoint)


# -- entity alignment (issue 15) ----------------------------------------------------------
def align_to_proto(ask: AlignAsk) -> align_pb2.AlignRequest:
    return align_pb2.AlignRequest(
        holder=ask.holder,
        table=ask.table,
        column=ask.column,
        key_id=ask.key_id,
        request=ask.request,
        vouchers=list(ask.vouchers),
    )


def align_from_proto(msg: align_pb2.AlignRequest) -> AlignAsk:
    return AlignAsk(
        msg.holder, msg.table, msg.column, msg.key_id, bytes(msg.request), tuple(msg.vouchers)
    )


def align_reply(holder: str, answer: PsiAnswer, receipts: Sequence[str]) -> align_pb2.AlignReply:
    return align_pb2.AlignReply(
        holder=holder,
        setup=answer.setup,
        response=answer.response,
        holder_size=answer.holder_size,
        receipts=list(receipts),
    )


def align_reply_from_proto(msg: align_pb2.AlignReply) -> tuple[str, PsiAnswer, list[str]]:
    """(holder name, its PSI answer, its ledger receipts)."""
    answer = PsiAnswer(bytes(msg.setup), bytes(msg.response), int(msg.holder_size))
    return str(msg.holder), answer, list(msg.receipts)


# -- joint training (issue 15) ---------------------------------------------------------------
def train_call_to_proto(call: TrainCall) -> train_pb2.TrainRequest:
    return train_pb2.TrainRequest(
        job_id=call.job_id,
        step=call.step,
        iteration=call.iteration,
        key_id=call.key_id,
        spec=call.spec,
        features=[
            train_pb2.TrainFeatures(
                holder=f.holder,
                table=f.table,
                key=f.key,
                columns=list(f.columns),
                intercept=f.intercept,
                definitions=[feature_to_proto(d) for d in f.definitions],
            )
            for f in call.features
        ],
        ids=list(call.ids),
        validation_ids=list(call.validation_ids),
        vouchers=list(call.vouchers),
        ciphertexts=list(call.ciphertexts),
        gradients=[
            train_pb2.TrainGradient(holder=h, values=list(v)) for h, v in call.gradients.items()
        ],
        best=call.best,
    )


def train_call_from_proto(msg: train_pb2.TrainRequest) -> TrainCall:
    return TrainCall(
        job_id=msg.job_id,
        step=msg.step,
        iteration=msg.iteration,
        key_id=msg.key_id,
        spec=msg.spec,
        features=tuple(
            TrainFeatures(
                f.holder,
                f.table,
                f.key,
                tuple(f.columns),
                f.intercept,
                _features_from_proto(f.definitions),
            )
            for f in msg.features
        ),
        ids=tuple(msg.ids),
        validation_ids=tuple(msg.validation_ids),
        vouchers=tuple(msg.vouchers),
        ciphertexts=tuple(bytes(c) for c in msg.ciphertexts),
        gradients={g.holder: list(g.values) for g in msg.gradients},
        best=msg.best,
    )


def train_answer_to_proto(answer: TrainAnswer) -> train_pb2.TrainReply:
    return train_pb2.TrainReply(
        products=[
            train_pb2.TrainProducts(holder=h, ciphertexts=list(c))
            for h, c in answer.products.items()
        ],
        ciphertexts=list(answer.ciphertexts),
        digests=[
            train_pb2.TrainDigest(holder=h, digest=d, statement=answer.statements.get(h, ""))
            for h, d in answer.digests.items()
        ],
        receipts=list(answer.receipts),
    )


def train_answer_from_proto(msg: train_pb2.TrainReply) -> TrainAnswer:
    return TrainAnswer(
        {p.holder: [bytes(c) for c in p.ciphertexts] for p in msg.products},
        [bytes(c) for c in msg.ciphertexts],
        {d.holder: d.digest for d in msg.digests},
        list(msg.receipts),
        {d.holder: d.statement for d in msg.digests if d.statement},
    )
