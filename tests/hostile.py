"""Hostile requests against running unseen nodes: generators, a firing harness and a report.

Used by ``tests/integration/test_hostile.py`` (``UNSEEN_HOSTILE_REQUESTS`` requests, default
800) and by ``scripts/stress.py`` (10 000). The world is a federation of separate processes:
holders h0 (Parquet), h1 (SQLite) and h2 (CSV) host a unicode- and NULL-heavy table ``u``
horizontally; hg serves ``g`` from a DuckDB file under a config file with a ledger and a
trusted supervisor key, so that ReadLedger has something to guard; a coordinator fronts them.

Request ``i`` of a run is built from ``random.Random(f"{seed}:{i}")`` alone, so
:meth:`Generator.make` rebuilds exactly the request that failed. Kinds (the prefix of
:attr:`Hostile.kind`):

* ``random``   random bytes to every method of both services (and health, reflection and an
               unknown method), unary and streaming;
* ``mutated``  valid serialised requests with bits flipped, truncated, bytes inserted, slices
               or whole messages duplicated (protobuf merges duplicated fields), stream parts
               dropped, doubled or reordered;
* ``cross``    a valid message of one method sent to another;
* ``plan``     structurally valid hostile plans: deep expressions (up to thousands of levels),
               group domains of millions of values, huge IN lists, unknown or unicode/NUL
               tables and columns, wrong types, absurd codecs, NaN/inf/huge literals;
* ``key``      private, BFV, wrong-degree, keyless, garbage, truncated, oversized contexts;
* ``model``, ``prepare``, ``score``  garbage, foreign-key, other-degree and truncated weights,
               lying entity counts (more, fewer, millions), unknown models, hostile entity ids;
* ``ledger``   ReadLedger with forged, truncated, rogue, stale or tampered signatures, and
               properly signed absurd ranges;
* ``lookup``, ``unicode``  odd key and model ids; valid queries with unicode/NUL literals.

Three hostile inputs are deliberately *not* in the mix because each is pinned by its own
test and would otherwise drown everything else: public contexts carrying Galois keys
(~80 MB of memory each per node), slow request streams (thread starvation) and entity lists
of gigabytes.

Outcome of a request: any gRPC status within its deadline is an answer. INTERNAL and UNKNOWN
are defects (the server failed on its input), DEADLINE_EXCEEDED is a hang and UNAVAILABLE means
a node went away. A defect that matches a :data:`KNOWN_DEFECTS` entry (an exact status text
and, where needed, a hazard read back from the request's own bytes by :func:`hazards_of`, such
as a measure that divides) is counted apart; each known defect is pinned by a strict xfail
test in ``tests/integration/test_hostile.py``, so fixing it turns that test into a failure
that asks for the entry to be removed. Requests at the size limits ("heavy") are fired one at
a time: several at once exceed the memory bound, which has its own pinned test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import grpc
import numpy as np
import psutil
import tenseal as ts
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine import ckks, serde
from engine.client import Client
from engine.governance import sign_ledger_request
from engine.keys import AnalystKey
from engine.model import Feature, FeatureSpec, Model
from engine.plan import SlotCodec
from engine.query import GroupRef
from engine.signing import SigningKey
from engine.verify import plaintext_scores, suppressed_keys, verify
from protos.unseen.v1 import audit_pb2, catalog_pb2, crypto_pb2, plan_pb2, query_pb2, score_pb2
from tests.shards import load_duckdb, write_shard
from unseen.federation import LocalFederation

__all__ = [
    "KNOWN_DEFECTS",
    "REQUESTS",
    "RSS_BOUND",
    "SERVICE_METHODS",
    "Caller",
    "Generator",
    "Hostile",
    "KnownDefect",
    "Material",
    "MemoryWatch",
    "Outcome",
    "Report",
    "World",
    "addresses_of",
    "build_world",
    "deep_expr",
    "default_codec",
    "hazards_of",
    "health",
    "int_field",
    "len_field",
    "make_material",
    "method_path",
    "peak_rss",
    "probe",
    "replay",
    "run_hostile",
    "server_pids",
    "start_federation",
    "varint",
]

REQUESTS = int(os.environ.get("UNSEEN_HOSTILE_REQUESTS", "800"))
# Peak resident memory allowed to any one server process (children included).
RSS_BOUND = int(os.environ.get("UNSEEN_HOSTILE_RSS_MB", "1536")) << 20
DEADLINE = 30.0
HEAVY_DEADLINE = 120.0
MAX_MESSAGE = 64 << 20  # what this harness's channels accept and send

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

# -- the world -------------------------------------------------------------------------------

# Written as escapes so the source stays ASCII: emoji, right-to-left override and mark,
# zero-width space, NUL, Hebrew, CJK, a flag, combining marks, dotted capital I, sharp s.
TEXTS = (
    "\U0001f600",
    "\u202eevil\u202c",
    "a\x00b",
    "\x00",
    "\u00df",
    "\u0130",
    "\u05e9\u05dc\u05d5\u05dd\u200f",
    "\u200b",
    "plain",
    "\u540d\u5b57",
    "\U0001f1e8\U0001f1f3",
    "e\u0301\u0301\u0301",
    "",
)
CATS = (*TEXTS[:8], "", None)
U_SCHEMA = [
    ("id", "VARCHAR"),
    ("cat", "VARCHAR"),
    ("\u540d\u524d", "VARCHAR"),  # a column named in Japanese, mostly NULL
    ("n", "BIGINT"),  # mostly NULL
    ("amount", "DOUBLE"),
    ("ratio", "DOUBLE"),  # h1 holds inf and NaN here: real data does
    ("day", "DATE"),
    ("flag", "BOOLEAN"),
]
U_COLUMNS = [name for name, _ in U_SCHEMA]
G_SCHEMA = [("acct", "VARCHAR"), ("city", "VARCHAR"), ("v", "BIGINT")]
ENTITIES = [
    f"ent-{j}" + ("\U0001f600" if j % 5 == 0 else "") + ("\x00" if j % 7 == 3 else "")
    for j in range(48)
]
HOLDER_FORMATS = {"h0": ".parquet", "h1": ".sqlite", "h2": ".csv"}
K = 5


def _u_rows(rng: random.Random, holder: str, count: int) -> list[tuple[Any, ...]]:
    csv = HOLDER_FORMATS[holder] == ".csv"
    rows = []
    for i in range(count):
        cat = rng.choice(CATS)
        if csv and cat == "":
            cat = None  # CSV cannot tell an empty string from NULL
        name = None if rng.random() < 0.85 else rng.choice(TEXTS[:-1] if csv else TEXTS)
        ratio = rng.uniform(0, 1)
        if holder == "h1" and i % 17 == 0:
            ratio = float("inf") if i % 34 == 0 else float("nan")
        rows.append(
            (
                rng.choice(ENTITIES),
                cat,
                name,
                None if rng.random() < 0.8 and i > 2 else rng.randint(-1000, 1000),
                None if rng.random() < 0.1 and i > 2 else round(rng.uniform(-1e4, 1e4), 3),
                ratio,
                dt.date(2021, 1, 1) + dt.timedelta(days=rng.randint(0, 800)),
                None if rng.random() < 0.3 and i > 2 else rng.random() < 0.5,
            )
        )
    return rows


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


@dataclass
class World:
    """Data, keys and a plaintext reference of the hostile federation."""

    root: Path
    holders: dict[str, Mapping[str, Path] | Path]
    reference: duckdb.DuckDBPyConnection
    shards: list[str]
    supervisor: SigningKey
    rogue: SigningKey
    g_total: tuple[int, int]  # COUNT(*), SUM(v) of table g

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.reference.cursor()


def build_world(root: Path, seed: int = 7) -> World:
    """Write the tables, keys and hg's config under ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    reference = duckdb.connect()
    holders: dict[str, Mapping[str, Path] | Path] = {}
    pooled: list[tuple[Any, ...]] = []
    shards = []
    for name, suffix in HOLDER_FORMATS.items():
        rows = _u_rows(rng, name, 70)
        pooled += rows
        path = write_shard(root / "data" / f"u_{name}{suffix}", U_SCHEMA, rows, table="u")
        holders[name] = {"u": path}
        load_duckdb(reference, U_SCHEMA, rows, f"u@{name}")
        shards.append(f"u@{name}")
    load_duckdb(reference, U_SCHEMA, pooled, "u")
    g_rows = [(f"acct-{i % 9}", rng.choice(["Hangzhou", "Ningbo"]), i * 7 - 50) for i in range(30)]
    write_shard(root / "data" / "g.duckdb", G_SCHEMA, g_rows, table="g")
    keys = root / "keys"
    keys.mkdir(exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    supervisor, rogue, holder_key = (
        SigningKey.generate(),
        SigningKey.generate(),
        SigningKey.generate(),
    )
    supervisor.save(keys / "supervisor.key")
    holder_key.save(keys / "hg.key")
    columns = {
        "acct": {"uses": ["entity", "filter", "group"]},
        "city": {"uses": ["filter", "group"], "domain": "auto"},
        "v": {"uses": ["aggregate", "score", "filter"]},
    }
    lines = [
        "[node]",
        'name = "hg"',
        "",
        "[governance]",
        "require_vouchers = false",
        'supervisors = ["keys/supervisor.key.pub"]',
        'ledger = "state/hg.ledger"',
        'signing_key = "keys/hg.key"',
        "",
        "[tables.g]",
        'source = "data/g.duckdb"',
        "k = 2",
        "",
        "[tables.g.columns]",
        *[f"{c} = {_toml(p)}" for c, p in columns.items()],
    ]
    config = root / "hg.toml"
    config.write_text("\n".join(lines) + "\n")
    holders["hg"] = config
    g_total = (len(g_rows), sum(r[2] for r in g_rows))
    return World(root, holders, reference, shards, supervisor, rogue, g_total)


def start_federation(world: World) -> LocalFederation:
    """Start the world's holders and coordinator as separate processes (port 0)."""
    fed = LocalFederation(world.holders, world.root / "logs")
    fed.start()
    return fed


# -- memory ----------------------------------------------------------------------------------


def _tree(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(pid: int) -> int:
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of resident memory (VmHWM) of ``pid``, in bytes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class MemoryWatch:
    """Samples the resident memory of server processes (with their children) in a thread.

    ``peak`` per name is the largest of the sampled totals and the kernel's high-water mark,
    so a spike between two samples is not missed for the main process.
    """

    def __init__(self, pids: Mapping[str, int], interval: float = 0.1):
        self.pids = dict(pids)
        self.interval = interval
        self.sampled: dict[str, int] = dict.fromkeys(self.pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-watch")

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.sampled[name] = max(self.sampled[name], _rss(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> dict[str, int]:
        return {n: max(self.sampled[n], peak_rss(p)) for n, p in self.pids.items()}

    def window_peak(self) -> dict[str, int]:
        """Peaks sampled while watching (no kernel high-water mark from before)."""
        return dict(self.sampled)


def server_pids(fed: LocalFederation) -> dict[str, int]:
    pids = {n.name: n.process.pid for n in fed.nodes}
    assert fed.coordinator is not None
    pids["coordinator"] = fed.coordinator.process.pid
    return pids


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


# -- material: keys, contexts, ciphertexts and valid messages to mutate ----------------------


def _context(scheme: str, degree: int, bits: list[int]) -> ts.Context:
    if scheme == "bfv":
        return ts.context(
            ts.SCHEME_TYPE.BFV, degree, plain_modulus=1032193, coeff_mod_bit_sizes=bits
        )
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, degree, coeff_mod_bit_sizes=bits)
    ctx.global_scale = 2.0**30
    return ctx


def sane_model() -> Model:
    """The probe's model: additive over the three hosts of ``u``, so every holder computes it."""
    return Model(
        entity="id",
        features=(
            Feature(table="u", column="amount", weight=0.25, aggregate="sum"),
            Feature(table="u", column="n", weight=-1.5, aggregate="count"),
        ),
        intercept=3.0,
        link="identity",
    )


@dataclass
class Material:
    """Everything the generators draw from; built once per federation."""

    key: AnalystKey
    other: AnalystKey
    model_id: str
    supervisor: SigningKey
    rogue: SigningKey
    holders: list[str]
    contexts: dict[str, bytes]
    weights: dict[str, bytes]
    bases: dict[str, list[list[bytes]]]
    cat_domain: list[bytes]  # serialised Values of u.cat's published domain
    specs: list[FeatureSpec]
    _big: dict[str, bytes] = field(default_factory=dict)
    _big_lock: threading.Lock = field(default_factory=threading.Lock)

    def big(self, name: str, build: Callable[[], bytes]) -> bytes:
        """A large payload built once and shared (huge domains and IN lists)."""
        with self._big_lock:
            if name not in self._big:
                self._big[name] = build()
            return self._big[name]


def make_material(fed: LocalFederation, world: World, key: AnalystKey) -> Material:
    """Register the probe key and model, and prepare contexts, ciphertexts and bases."""
    with Client(fed.address, key=key, timeout=60) as client:
        client.register_key()
        catalog = client.catalog()
        model = sane_model()
        model_id, _ = client.register_model(model, ENTITIES, catalog)
        specs = list(client.feature_specs(model, catalog))
        plans = [
            client.compile(sql, catalog).plan
            for sql in (
                "SELECT cat, COUNT(*), SUM(n), AVG(amount) FROM u GROUP BY cat",
                "SELECT COUNT(*), STDDEV_SAMP(amount) FROM u WHERE \"\u540d\u524d\" LIKE '%a%'",
                "SELECT flag, SUM(amount * 2) FROM u WHERE day >= '2021-06-01' GROUP BY flag",
                "SELECT city, SUM(v) FROM g GROUP BY city",
            )
        ]
    table = catalog.table("u")
    assert table is not None
    cat = table.column("cat")
    assert cat is not None and cat.domain is not None
    cat_domain = [serde.value_to_proto(v).SerializeToString() for v in cat.domain]
    other = AnalystKey.generate()
    big = _context("ckks", 16384, [60, 40, 40, 60])
    empty = _context("ckks", 8192, [60, 40, 40, 60])
    contexts = {
        "private": bytes(key.secret.serialize(save_secret_key=True)),
        "bfv": bytes(_context("bfv", 8192, [60, 40, 40, 60]).serialize(save_secret_key=False)),
        "degree-4096": bytes(_context("ckks", 4096, [40, 20, 40]).serialize(save_secret_key=False)),
        "degree-16384": bytes(big.serialize(save_secret_key=False)),
        "keyless": bytes(empty.serialize(save_public_key=False, save_secret_key=False)),
        "other": other.public,
        "valid": key.public,
    }
    weights = {
        "valid": bytes(ts.ckks_vector(key.secret, [1.0] * ckks.PARAMS.slots).serialize()),
        "other-key": bytes(ts.ckks_vector(other.secret, [1.0] * ckks.PARAMS.slots).serialize()),
        "degree-16384": bytes(ts.ckks_vector(big, [1.0] * 8).serialize()),
        "short": bytes(ts.ckks_vector(key.secret, [1.0] * 4).serialize()),
        "bfv": bytes(ts.bfv_vector(_context("bfv", 8192, [60, 40, 40, 60]), [1, 2, 3]).serialize()),
    }
    request = crypto_pb2.HasKeyRequest(key_id=key.key_id).SerializeToString()
    signed, signature = sign_ledger_request(world.supervisor, "hg", 1, 0)
    ledger = audit_pb2.ReadLedgerRequest(
        supervisor_key_id=world.supervisor.key_id,
        start=1,
        end=0,
        issued_at=str(signed["issued_at"]),
        signature=signature,
    )
    bases: dict[str, list[list[bytes]]] = {
        "GetCatalog": [[catalog_pb2.GetCatalogRequest().SerializeToString()]],
        "HasKey": [[request]],
        "HasModel": [
            [score_pb2.HasModelRequest(key_id=key.key_id, model_id=model_id).SerializeToString()]
        ],
        "Aggregate": [
            [serde.aggregate_request(key.key_id, plan).SerializeToString()] for plan in plans
        ],
        "RegisterKey": [[m.SerializeToString() for m in serde.key_chunks(key.public)]],
        "PrepareModel": [
            [m.SerializeToString() for m in serde.prepare_parts(key.key_id, specs, ENTITIES[:9])]
        ],
        "RegisterModel": [
            [
                m.SerializeToString()
                for m in serde.model_parts(
                    key.key_id,
                    "hostile-base",
                    specs,
                    [14, 0],
                    [weights["valid"], weights["valid"]],
                )
            ]
        ],
        "Score": [
            [m.SerializeToString() for m in serde.score_parts(model_id, key.key_id, ENTITIES[:12])]
        ],
        "ReadLedger": [[ledger.SerializeToString()]],
    }
    return Material(
        key=key,
        other=other,
        model_id=model_id,
        supervisor=world.supervisor,
        rogue=world.rogue,
        holders=[n.name for n in fed.nodes],
        contexts=contexts,
        weights=weights,
        bases=bases,
        cat_domain=cat_domain,
        specs=specs,
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


def default_codec() -> plan_pb2.SlotCodec:
    """The codec a real client sends (engine.plan.SlotCodec's defaults)."""
    c = SlotCodec(slots=ckks.PARAMS.slots)
    return plan_pb2.SlotCodec(
        limb_bits=c.limb_bits,
        count_limbs=c.count_limbs,
        sum_limbs=c.sum_limbs,
        square_limbs=c.square_limbs,
        fraction_bits=c.fraction_bits,
        slots=c.slots,
    )


def method_path(target: str, method: str) -> str:
    service = "Coordinator" if target == "coordinator" else "Holder"
    return f"/unseen.v1.{service}/{method}"


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
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
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
            data = self.m.contexts[variant]
            chunks = [data[i : i + serde.KEY_CHUNK_BYTES] for i in range(0, len(data), 1 << 20)]
        elif variant == "garbage":
            chunks = [rng.randbytes(rng.choice([1, 100, 500_000]))]
        elif variant == "truncated":
            cut = valid[: rng.randint(1, len(valid) - 1)]
            chunks = [cut[i : i + (1 << 20)] for i in range(0, len(cut), 1 << 20)]
        elif variant == "flipped":
            buf = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            chunks = [bytes(buf)]
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
            [30, 8, 8, 8, 6, 8, 8, 8, 6],
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
                buf = bytearray(valid)
                for _ in range(rng.randint(1, 3)):
                    buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
                data = bytes(buf)
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
        now = dt.datetime.now(dt.timezone.utc)
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


# -- firing ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    request: Hostile
    code: str  # "OK" or the status name
    details: str
    elapsed: float


class Caller:
    """Generic (raw-bytes) calls to the federation's servers, one channel per server."""

    def __init__(self, addresses: Mapping[str, str]):
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ]
        self.channels = {n: grpc.insecure_channel(a, options=options) for n, a in addresses.items()}
        self._calls: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def _callable(self, target: str, path: str, arity: str) -> Any:
        key = (target, path, arity)
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                factory = getattr(self.channels[target], arity)
                call = factory(path, request_serializer=None, response_deserializer=None)
                self._calls[key] = call
            return call

    def fire(self, request: Hostile) -> Outcome:
        call = self._callable(request.target, request.method, request.arity)
        started = time.monotonic()
        payload = request.payload
        try:
            if request.arity == UU:
                call(payload, timeout=request.deadline)
            elif request.arity == US:
                for _ in call(payload, timeout=request.deadline):
                    pass
            elif request.arity == SU:
                call(iter(payload), timeout=request.deadline)
            else:
                for _ in call(iter(payload), timeout=request.deadline):
                    pass
            code, details = "OK", ""
        except grpc.RpcError as exc:
            status = exc.code()
            code = status.name if status is not None else "UNKNOWN"
            details = exc.details() or ""
        return Outcome(request, code, details, time.monotonic() - started)


# -- known defects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownDefect:
    """A server defect already reported and pinned by a strict xfail test."""

    name: str
    details: re.Pattern[str]
    hazard: str | None
    pinned_by: str

    def matches(self, outcome: Outcome) -> bool:
        if outcome.code != "INTERNAL" or not self.details.search(outcome.details):
            return False
        return self.hazard is None or self.hazard in outcome.request.hazards


# Every defect this suite found has been fixed; the list stays as the place to pin a new one
# (with a strict xfail test) while it is being fixed.
KNOWN_DEFECTS: tuple[KnownDefect, ...] = ()


def known_defect(outcome: Outcome) -> KnownDefect | None:
    return next((d for d in KNOWN_DEFECTS if d.matches(outcome)), None)


# -- the report ------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    internal: list[Outcome] = field(default_factory=list)  # not a known defect
    known: Counter[str] = field(default_factory=Counter)
    known_examples: dict[str, str] = field(default_factory=dict)
    hangs: list[Outcome] = field(default_factory=list)
    unavailable: list[Outcome] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)  # health or probe did not answer
    wrong: list[str] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    log_errors: Counter[str] = field(default_factory=Counter)
    spool_bytes: int = 0
    elapsed: float = 0.0
    probes: int = 0

    def add(self, outcome: Outcome) -> None:
        request = outcome.request
        self.sent += 1
        self.codes[outcome.code] += 1
        self.families[request.kind.split(":")[0]] += 1
        self.slowest.append((outcome.elapsed, request.describe(self.seed)))
        self.slowest = sorted(self.slowest, reverse=True)[:5]
        if outcome.code == "DEADLINE_EXCEEDED":
            self.hangs.append(outcome)
        elif outcome.code == "UNAVAILABLE":
            self.unavailable.append(outcome)
        elif outcome.code in ("INTERNAL", "UNKNOWN"):
            defect = known_defect(outcome)
            if defect is None:
                self.internal.append(outcome)
            else:
                self.known[defect.name] += 1
                self.known_examples.setdefault(defect.name, request.describe(self.seed))

    @property
    def internal_errors(self) -> int:
        return len(self.internal) + sum(self.known.values())

    def problems(self, bound: int = RSS_BOUND) -> list[str]:
        """Everything that fails the run, known defects excepted."""
        out = [f"crash: {c}" for c in self.crashes]
        out += [f"stall: {s}" for s in self.stalls]
        out += [f"wrong answer: {w}" for w in self.wrong]
        for outcome in self.hangs:
            out.append(f"hang after {outcome.elapsed:.1f}s: {outcome.request.describe(self.seed)}")
        for outcome in self.unavailable + self.internal:
            out.append(
                f"{outcome.code} ({outcome.details[:160]!r}): {outcome.request.describe(self.seed)}"
            )
        for name, peak in self.peak_rss.items():
            if peak > bound:
                out.append(f"memory: {name} peaked at {peak >> 20} MiB > {bound >> 20} MiB")
        return out

    def summary(self, bound: int = RSS_BOUND) -> str:
        lines = [
            f"hostile run: seed {self.seed}, {self.sent} requests in {self.elapsed:.1f}s, "
            f"{self.probes} health probes",
            f"  crashes (a server process died): {len(self.crashes)}",
            f"  hangs (no answer within the deadline): {len(self.hangs)}",
            f"  stalls (health check or probe query unanswered): {len(self.stalls)}",
            f"  wrong answers (probe queries vs DuckDB): {len(self.wrong)}",
            f"  internal errors (INTERNAL/UNKNOWN): {self.internal_errors} "
            f"({len(self.internal)} new, {sum(self.known.values())} known defects)",
            f"  unavailable answers: {len(self.unavailable)}",
            "  status codes: " + ", ".join(f"{c}={n}" for c, n in self.codes.most_common()),
            "  families: " + ", ".join(f"{f}={n}" for f, n in sorted(self.families.items())),
        ]
        for name, count in self.known.most_common():
            lines.append(f"  known defect x{count}: {name} (e.g. {self.known_examples[name]})")
        if self.log_errors:
            lines.append(
                "  server log errors: "
                + ", ".join(f"{k} x{n}" for k, n in self.log_errors.most_common())
            )
        lines.append(
            "  peak RSS (MiB): "
            + ", ".join(f"{n}={p >> 20}" for n, p in self.peak_rss.items())
            + f" (bound {bound >> 20})"
        )
        if self.spool_bytes:
            lines.append(f"  holders' model spool on disk: {self.spool_bytes >> 20} MiB")
        lines.append(
            f"  slowest: {self.slowest[0][0]:.2f}s {self.slowest[0][1]}" if self.slowest else ""
        )
        lines += [f"  PROBLEM {p}" for p in self.problems(bound)[:20]]
        return "\n".join(line for line in lines if line)


# -- probes: the servers still answer, correctly --------------------------------------------

PROBE_SQL = (
    'SELECT cat, COUNT(*) AS c, SUM(n) AS s, AVG(amount) AS a, COUNT("\u540d\u524d") AS m '
    "FROM u GROUP BY cat ORDER BY cat",
    "SELECT flag, COUNT(*) AS c, VAR_SAMP(amount) AS v FROM u "
    "WHERE cat IN ('\U0001f600', 'a\x00b', '\u202eevil\u202c', '') GROUP BY flag ORDER BY flag",
)


def _check_query(client: Client, world: World, sql: str) -> str | None:
    compiled = client.compile(sql)
    result = client.query(sql)
    cursor = world.cursor()
    theirs = cursor.sql(sql).fetchall()
    expected = suppressed_keys(
        sql,
        [g.column for g in compiled.plan.groups],
        world.shards,
        K,
        lambda q: cursor.sql(q).fetchall(),
    )
    positions = [compiled.outputs.index(GroupRef(i)) for i in range(len(compiled.plan.groups))]
    hidden = {tuple(g["group"].values()) for g in result.meta["suppressed"]}
    verdict = verify(
        result.columns, result.rows, hidden, theirs, expected, positions, bool(compiled.order)
    )
    return None if verdict.ok else f"{sql!r}: {verdict.problems[:3]}"


def probe(world: World, client: Client, score: bool = True) -> list[str]:
    """Real, verified work through the coordinator; returns what went wrong."""
    problems = []
    for sql in PROBE_SQL:
        found = _check_query(client, world, sql)
        if found:
            problems.append(found)
    result = client.query("SELECT COUNT(*) AS c, SUM(v) AS s FROM g")
    if tuple(result.rows[0]) != world.g_total:
        problems.append(f"g totals {result.rows[0]} != {world.g_total}")
    if score:
        model = sane_model()
        entities = [*ENTITIES[::3], "no-such-entity", "\x00"]
        scored = client.score(model, entities)
        cursor = world.cursor()
        expected = plaintext_scores(cursor, model, entities)
        got = np.array([row[1] for row in scored.rows])
        if [row[0] for row in scored.rows] != entities or not np.allclose(
            got, expected, rtol=1e-6, atol=1e-5
        ):
            problems.append(f"scores differ: {got[:4]} vs {expected[:4]}")
    return problems


def health(addresses: Mapping[str, str], timeout: float = 5.0) -> list[str]:
    """Standard gRPC health checks of every server; returns the ones that did not answer."""
    failed = []
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    failed.append(f"{name} reports {reply.status}")
            except grpc.RpcError as exc:
                failed.append(f"{name} health: {exc.code()} {exc.details()}")
    return failed


def addresses_of(fed: LocalFederation) -> dict[str, str]:
    out = {n.name: n.address for n in fed.nodes}
    out["coordinator"] = fed.address
    return out


def _log_errors(fed: LocalFederation) -> Counter[str]:
    errors: Counter[str] = Counter()
    # Matches the text and the JSON log formats (unseen/logs.py) alike.
    pattern = re.compile(r"(\w+) failed with an internal (\w+)")
    for path in sorted(Path(fed.log_dir).glob("*.log")):
        for match in pattern.finditer(path.read_text(errors="replace")):
            errors[f"{path.stem}:{match.group(1)}:{match.group(2)}"] += 1
    return errors


def _spool_bytes(tmp: Path | None) -> int:
    if tmp is None or not tmp.exists():
        return 0
    return sum(p.stat().st_size for p in tmp.glob("unseen-spool-*/*.model") if p.is_file())


def run_hostile(
    fed: LocalFederation,
    world: World,
    material: Material,
    count: int,
    seed: int,
    workers: int = 6,
    batch: int = 200,
    echo: Callable[[str], None] | None = None,
    spool: Path | None = None,
) -> Report:
    """Fire ``count`` hostile requests in batches; after each batch check that every server
    process lives, answers a health check and answers real queries correctly."""
    report = Report(seed)
    generator = Generator(seed, material)
    addresses = addresses_of(fed)
    caller = Caller(addresses)
    processes = {n.name: n.process for n in fed.nodes}
    assert fed.coordinator is not None
    processes["coordinator"] = fed.coordinator.process
    started = time.monotonic()

    heavy = threading.Lock()

    def one(index: int) -> Outcome:
        request = generator.make(index)
        if "heavy" not in request.hazards:
            return caller.fire(request)
        # One limit-sized request at a time: several at once exhaust memory, which
        # test_hostile.py pins on its own (test_requests_at_the_limits_cost_bounded_memory).
        with heavy:
            return caller.fire(request)

    try:
        with (
            MemoryWatch(server_pids(fed)) as watch,
            Client(fed.address, key=material.key, timeout=60) as client,
            futures.ThreadPoolExecutor(workers, thread_name_prefix="hostile") as pool,
        ):
            for first in range(0, count, batch):
                indices = range(first, min(count, first + batch))
                for outcome in pool.map(one, indices):
                    report.add(outcome)
                where = f"after requests {indices.start}..{indices.stop - 1} (seed {seed})"
                dead = [n for n, p in processes.items() if p.poll() is not None]
                if dead:
                    report.crashes += [f"{n} exited {where}" for n in dead]
                    break
                report.stalls += [f"{s} {where}" for s in health(addresses)]
                try:
                    report.wrong += [f"{w} {where}" for w in probe(world, client)]
                except Exception as exc:  # any failure of real work is a finding
                    report.stalls.append(f"probe failed {where}: {type(exc).__name__}: {exc}")
                report.probes += 1
                if echo is not None:
                    echo(
                        f"  {indices.stop}/{count} sent, {report.internal_errors} internal "
                        f"({len(report.internal)} new), {len(report.hangs)} hangs, "
                        f"{time.monotonic() - started:.0f}s"
                    )
            report.peak_rss = watch.peak
    finally:
        caller.close()
    report.elapsed = time.monotonic() - started
    report.log_errors = _log_errors(fed)
    report.spool_bytes = _spool_bytes(spool)
    return report


def replay(seed: int, index: int, material: Material, caller: Caller) -> Outcome:
    """Rebuild request ``index`` of the run with ``seed`` and fire it again (to debug a failure
    printed as ``seed=S index=I kind=...``)."""
    return caller.fire(Generator(seed, material).make(index))


def iter_requests(seed: int, material: Material, count: int) -> Iterator[Hostile]:
    """The requests of a run, in order (for inspection and replay)."""
    generator = Generator(seed, material)
    for index in range(count):
        yield generator.make(index)


def fire_all(caller: Caller, requests: Sequence[Hostile], workers: int = 8) -> list[Outcome]:
    with futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(caller.fire, requests))
