"""The hostile federation: its data, keys and config, its processes, and the probe material."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenseal as ts

from tests.governance_fixtures import new_signing_key, write_config
from tests.shards import Reference, write_shard, write_shards
from unseen.engine.client import Client
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.governance.access import sign_ledger_request
from unseen.engine.governance.signing import SigningKey
from unseen.engine.query.model import Feature, FeatureSpec, Model
from unseen.engine.transport import serde
from unseen.federation import LocalFederation
from unseen.v1 import audit_pb2, catalog_pb2, crypto_pb2, score_pb2

__all__ = [
    "ENTITIES",
    "TEXTS",
    "U_COLUMNS",
    "K",
    "Material",
    "World",
    "addresses_of",
    "build_world",
    "make_material",
    "processes_of",
    "sane_model",
    "server_pids",
    "start_federation",
]

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


@dataclass
class World:
    """Data, keys and a plaintext reference of the hostile federation."""

    root: Path
    holders: dict[str, Mapping[str, Path] | Path]
    reference: Reference  # of table u
    supervisor: SigningKey
    rogue: SigningKey
    g_total: tuple[int, int]  # COUNT(*), SUM(v) of table g


def build_world(root: Path, seed: int = 7) -> World:
    """Write the tables, keys and hg's config under ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    u_holders, reference = write_shards(
        U_SCHEMA,
        {
            name: (data / f"u_{name}{suffix}", _u_rows(rng, name, 70))
            for name, suffix in HOLDER_FORMATS.items()
        },
        table="u",
    )
    holders: dict[str, Mapping[str, Path] | Path] = dict(u_holders)
    g_rows = [(f"acct-{i % 9}", rng.choice(["Hangzhou", "Ningbo"]), i * 7 - 50) for i in range(30)]
    write_shard(data / "g.duckdb", G_SCHEMA, g_rows, table="g")
    keys = root / "keys"
    keys.mkdir(exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    supervisor = new_signing_key(keys / "supervisor.key")
    new_signing_key(keys / "hg.key")
    columns: dict[str, dict[str, Any]] = {
        "acct": {"uses": ["entity", "filter", "group"]},
        "city": {"uses": ["filter", "group"], "domain": "auto"},
        "v": {"uses": ["aggregate", "score", "filter"]},
    }
    holders["hg"] = write_config(
        root / "hg.toml",
        "hg",
        {"g": ("data/g.duckdb", columns, 2)},
        {
            "require_vouchers": False,
            "supervisors": ["keys/supervisor.key.pub"],
            "ledger": "state/hg.ledger",
            "signing_key": "keys/hg.key",
        },
    )
    g_total = (len(g_rows), sum(r[2] for r in g_rows))
    return World(root, holders, reference, supervisor, SigningKey.generate(), g_total)


def start_federation(world: World) -> LocalFederation:
    """Start the world's holders and coordinator as separate processes (port 0)."""
    fed = LocalFederation(world.holders, world.root / "logs")
    fed.start()
    return fed


def processes_of(fed: LocalFederation) -> dict[str, subprocess.Popen[str]]:
    """Every server process of ``fed`` by name, the coordinator's included."""
    processes = {n.name: n.process for n in fed.nodes}
    assert fed.coordinator is not None
    processes["coordinator"] = fed.coordinator.process
    return processes


def server_pids(fed: LocalFederation) -> dict[str, int]:
    return {name: process.pid for name, process in processes_of(fed).items()}


def addresses_of(fed: LocalFederation) -> dict[str, str]:
    out = {n.name: n.address for n in fed.nodes}
    out["coordinator"] = fed.address
    return out


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
    bfv = _context("bfv", 8192, [60, 40, 40, 60])
    contexts = {
        "private": bytes(key.secret.serialize(save_secret_key=True)),
        "bfv": bytes(bfv.serialize(save_secret_key=False)),
        "degree-4096": bytes(_context("ckks", 4096, [40, 20, 40]).serialize(save_secret_key=False)),
        "degree-16384": bytes(big.serialize(save_secret_key=False)),
        "keyless": bytes(empty.serialize(save_public_key=False, save_secret_key=False)),
        "other": other.public,
        "valid": key.public,
    }
    # At the scale holders require for a 30-bit flood (ckks.weight_scale), as a client sends.
    scale = ckks.weight_scale(key.secret, 1)
    weights = {
        "valid": bytes(ckks.encrypt(key.secret, [1.0] * ckks.PARAMS.slots, scale).serialize()),
        "other-key": bytes(
            ckks.encrypt(other.secret, [1.0] * ckks.PARAMS.slots, scale).serialize()
        ),
        "low-scale": bytes(ts.ckks_vector(key.secret, [1.0] * ckks.PARAMS.slots).serialize()),
        "degree-16384": bytes(ts.ckks_vector(big, [1.0] * 8).serialize()),
        "short": bytes(ts.ckks_vector(key.secret, [1.0] * 4).serialize()),
        "bfv": bytes(ts.bfv_vector(bfv, [1, 2, 3]).serialize()),
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
            [m.SerializeToString() for m in serde.score_parts(key.key_id, model_id, ENTITIES[:12])]
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
