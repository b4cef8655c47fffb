"""The hostile mix: request ``index`` of a run, rebuilt from its seed and index alone."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

from tests.hostile.request import (
    DEADLINE,
    EXTRA_METHODS,
    HEAVY_DEADLINE,
    SERVICE_METHODS,
    SS,
    SU,
    US,
    UU,
    Hostile,
    deep_expr,
    default_codec,
    hazards_of,
    int_field,
    len_field,
    method_path,
)
from tests.hostile.world import ENTITIES, TEXTS, U_COLUMNS, Material
from unseen.engine.governance.access import sign_ledger_request
from unseen.engine.transport import serde
from unseen.v1 import audit_pb2, crypto_pb2, plan_pb2, query_pb2, score_pb2

__all__ = ["Generator"]


def _flip_bits(rng: random.Random, data: bytes, most: int) -> bytes:
    """``data`` with 1 to ``most`` random bits flipped (``data`` must not be empty)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, most)):
        buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


class Generator:
    """Builds request ``index`` of a run from ``random.Random(f"{seed}:{index}")`` alone."""

    WEIGHTS = (
        ("random", 10),
        ("mutated", 22),
        ("cross", 5),
        ("plan", 26),
        ("key", 5),
        ("model", 7),
        ("prepare", 6),
        ("score", 9),
        ("lookup", 3),
        ("ledger", 4),
        ("unicode", 3),
    )

    def __init__(self, seed: int, material: Material):
        self.seed = seed
        self.m = material
        self._kinds = [k for k, _ in self.WEIGHTS]
        self._weights = [w for _, w in self.WEIGHTS]
        self._messages = [m for bases in material.bases.values() for b in bases for m in b]

    def make(self, index: int) -> Hostile:
        rng = random.Random(f"{self.seed}:{index}")
        family = rng.choices(self._kinds, self._weights)[0]
        request: Hostile = getattr(self, f"_{family}")(rng, index)
        return request

    # -- helpers -----------------------------------------------------------------------------
    def _target(self, rng: random.Random, coordinator: float = 0.5) -> str:
        if rng.random() < coordinator:
            return "coordinator"
        return rng.choice(self.m.holders)

    def _service_method(self, rng: random.Random, target: str) -> str:
        names = [n for n in SERVICE_METHODS if target != "coordinator" or n != "ReadLedger"]
        return rng.choice(names)

    def _request(
        self,
        index: int,
        kind: str,
        target: str,
        method: str,
        payload: bytes | list[bytes],
        hazards: set[str] | frozenset[str] = frozenset(),
        deadline: float = DEADLINE,
    ) -> Hostile:
        arity = SERVICE_METHODS[method]
        if arity in (UU, US) and isinstance(payload, list):
            payload = payload[0] if payload else b""
        if arity in (SU, SS) and isinstance(payload, bytes):
            payload = [payload]
        return Hostile(
            index,
            kind,
            target,
            method_path(target, method),
            arity,
            payload,
            deadline,
            frozenset(hazards) | hazards_of(method, payload),
        )

    def _key_id(self, rng: random.Random) -> str:
        return rng.choices(
            [
                self.m.key.key_id,
                self.m.other.key_id,
                "",
                "0" * 64,
                self.m.key.key_id.upper(),
                "\U0001f600\x00" * 8,
                "k" * 100_000,
            ],
            [70, 5, 5, 5, 5, 5, 5],
        )[0]

    def _text(self, rng: random.Random) -> str:
        pick = rng.random()
        if pick < 0.6:
            return rng.choice(TEXTS)
        if pick < 0.8:
            return "".join(
                chr(rng.choice([0, 0x202E, 0x200F, 0x1F600, 0xFFFF, 0x10FFFF])) for _ in range(5)
            )
        if pick < 0.95:
            return "%" + rng.choice(TEXTS) + "_" + "\\"
        return rng.choice(TEXTS) * rng.randint(1000, 50_000)

    # -- random bytes ------------------------------------------------------------------------
    def _random(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        if rng.random() < 0.15:
            path, arity = rng.choice(list(EXTRA_METHODS.items()))
            kind = "random:extra"
        else:
            method = self._service_method(rng, target)
            path, arity = method_path(target, method), SERVICE_METHODS[method]
            kind = f"random:{method}"

        def blob() -> bytes:
            size = rng.choice([0, 1, 2, 7, 64, 500, 4096, rng.randint(0, 70_000)])
            return rng.randbytes(size)

        payload: bytes | list[bytes]
        payload = blob() if arity in (UU, US) else [blob() for _ in range(rng.randint(0, 6))]
        return Hostile(index, kind, target, path, arity, payload)

    # -- mutations of valid messages ---------------------------------------------------------
    @staticmethod
    def _mutate_bytes(rng: random.Random, data: bytes, splice: bytes) -> tuple[str, bytes]:
        op = rng.choice(
            ["flip", "truncate", "insert", "duplicate", "delete", "double", "varint", "splice"]
        )
        buf = bytearray(data)
        if op == "flip" and buf:
            buf = bytearray(_flip_bits(rng, data, 8))
        elif op == "truncate":
            del buf[rng.randint(0, len(buf)) :]
        elif op == "insert":
            at = rng.randint(0, len(buf))
            buf[at:at] = rng.randbytes(rng.randint(1, 32))
        elif op == "duplicate" and buf:
            a = rng.randrange(len(buf))
            b = rng.randint(a, min(len(buf), a + 64))
            at = rng.randint(0, len(buf))
            buf[at:at] = buf[a:b]
        elif op == "delete" and buf:
            a = rng.randrange(len(buf))
            del buf[a : a + rng.randint(1, 16)]
        elif op == "double":
            buf += data  # every field twice: scalars overwritten, repeated fields doubled
        elif op == "varint":
            at = rng.randint(0, len(buf))
            buf[at:at] = rng.choice([b"\xff" * 9 + b"\x01", b"\x0a\xff\xff\xff\xff\x0f", b"\x80"])
        else:
            at = rng.randint(0, len(buf))
            buf[at:] = splice[rng.randint(0, len(splice)) :]
        return op, bytes(buf)

    def _mutated(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        method = self._service_method(rng, target)
        base = list(rng.choice(self.m.bases[method]))
        splice = rng.choice(self._messages)
        ops = []
        if SERVICE_METHODS[method] in (SU, SS) and rng.random() < 0.4:
            op = rng.choice(["drop-first", "double-first", "reverse", "repeat", "empty", "extra"])
            ops.append(op)
            if op == "drop-first":
                base = base[1:]
            elif op == "double-first":
                base = base[:1] + base
            elif op == "reverse":
                base.reverse()
            elif op == "repeat":
                base = base + [base[-1]] * rng.randint(1, 40)
            elif op == "empty":
                base = []
            else:
                base.append(rng.randbytes(rng.randint(0, 200)))
        for _ in range(rng.randint(1, 3)):
            if not base:
                break
            at = rng.randrange(len(base))
            op, base[at] = self._mutate_bytes(rng, base[at], splice)
            ops.append(op)
        return self._request(index, f"mutated:{method}:{'+'.join(ops)}", target, method, base)

    def _cross(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        method = self._service_method(rng, target)
        source = rng.choice([m for m in self.m.bases if m != method])
        base = rng.choice(self.m.bases[source])
        return self._request(index, f"cross:{source}->{method}", target, method, list(base))

    # -- plans -------------------------------------------------------------------------------
    def _value(self, rng: random.Random) -> plan_pb2.Value:
        kind = rng.choice(["null", "int", "float", "decimal", "text", "bool", "date", "timestamp"])
        value = plan_pb2.Value()
        if kind == "null":
            value.null_value = rng.random() < 0.5
        elif kind == "int":
            value.int_value = rng.choice([0, 1, -1, 2**63 - 1, -(2**63), rng.randint(-1000, 1000)])
        elif kind == "float":
            number = rng.choice(
                [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e300, 5e-324, 0.5, rng.gauss(0, 9)]
            )
            value.float_value = number
        elif kind == "decimal":
            text = rng.choice(
                [
                    "1.50",
                    "-0",
                    "1e-999999999",
                    "1E+999999999",
                    "NaN",
                    "Infinity",
                    "sNaN",
                    "9" * 400,
                    "0." + "0" * 300 + "1",
                    "abc",
                    "",
                    "1_000",
                    "\uff11\uff12",  # fullwidth digits: Decimal accepts them
                    "\x00",
                    "12.345",
                ]
            )
            value.decimal_value = text
        elif kind == "text":
            value.text_value = self._text(rng)
        elif kind == "bool":
            value.bool_value = rng.random() < 0.5
        elif kind == "date":
            value.date_value = rng.choice(
                ["2021-03-01", "2020-02-30", "0000-00-00", "9999-12-31", "0001-01-01", "\x00", ""]
            )
        else:
            value.timestamp_value = rng.choice(
                [
                    "2021-03-01T10:00:00",
                    "2021-03-01 25:00",
                    "9999-12-31T23:59:59.999999",
                    "2021-03-01T00:00:00+05:00",
                    "\U0001f600",
                ]
            )
        return value

    def _column(self, rng: random.Random, table: str) -> str:
        if rng.random() < 0.85:
            if table == "g":
                return rng.choice(["acct", "city", "v"])
            return rng.choice(U_COLUMNS)
        return rng.choice(
            ["nope", "", "ID", "n\x00", 'amount"; DROP TABLE u; --', "\U0001f600", "a" * 10_000]
        )

    def _expr(self, rng: random.Random, depth: int, table: str) -> plan_pb2.Expr:
        node = plan_pb2.Expr()
        if depth <= 1 or rng.random() < 0.3:
            if rng.random() < 0.6:
                column = self._column(rng, table)
                node.column = column
            else:
                node.literal.CopyFrom(self._value(rng))
            return node
        kind = rng.choice(
            ["binary", "binary", "unary", "between", "in", "like", "is_null", "empty"]
        )
        if kind == "binary":
            op = rng.choice([*range(1, 13), 0, 99])
            node.binary.op = op  # type: ignore[assignment]
            node.binary.left.CopyFrom(self._expr(rng, depth - 1, table))
            if rng.random() < 0.95:
                node.binary.right.CopyFrom(self._expr(rng, depth - 1, table))
        elif kind == "unary":
            node.unary.op = rng.choice([0, 1, 2, 7])  # type: ignore[assignment]
            node.unary.operand.CopyFrom(self._expr(rng, depth - 1, table))
        elif kind == "between":
            for part in (node.between.operand, node.between.low, node.between.high):
                part.CopyFrom(self._expr(rng, depth - 1, table))
            node.between.negated = rng.random() < 0.3
        elif kind == "in":
            node.in_list.operand.CopyFrom(self._expr(rng, depth - 1, table))
            node.in_list.values.extend(self._value(rng) for _ in range(rng.randint(0, 8)))
            node.in_list.negated = rng.random() < 0.3
        elif kind == "like":
            node.like.operand.CopyFrom(self._expr(rng, depth - 1, table))
            node.like.pattern = self._text(rng)
            node.like.negated = rng.random() < 0.3
            node.like.case_insensitive = rng.random() < 0.3
        elif kind == "is_null":
            node.is_null.operand.CopyFrom(self._expr(rng, depth - 1, table))
            node.is_null.negated = rng.random() < 0.5
        else:
            node.binary.op = plan_pb2.BINARY_OP_AND  # both operands missing
        return node

    def _codec(self, rng: random.Random) -> plan_pb2.SlotCodec:
        codec = default_codec()
        if rng.random() < 0.3:
            for name, choices in (
                ("limb_bits", [0, 1, 7, 8, 24, 25, 64, 2**32 - 1]),
                ("count_limbs", [0, 1, 2, 3, 1000, 2**32 - 1]),
                ("sum_limbs", [0, 1, 16, 17, 1000]),
                ("square_limbs", [0, 1, 16, 17, 1000]),
                ("fraction_bits", [0, 64, 65, 2**31]),
                ("slots", [0, 1, 3, 2048, 8192, 2**31, 2**32 - 1]),
            ):
                if rng.random() < 0.4:
                    setattr(codec, name, rng.choice(choices))
        return codec

    def _groups(self, rng: random.Random, plan: plan_pb2.AggregatePlan, table: str) -> None:
        pick = rng.random()
        if pick < 0.45:
            return
        if pick < 0.7 and table == "u":
            group = plan.groups.add(column="cat")
            group.domain.extend(plan_pb2.Value.FromString(v) for v in self.m.cat_domain)
            if rng.random() < 0.2:
                group.domain.add(text_value="\U0001f600 not in the data")
            return
        if pick < 0.8:
            group = plan.groups.add(column=self._column(rng, table))
            group.domain.extend(self._value(rng) for _ in range(rng.randint(0, 6)))
            if rng.random() < 0.3 and group.domain:
                group.domain.append(group.domain[0])
            return
        if pick < 0.9:
            for column in rng.sample(U_COLUMNS, rng.randint(2, len(U_COLUMNS))):
                group = plan.groups.add(column=column)
                group.domain.extend(plan_pb2.Value(int_value=i) for i in range(rng.randint(1, 99)))
            return
        group = plan.groups.add(column=rng.choice(["flag", "n", "\x00"]))
        group.domain.extend(plan_pb2.Value(bool_value=b) for b in (True, False))

    def _literal(self, rng: random.Random, kind: str) -> plan_pb2.Expr:
        """A literal of the right type for ``kind`` with a hostile value."""
        node = plan_pb2.Expr()
        if kind == "int":
            node.literal.int_value = rng.choice([0, 1, -7, 2**31, 2**62, 2**63 - 1, -(2**63)])
        elif kind == "float":
            number = rng.choice([0.5, -0.0, 1e-300, 1e300, math.nan, math.inf, -math.inf, 3.25])
            node.literal.float_value = number
        elif kind == "text":
            node.literal.text_value = self._text(rng)
        elif kind == "date":
            node.literal.date_value = rng.choice(["2021-06-01", "0001-01-01", "9999-12-31"])
        else:
            node.literal.bool_value = rng.random() < 0.5
        return node

    def _predicate(self, rng: random.Random, table: str) -> plan_pb2.Expr:
        """A type-correct condition on ``table`` with hostile literals."""
        node = plan_pb2.Expr()
        numeric = ["v"] if table == "g" else ["n", "amount", "ratio"]
        texts = ["acct", "city"] if table == "g" else ["id", "cat", "\u540d\u524d"]
        pick = rng.random()
        if pick < 0.3:
            node.binary.op = rng.randint(1, 6)  # type: ignore[assignment]
            node.binary.left.column = rng.choice(numeric)
            node.binary.right.CopyFrom(self._literal(rng, rng.choice(["int", "float"])))
        elif pick < 0.45:
            node.like.operand.column = rng.choice(texts)
            node.like.pattern = self._text(rng)
            node.like.negated = rng.random() < 0.3
            node.like.case_insensitive = rng.random() < 0.3
        elif pick < 0.6:
            node.in_list.operand.column = rng.choice(texts)
            node.in_list.values.extend(
                plan_pb2.Value(text_value=self._text(rng)) for _ in range(rng.randint(0, 6))
            )
            node.in_list.negated = rng.random() < 0.3
        elif pick < 0.7 and table == "u":
            node.binary.op = rng.choice([3, 4, 5, 6])  # type: ignore[assignment]
            node.binary.left.column = "day"
            node.binary.right.CopyFrom(self._literal(rng, "date"))
        elif pick < 0.8:
            node.between.operand.column = rng.choice(numeric)
            node.between.low.CopyFrom(self._literal(rng, "float"))
            node.between.high.CopyFrom(self._literal(rng, "int"))
            node.between.negated = rng.random() < 0.3
        elif pick < 0.9:
            node.is_null.operand.column = rng.choice(numeric + texts)
            node.is_null.negated = rng.random() < 0.5
        else:
            node.unary.op = plan_pb2.UNARY_OP_NOT
            node.unary.operand.CopyFrom(self._predicate(rng, table))
        return node

    def _tame(self, rng: random.Random, plan: plan_pb2.AggregatePlan, table: str) -> None:
        """A plan that passes the checks more often than not, so execution paths are reached."""
        table = table if table in ("u", "g") else "u"
        plan.table = table
        predicates = [self._predicate(rng, table) for _ in range(rng.randint(0, 3))]
        for predicate in predicates:
            if not plan.HasField("filter"):
                plan.filter.CopyFrom(predicate)
                continue
            joined = plan_pb2.Expr()
            joined.binary.op = rng.choice([7, 7, 8])  # type: ignore[assignment]
            joined.binary.left.CopyFrom(plan.filter)
            joined.binary.right.CopyFrom(predicate)
            plan.filter.CopyFrom(joined)
        if table == "u" and rng.random() < 0.4:
            group = plan.groups.add(column="cat")
            group.domain.extend(plan_pb2.Value.FromString(v) for v in self.m.cat_domain)
        if table == "u" and rng.random() < 0.2:
            group = plan.groups.add(column="flag")
            group.domain.extend(plan_pb2.Value(bool_value=b) for b in (False, True))
        integer = plan_pb2.NUMERIC_ENCODING_INTEGER
        floating = plan_pb2.NUMERIC_ENCODING_FLOAT
        for _ in range(rng.randint(0, 3)):
            expr = plan_pb2.Expr()
            pick = rng.random()
            if table == "g" or pick < 0.3:
                expr.column = "v" if table == "g" else "n"
                if rng.random() < 0.3:
                    inner = plan_pb2.Expr()
                    inner.binary.op = rng.choice([9, 10, 11])  # type: ignore[assignment]
                    inner.binary.left.CopyFrom(expr)
                    inner.binary.right.CopyFrom(self._literal(rng, "int"))
                    expr = inner
                encoding = integer
            elif pick < 0.7:
                expr.column = rng.choice(["amount", "amount", "ratio"])
                if rng.random() < 0.4:
                    inner = plan_pb2.Expr()
                    inner.binary.op = rng.choice([9, 10, 11, 12])  # type: ignore[assignment]
                    inner.binary.left.CopyFrom(expr)
                    inner.binary.right.CopyFrom(
                        self._literal(rng, "float")
                        if rng.random() < 0.5
                        else plan_pb2.Expr(column="n")
                    )
                    expr = inner
                encoding = floating
            else:
                expr.unary.op = plan_pb2.UNARY_OP_NEG
                expr.unary.operand.column = "amount"
                encoding = floating
            plan.measures.add(
                expr=expr,
                encoding=encoding,
                want_sum=rng.random() < 0.85,
                want_square=rng.random() < 0.4,
            )
        plan.codec.CopyFrom(default_codec())

    def _plan(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng, 0.6)
        table_pick = rng.random()
        if table_pick < 0.8:
            table = (
                "g" if target == "hg" or (target == "coordinator" and rng.random() < 0.1) else "u"
            )
        else:
            table = rng.choice(["nope", "", "U", "u\x00", "\U0001f600", "u" * 100_000, "g"])
        hazards: set[str] = set()
        deadline = DEADLINE
        plan = plan_pb2.AggregatePlan(table=table)
        variant = rng.choices(
            ["random", "tame", "deep", "huge-domain", "huge-in", "max-slots", "many-measures"],
            [44, 38, 6, 4, 3, 1, 4],
        )[0]
        filter_bytes = b""
        if variant == "tame":
            self._tame(rng, plan, table)
        elif variant == "random":
            if rng.random() < 0.7:
                plan.filter.CopyFrom(self._expr(rng, rng.randint(1, 6), table))
            self._groups(rng, plan, table)
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                plan.measures.add(
                    expr=self._expr(rng, rng.randint(1, 4), table),
                    encoding=rng.choice([1, 1, 3, 3, 2, 0, 7]),  # type: ignore[arg-type]
                    decimal_scale=rng.choice([0, 0, 2, 18, 38, 39, 10**9, 2**32 - 1]),
                    want_sum=rng.random() < 0.8,
                    want_square=rng.random() < 0.4,
                )
            if rng.random() > 0.03:
                plan.codec.CopyFrom(self._codec(rng))
        else:
            plan.codec.CopyFrom(self._codec(rng) if rng.random() < 0.2 else default_codec())
            plan.measures.add(
                expr=plan_pb2.Expr(column="n"),
                encoding=plan_pb2.NUMERIC_ENCODING_INTEGER,
                want_sum=True,
            )
        if variant == "deep":
            depth = rng.choice([rng.randint(20, 47), rng.randint(48, 64), 65, 100, 1000, 5000])
            variant = f"deep-{depth}"
            if rng.random() < 0.5:
                filter_bytes = len_field(2, deep_expr(depth, boolean=True))
            else:
                # The measure's expression is the deep one instead (spliced on the wire).
                plan.ClearField("measures")
                filter_bytes = len_field(
                    4,
                    len_field(1, deep_expr(depth, boolean=False))
                    + int_field(2, plan_pb2.NUMERIC_ENCODING_INTEGER)
                    + int_field(4, 1),
                )
        elif variant == "huge-domain":
            size = rng.choice([65_537, 1_000_000, 2_000_000])

            def domain(size: int = size) -> bytes:
                values = b"".join(len_field(2, int_field(2, i)) for i in range(size))
                return len_field(3, len_field(1, b"n") + values)

            filter_bytes = self.m.big(f"domain-{size}", domain)
            variant = f"huge-domain-{size}"
            hazards.add("heavy")
            deadline = HEAVY_DEADLINE
        elif variant == "huge-in":
            size = rng.choice([1000, 5000, 100_001, 1_500_000])

            def in_list(size: int = size) -> bytes:
                values = b"".join(
                    len_field(2, len_field(5, f"\U0001f600{i}".encode())) for i in range(size)
                )
                return len_field(2, len_field(6, len_field(1, len_field(1, b"id")) + values))

            filter_bytes = self.m.big(f"in-{size}", in_list)
            variant = f"huge-in-{size}"
            hazards.add("heavy")
            deadline = HEAVY_DEADLINE
        elif variant == "max-slots":
            # Valid and as large as the limits allow: 2^20 slots, 256 ciphertexts per holder.
            plan.ClearField("measures")
            plan.codec.count_limbs = 1 << 20
            plan.ClearField("groups")
            plan.ClearField("filter")
            hazards.add("heavy")
            deadline = HEAVY_DEADLINE
        elif variant == "many-measures":
            plan.ClearField("measures")
            for _ in range(rng.choice([64, 65, 500])):
                plan.measures.add(
                    expr=plan_pb2.Expr(column="amount"),
                    encoding=plan_pb2.NUMERIC_ENCODING_FLOAT,
                    want_sum=True,
                    want_square=True,
                )
        request = query_pb2.AggregateRequest(key_id=self._key_id(rng), plan=plan)
        if rng.random() < 0.1:
            request.vouchers.extend(
                rng.choice(["", "unseen-voucher.x.y", "\U0001f600", "v" * 70_000, "a.b.c"])
                for _ in range(rng.randint(1, 3))
            )
        if rng.random() < 0.05:
            request.request_id = self._text(rng)
        data = request.SerializeToString()
        if filter_bytes:
            # Append the big or deep part inside the plan (field 2 of the request).
            plan_bytes = plan.SerializeToString() + filter_bytes
            rest = query_pb2.AggregateRequest(
                key_id=request.key_id, vouchers=request.vouchers, request_id=request.request_id
            ).SerializeToString()
            data = rest + len_field(2, plan_bytes)
        return self._request(index, f"plan:{variant}", target, "Aggregate", data, hazards, deadline)

    # -- keys --------------------------------------------------------------------------------
    def _key(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        variant = rng.choices(
            [
                "private",
                "bfv",
                "degree-4096",
                "degree-16384",
                "keyless",
                "other",
                "valid",
                "garbage",
                "truncated",
                "flipped",
                "empty",
                "oversized",
                "huge-chunk",
                "many-small-chunks",
            ],
            [10, 8, 8, 4, 8, 5, 8, 10, 10, 10, 6, 1, 1, 3],
        )[0]
        deadline = DEADLINE
        hazards: set[str] = set()
        valid = self.m.key.public
        if variant in self.m.contexts:
            chunks = [c.data for c in serde.key_chunks(self.m.contexts[variant])]
        elif variant == "garbage":
            chunks = [rng.randbytes(rng.choice([1, 100, 500_000]))]
        elif variant == "truncated":
            cut = valid[: rng.randint(1, len(valid) - 1)]
            chunks = [c.data for c in serde.key_chunks(cut)]
        elif variant == "flipped":
            chunks = [_flip_bits(rng, valid, 4)]
        elif variant == "empty":
            chunks = rng.choice([[], [b""], [b""] * 10])
        elif variant == "oversized":
            block = self.m.big("zero-mib", lambda: bytes(1 << 20))
            chunks = [block] * 65  # past the 64 MiB bound, each chunk within limits
            hazards.add("heavy")
            deadline = HEAVY_DEADLINE
        elif variant == "huge-chunk":
            chunks = [self.m.big("zero-17mib", lambda: bytes(17 << 20))]
            deadline = HEAVY_DEADLINE
        else:
            chunks = [valid[i : i + 997] for i in range(0, len(valid), 997)]
        payload = [crypto_pb2.KeyChunk(data=c).SerializeToString() for c in chunks]
        return self._request(
            index, f"key:{variant}", target, "RegisterKey", payload, hazards, deadline
        )

    # -- scoring -----------------------------------------------------------------------------
    def _feature(self, rng: random.Random) -> score_pb2.FeatureSpec:
        if rng.random() < 0.5:
            spec = serde.feature_to_proto(rng.choice(self.m.specs))
        else:
            spec = score_pb2.FeatureSpec(
                table=rng.choice(["u", "u", "g", "nope", "", "U\x00"]),
                column=self._column(rng, "u"),
                key=rng.choice(["id", "id", "cat", "nope", "", "amount"]),
                aggregate=rng.choice(["", "sum", "avg", "count", "min", "max", "median", "\x00"]),
                transform=rng.choice(["", "", "log1p", "exp", "\U0001f600"]),
            )
        if rng.random() < 0.3:
            spec.default_value = rng.choice([0.0, -1.0, 1e300, math.nan, math.inf, 5e-324])
        if rng.random() < 0.15:
            spec.filter.CopyFrom(self._expr(rng, rng.randint(1, 5), "u"))
        return spec

    def _ids(self, rng: random.Random) -> list[str]:
        count = rng.choice([0, 1, 3, 12, 200, 4097])
        ids = [rng.choice(ENTITIES) for _ in range(count)]
        if ids and rng.random() < 0.4:
            for _ in range(rng.randint(1, 4)):
                ids[rng.randrange(len(ids))] = rng.choice(
                    [
                        "",
                        "\x00",
                        "\U0001f600",
                        "\u202e1",
                        "9" * 30,
                        "-9223372036854775809",
                        "x" * rng.choice([1000, 65_536]),
                    ]
                )
        return ids

    def _announce(self, rng: random.Random, actual: int) -> int:
        return rng.choices(
            [actual, actual + 1, max(0, actual - 1), 0, 5_000_000, 5_000_001, 2**64 - 1],
            [70, 6, 6, 4, 6, 4, 4],
        )[0]

    def _entity_parts(self, rng: random.Random, ids: list[str], cls: Any) -> list[bytes]:
        chunk = rng.choice([1, 7, 4096])
        parts = [
            cls(entities=score_pb2.EntityChunk(ids=ids[i : i + chunk])).SerializeToString()
            for i in range(0, len(ids), chunk)
        ]
        if rng.random() < 0.05:
            parts.append(cls(entities=score_pb2.EntityChunk()).SerializeToString())
        return parts

    @staticmethod
    def _shuffle_header(rng: random.Random, parts: list[bytes]) -> tuple[str, list[bytes]]:
        pick = rng.random()
        if pick < 0.06:
            return "no-header", parts[1:]
        if pick < 0.1:
            return "two-headers", [parts[0], *parts]
        if pick < 0.13 and len(parts) > 1:
            return "header-last", [*parts[1:], parts[0]]
        if pick < 0.15:
            return "empty-stream", []
        return "", parts

    def _prepare(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        features = [self._feature(rng) for _ in range(rng.choice([0, 1, 2, 3, 40]))]
        ids = self._ids(rng)
        header = score_pb2.PrepareModelRequest(
            key_id=self._key_id(rng),
            features=features,
            entities=self._announce(rng, len(ids)),
        )
        parts = [score_pb2.PreparePart(header=header).SerializeToString()]
        parts += self._entity_parts(rng, ids, score_pb2.PreparePart)
        shape, parts = self._shuffle_header(rng, parts)
        kind = f"prepare:{len(features)}-features:{len(ids)}-ids" + (f":{shape}" if shape else "")
        return self._request(index, kind, target, "PrepareModel", parts)

    def _model(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        count = rng.choice([0, 1, 1, 2, 3])
        features = [self._feature(rng) for _ in range(count)]
        exponents = [
            rng.choices([0, 5, 20, 1000, 1001, -1, 2**31 - 1], [30, 20, 20, 8, 8, 7, 7])[0]
            for _ in range(count if rng.random() < 0.9 else count + 1)
        ]
        model_id = rng.choice(
            [f"hostile-{rng.getrandbits(64):016x}", "", "\x00", "\U0001f600" * 3, "m" * 100_000]
        )
        header = score_pb2.ModelHeader(
            key_id=self._key_id(rng), model_id=model_id, features=features, exponents=exponents
        )
        kinds = rng.choices(
            [*self.m.weights, "garbage", "truncated", "flipped", "empty"],
            [30, 8, 8, 8, 8, 6, 8, 8, 8, 6],  # valid, other-key, low-scale, degree, short, bfv, ...
            k=max(count, 1),
        )
        parts = [score_pb2.ModelPart(header=header).SerializeToString()]
        for position, wkind in enumerate(kinds):
            valid = self.m.weights["valid"]
            if wkind in self.m.weights:
                data = self.m.weights[wkind]
            elif wkind == "garbage":
                data = rng.randbytes(rng.choice([10, 300_000]))
            elif wkind == "truncated":
                data = valid[: rng.randint(0, len(valid) - 1)]
            elif wkind == "flipped":
                data = _flip_bits(rng, valid, 3)
            else:
                data = b""
            feature = rng.choices([position, position + 1, 0, 2**32 - 1], [85, 5, 5, 5])[0]
            parts.append(
                score_pb2.ModelPart(
                    weight=score_pb2.WeightCiphertext(feature=feature, data=data)
                ).SerializeToString()
            )
        shape, parts = self._shuffle_header(rng, parts)
        kind = f"model:{'+'.join(sorted(set(kinds)))}" + (f":{shape}" if shape else "")
        return self._request(index, kind, target, "RegisterModel", parts)

    def _score(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng, 0.6)
        ids = self._ids(rng)
        model_id = rng.choices(
            [self.m.model_id, "hostile-unknown", "", "\U0001f600", "m" * 70_000], [75, 10, 5, 5, 5]
        )[0]
        announced = self._announce(rng, len(ids))
        header = score_pb2.ScoreHeader(
            model_id=model_id,
            key_id=self._key_id(rng),
            entities=announced,
            request_id=rng.choice(["", "r1", "\x00"]),
        )
        if rng.random() < 0.1:
            header.vouchers.extend(["garbage", "\U0001f600"])
        parts = [score_pb2.ScorePart(header=header).SerializeToString()]
        parts += self._entity_parts(rng, ids, score_pb2.ScorePart)
        shape, parts = self._shuffle_header(rng, parts)
        lie = "" if announced == len(ids) else f":announced-{announced}"
        kind = f"score:{len(ids)}-ids{lie}" + (f":{shape}" if shape else "")
        return self._request(index, kind, target, "Score", parts)

    # -- lookups, ledger, unicode queries -----------------------------------------------------
    def _lookup(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng)
        method = rng.choice(["HasKey", "HasModel", "GetCatalog"])
        if method == "HasKey":
            data = crypto_pb2.HasKeyRequest(key_id=self._key_id(rng)).SerializeToString()
        elif method == "HasModel":
            data = score_pb2.HasModelRequest(
                key_id=self._key_id(rng), model_id=rng.choice([self.m.model_id, self._text(rng)])
            ).SerializeToString()
        else:
            # Unknown fields of every wire type: a valid GetCatalogRequest must ignore them.
            data = (
                int_field(1, 7)
                + len_field(2, rng.randbytes(30))
                + int_field(999, 2**64 - 1)
                + len_field(5000, self._text(rng).encode())
            )
        return self._request(index, f"lookup:{method}", target, method, data)

    def _ledger(self, rng: random.Random, index: int) -> Hostile:
        target = "hg" if rng.random() < 0.8 else rng.choice(self.m.holders)
        variant = rng.choice(
            [
                "forged",
                "short-signature",
                "long-signature",
                "empty-signature",
                "unknown-supervisor",
                "rogue",
                "tampered",
                "stale",
                "future",
                "absurd-range",
                "garbage-time",
                "valid",
            ]
        )
        start, end = 1, rng.choice([0, 3])
        now = dt.datetime.now(dt.UTC)
        if variant == "stale":
            now -= dt.timedelta(hours=2)
        elif variant == "future":
            now += dt.timedelta(hours=2)
        elif variant == "absurd-range":
            start, end = rng.choice(
                [(0, 0), (5, 2), (2**63 - 1, 0), (2**63, 0), (2**64 - 1, 0), (1, 2**64 - 1)]
            )
        signer = self.m.rogue if variant == "rogue" else self.m.supervisor
        fields, signature = sign_ledger_request(signer, target, start, end, now)
        issued = str(fields["issued_at"])
        supervisor = self.m.supervisor.key_id
        if variant == "forged":
            signature = rng.randbytes(64)
        elif variant == "short-signature":
            signature = signature[: rng.randint(1, 63)]
        elif variant == "long-signature":
            signature += rng.randbytes(rng.choice([1, 10_000]))
        elif variant == "empty-signature":
            signature = b""
        elif variant == "unknown-supervisor":
            supervisor = rng.choice(["", "0" * 64, self.m.rogue.key_id, "\U0001f600"])
        elif variant == "tampered":
            start += 1
        elif variant == "garbage-time":
            issued = rng.choice(["", "yesterday", "\x00", "2021-13-45T99:99:99Z"])
        request = audit_pb2.ReadLedgerRequest(
            supervisor_key_id=supervisor,
            start=start,
            end=end,
            issued_at=issued,
            signature=signature,
        )
        return self._request(
            index, f"ledger:{variant}", target, "ReadLedger", request.SerializeToString()
        )

    def _unicode(self, rng: random.Random, index: int) -> Hostile:
        target = self._target(rng, 0.7)
        if target == "hg":
            target = "coordinator"
        plan = plan_pb2.AggregatePlan(table="u")
        column = rng.choice(["cat", "\u540d\u524d", "id"])
        text = rng.choice([t for t in TEXTS if len(t) < 100] + ENTITIES[:6])
        pick = rng.random()
        if pick < 0.3:
            plan.filter.like.operand.column = column
            plan.filter.like.pattern = f"%{text}%"
            plan.filter.like.case_insensitive = rng.random() < 0.5
        elif pick < 0.6:
            plan.filter.in_list.operand.column = column
            plan.filter.in_list.values.extend(
                plan_pb2.Value(text_value=t) for t in rng.sample(TEXTS, 4)
            )
        else:
            plan.filter.binary.op = plan_pb2.BINARY_OP_EQ
            plan.filter.binary.left.column = column
            plan.filter.binary.right.literal.text_value = text
        if rng.random() < 0.5:
            group = plan.groups.add(column="cat")
            group.domain.extend(plan_pb2.Value.FromString(v) for v in self.m.cat_domain)
        plan.measures.add(
            expr=plan_pb2.Expr(column="amount"),
            encoding=plan_pb2.NUMERIC_ENCODING_FLOAT,
            want_sum=True,
            want_square=rng.random() < 0.5,
        )
        plan.codec.CopyFrom(default_codec())
        request = query_pb2.AggregateRequest(key_id=self.m.key.key_id, plan=plan)
        return self._request(
            index, "unicode:query", target, "Aggregate", request.SerializeToString()
        )
