"""One hostile request: where it goes, its bytes on the wire, and the hazards it carries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from unseen.engine.crypto import bfv
from unseen.engine.query.plan import SlotCodec
from unseen.v1 import audit_pb2, plan_pb2, query_pb2, score_pb2

__all__ = [
    "DEADLINE",
    "EXTRA_METHODS",
    "HEAVY_DEADLINE",
    "SERVICE_METHODS",
    "SS",
    "SU",
    "US",
    "UU",
    "Hostile",
    "deep_expr",
    "default_codec",
    "hazards_of",
    "int_field",
    "len_field",
    "method_path",
    "varint",
]

DEADLINE = 30.0
HEAVY_DEADLINE = 120.0

UU, US, SU, SS = "unary_unary", "unary_stream", "stream_unary", "stream_stream"
SERVICE_METHODS = {
    "GetCatalog": UU,
    "RegisterKey": SU,
    "HasKey": UU,
    "Aggregate": US,
    "PrepareModel": SU,
    "RegisterModel": SU,
    "HasModel": UU,
    "Score": SS,
    "ReadLedger": UU,  # holders only
}
EXTRA_METHODS = {
    "/grpc.health.v1.Health/Check": UU,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": SS,
    "/unseen.v1.Holder/NoSuchMethod": UU,
    "/no.such.Service/Call": SS,
}


def method_path(target: str, method: str) -> str:
    service = "Coordinator" if target == "coordinator" else "Holder"
    return f"/unseen.v1.{service}/{method}"


# -- wire helpers (for messages too big or too deep to build as objects) ---------------------


def varint(number: int) -> bytes:
    number &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def len_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def int_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def deep_expr(depth: int, boolean: bool) -> bytes:
    """An Expr ``depth`` nodes tall: NOT(NOT(... n IS NULL)) or -(-(... n))."""
    if boolean:
        expr = len_field(8, len_field(1, len_field(1, b"n")))  # is_null(column n)
        op = plan_pb2.UNARY_OP_NOT
    else:
        expr = len_field(1, b"n")
        op = plan_pb2.UNARY_OP_NEG
    for _ in range(depth - 1):
        expr = len_field(4, int_field(1, op) + len_field(2, expr))
    return expr


def default_codec() -> plan_pb2.SlotCodec:
    """The codec a real client sends (unseen.engine.query.plan.SlotCodec's defaults)."""
    c = SlotCodec(slots=bfv.PARAMS.slots)
    return plan_pb2.SlotCodec(
        limb_bits=c.limb_bits,
        count_limbs=c.count_limbs,
        sum_limbs=c.sum_limbs,
        square_limbs=c.square_limbs,
        fraction_bits=c.fraction_bits,
        slots=c.slots,
    )


# -- requests --------------------------------------------------------------------------------


@dataclass
class Hostile:
    """One hostile request: where it goes, what it carries and what it may legitimately hit."""

    index: int
    kind: str
    target: str  # "coordinator" or a holder's name
    method: str  # the full method path
    arity: str
    payload: bytes | list[bytes]
    deadline: float = DEADLINE
    hazards: frozenset[str] = frozenset()

    @property
    def size(self) -> int:
        if isinstance(self.payload, bytes):
            return len(self.payload)
        return sum(len(p) for p in self.payload)

    def describe(self, seed: int) -> str:
        hazards = f" hazards={sorted(self.hazards)}" if self.hazards else ""
        return (
            f"seed={seed} index={self.index} kind={self.kind} -> {self.target} {self.method} "
            f"({self.size} bytes){hazards}"
        )


# -- hazards: what a request may legitimately trip over, read back from its bytes ---------


def _parse(cls: Any, data: bytes) -> Any:
    try:
        return cls.FromString(data)
    except Exception:  # undecodable for us is undecodable for the server: no hazard
        return None


def _big_number(value: plan_pb2.Value) -> bool:
    kind = value.WhichOneof("kind")
    if kind == "float_value":
        return not math.isfinite(value.float_value) or abs(value.float_value) > 1e100
    if kind == "decimal_value":
        try:
            number = Decimal(value.decimal_value)
        except (InvalidOperation, ValueError):
            return False
        return number.is_finite() and number.adjusted() > 100
    return False


def _non_finite_expr(expr: plan_pb2.Expr) -> bool:
    """Whether a measure can sum to inf or NaN: a division, a huge or non-finite literal,
    or column ``ratio`` (whose data holds inf and NaN at h1)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        kind = node.WhichOneof("kind")
        if kind == "column" and node.column.lower() == "ratio":
            return True
        if kind == "literal" and _big_number(node.literal):
            return True
        if kind == "binary":
            if node.binary.op == plan_pb2.BINARY_OP_DIV:
                return True
            stack += [node.binary.left, node.binary.right]
        elif kind == "unary":
            stack.append(node.unary.operand)
        elif kind == "between":
            stack += [node.between.operand, node.between.low, node.between.high]
        elif kind in ("in_list", "like", "is_null"):
            stack.append(getattr(node, kind).operand)
    return False


def _non_finite_feature(spec: score_pb2.FeatureSpec) -> bool:
    return spec.column.lower() == "ratio"


def hazards_of(method: str, payload: bytes | list[bytes]) -> frozenset[str]:
    """Hazards of a request, derived from what it carries (however it was made):

    * ``non-finite``: an aggregate measure or a score feature that can meet inf or NaN;
    * ``ledger-range``: a ReadLedger range bound at or beyond 2^63;
    * ``model-id-path``: a model id that is not a plain file name (holders name a file
      after it).
    """
    parts = [payload] if isinstance(payload, bytes) else payload
    found: set[str] = set()
    if method == "Aggregate" and parts:
        request = _parse(query_pb2.AggregateRequest, parts[0])
        if request is not None and any(_non_finite_expr(m.expr) for m in request.plan.measures):
            found.add("non-finite")
    elif method == "ReadLedger" and parts:
        ledger = _parse(audit_pb2.ReadLedgerRequest, parts[0])
        if ledger is not None and max(ledger.start, ledger.end) >= 2**63:
            found.add("ledger-range")
    elif method in ("PrepareModel", "RegisterModel"):
        cls = score_pb2.PreparePart if method == "PrepareModel" else score_pb2.ModelPart
        for part in parts:
            message = _parse(cls, part)
            if message is None or message.WhichOneof("part") != "header":
                continue
            if any(_non_finite_feature(f) for f in message.header.features):
                found.add("non-finite")
            model_id = getattr(message.header, "model_id", "")
            if "/" in model_id or "\x00" in model_id or len(model_id.encode()) > 200:
                found.add("model-id-path")
    return frozenset(found)
