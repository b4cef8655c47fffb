"""Governed federations for the integration tests: keys, data, node config files, holders.

One *world* is a directory with an issuer, a rogue issuer, a supervisor and one
Ed25519 key per holder; small tables (``loans`` hosted horizontally by two
banks, ``power`` by the grid); and a TOML config per holder with
``require_vouchers = true``, a ledger, a revocation file and explicit column
policies. The same world starts in this process (:func:`start_in_process`:
holders built with ``HolderNode.from_config``) or as separate
``unseen node serve --config`` processes (:class:`ConfigFederation`).

Also the ledger helpers the integration and unit tests share (:func:`tamper`
and friends), and the one access request the voucher and ledger unit tests
build on (:func:`request`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import grpc

from tests.shards import load_duckdb, write_shard
from unseen.engine.client import Client
from unseen.engine.config import load_config
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.governance.approval import ApprovedWeights, ModelApproval, approve_model
from unseen.engine.governance.ledger import GENESIS_HASH, Ledger, LedgerEntry, Receipt, read_ledger
from unseen.engine.governance.signing import PublicKey, SigningKey, utc_text
from unseen.engine.governance.voucher import AccessRequest, issue
from unseen.engine.query.model import Model
from unseen.engine.transport import serde
from unseen.federation import LocalFederation, NodeProcess
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

LOANS = [
    ("account", "VARCHAR"),
    ("city", "VARCHAR"),
    ("amount", "BIGINT"),
    ("rate", "DOUBLE"),
    ("officer", "VARCHAR"),
]
POWER = [("account", "VARCHAR"), ("kwh", "DOUBLE")]
ACCOUNTS = [f"acct-{i:03d}" for i in range(12)]
CITIES = ("Hangzhou", "Ningbo", "Wenzhou")

# What the holders' configs allow; "officer" is listed with no uses at all.
LOANS_POLICY: dict[str, dict[str, Any]] = {
    "account": {"uses": ["entity", "filter", "group"]},
    "city": {"uses": ["filter", "group"], "domain": "auto"},
    "amount": {"uses": ["aggregate", "score", "filter"]},
    "rate": {"uses": ["aggregate"]},
    "officer": {"uses": []},
}
POWER_POLICY: dict[str, dict[str, Any]] = {
    "account": {"uses": ["entity", "filter"]},
    "kwh": {"uses": ["aggregate", "score"]},
}

# What a full voucher grants at each table (everything the policy allows).
LOANS_SCOPE = {
    "loans": {
        "account": ["entity", "filter", "group"],
        "city": ["filter", "group"],
        "amount": ["aggregate", "score", "filter"],
        "rate": ["aggregate"],
    }
}
POWER_SCOPE = {"power": {"account": ["entity", "filter"], "kwh": ["aggregate", "score"]}}
SCOPES = {"bank-a": LOANS_SCOPE, "bank-b": LOANS_SCOPE, "grid": POWER_SCOPE}


# The analyst and plan of the unit tests' requests (well-formed hex SHA-256 ids).
ANALYST = "a1" * 32
PLAN = "c3" * 32


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def request(**overrides: Any) -> AccessRequest:
    """An aggregate of ``tax.revenue`` by :data:`ANALYST` at holder ``tax``; fields overridable."""
    fields: dict[str, Any] = {
        "analyst": ANALYST,
        "holder": "tax",
        "kind": "aggregate",
        "plan_digest": PLAN,
        "reads": {"tax": {"revenue": {"aggregate"}}},
    }
    fields.update(overrides)
    return AccessRequest(**fields)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # a TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(type(value))


def write_config(
    path: Path,
    name: str,
    tables: Mapping[str, tuple[str, Mapping[str, Mapping[str, Any]], int]],
    governance: Mapping[str, Any],
) -> Path:
    """A node config file: ``tables`` maps table -> (source, column policies, k)."""
    lines = ["[node]", f"name = {_toml(name)}", "", "[governance]"]
    lines += [f"{k} = {_toml(v)}" for k, v in governance.items()]
    for table, (source, columns, k) in tables.items():
        lines += ["", f"[tables.{table}]", f"source = {_toml(source)}", f"k = {k}"]
        lines += ["", f"[tables.{table}.columns]"]
        lines += [f"{c} = {_toml(p)}" for c, p in columns.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def new_signing_key(path: Path) -> SigningKey:
    key = SigningKey.generate()
    key.save(path)
    return key


@dataclass
class World:
    """Keys, data, configs and a plaintext reference of one governed federation."""

    root: Path
    issuer: SigningKey
    rogue: SigningKey
    supervisor: SigningKey
    holder_keys: dict[str, SigningKey]
    configs: dict[str, Path]
    ledgers: dict[str, Path]
    revocations: dict[str, Path]
    reference: duckdb.DuckDBPyConnection

    @property
    def holder_public(self) -> dict[str, PublicKey]:
        return {name: k.public_key for name, k in self.holder_keys.items()}

    def voucher(
        self,
        holder: str,
        grantee: str,
        scope: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
        *,
        issuer: SigningKey | None = None,
        lifetime: dt.timedelta = dt.timedelta(hours=2),
        **kwargs: Any,
    ) -> str:
        """A signed voucher line for ``holder`` (default: the full scope, valid now)."""
        kwargs.setdefault("not_after", utcnow() + lifetime)
        return issue(
            issuer or self.issuer,
            grantee=grantee,
            holder=holder,
            scope=scope if scope is not None else SCOPES[holder],
            purpose="integration test",
            **kwargs,
        ).encode()

    def vouchers(
        self,
        grantee: str,
        holders: Iterable[str] = ("bank-a", "bank-b", "grid"),
        **kwargs: Any,
    ):
        return [self.voucher(h, grantee, **kwargs) for h in holders]

    def approve(
        self, client: Client, model: Model, entities: Sequence[str] = ACCOUNTS[:1]
    ) -> tuple[ModelApproval, ApprovedWeights]:
        """The issuer's review of ``model``: the analyst's prepare step (under the
        client's vouchers) gives the exponents; the issuer encrypts the weights."""
        specs = client.feature_specs(model, client.catalog())
        exponents, _ = client.prepare(specs, entities)
        return approve_model(
            model.link,
            [serde.feature_bytes(s) for s in specs],
            [f.weight for f in model.features],
            exponents,
            client.key.public,
        )


def _rows(seed: int) -> list[tuple]:
    rng = random.Random(seed)
    return [
        (
            account,
            CITIES[(i + seed) % 3],
            rng.randint(100, 90_000),
            round(rng.uniform(0.01, 0.2), 4),
            f"officer-{rng.randint(1, 4)}",
        )
        for account in ACCOUNTS
        for i in range(6)
    ]


def build_world(root: Path, holder_names: Sequence[str] = ("bank-a", "bank-b", "grid")) -> World:
    """Write keys, tables and config files under ``root`` (paths in configs are relative)."""
    keys = root / "keys"
    keys.mkdir(parents=True)
    (root / "state").mkdir()
    issuer = new_signing_key(keys / "issuer.key")
    rogue = new_signing_key(keys / "rogue.key")
    supervisor = new_signing_key(keys / "supervisor.key")
    loans_a, loans_b = _rows(1), _rows(2)
    rng = random.Random(3)
    power = [(a, round(rng.uniform(100, 50_000), 3)) for a in ACCOUNTS[:10]]
    reference = duckdb.connect()
    load_duckdb(reference, LOANS, loans_a + loans_b, "loans")
    load_duckdb(reference, POWER, power, "power")
    sources = {
        "bank-a": {"loans": (write_shard(root / "data" / "loans_a.csv", LOANS, loans_a), 3)},
        "bank-b": {
            "loans": (
                write_shard(root / "data" / "loans_b.sqlite", LOANS, loans_b, table="loans"),
                3,
            )
        },
        "grid": {"power": (write_shard(root / "data" / "power.parquet", POWER, power), 1)},
    }
    policies = {"loans": LOANS_POLICY, "power": POWER_POLICY}
    holder_keys, configs, ledgers, revocations = {}, {}, {}, {}
    for name in holder_names:
        holder_keys[name] = new_signing_key(keys / f"{name}.key")
        ledgers[name] = root / "state" / f"{name}.ledger"
        revocations[name] = root / "state" / f"{name}.revoked.json"
        tables = {
            t: (str(path.relative_to(root)), policies[t], k)
            for t, (path, k) in sources[name].items()
        }
        configs[name] = write_config(
            root / f"{name}.toml",
            name,
            tables,
            {
                "require_vouchers": True,
                "trusted_issuers": ["keys/issuer.key.pub"],
                "supervisors": ["keys/supervisor.key.pub"],
                "ledger": f"state/{name}.ledger",
                "signing_key": f"keys/{name}.key",
                "revocations": f"state/{name}.revoked.json",
            },
        )
    return World(
        root, issuer, rogue, supervisor, holder_keys, configs, ledgers, revocations, reference
    )


# -- in this process ------------------------------------------------------------------------


@dataclass
class InProcessFederation:
    """Holders built from the world's config files, and a coordinator, on loopback port 0."""

    world: World
    address: str
    holders: dict[str, HolderNode]
    holder_addresses: dict[str, str]
    servers: list[grpc.Server]
    coordinator: Coordinator
    clients: list[Client] = field(default_factory=list)

    def client(self, key: AnalystKey, vouchers: Sequence[str] = ()) -> Client:
        client = Client(self.address, key=key, vouchers=vouchers)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop(grace=None).wait()
        self.coordinator.close()
        for node in self.holders.values():
            if node.gov.ledger is not None:
                node.gov.ledger.close()


def start_in_process(world: World) -> InProcessFederation:
    holders, addresses, servers = {}, {}, []
    for name, path in world.configs.items():
        node = HolderNode.from_config(load_config(path))
        server, port = serve_holder(node, "127.0.0.1:0")
        holders[name], addresses[name] = node, f"127.0.0.1:{port}"
        servers.append(server)
    coordinator = Coordinator.connect(list(addresses.values()))
    coordinator.catalog_ttl = 0.0
    server, port = serve_coordinator(coordinator, "127.0.0.1:0")
    servers.insert(0, server)
    return InProcessFederation(world, f"127.0.0.1:{port}", holders, addresses, servers, coordinator)


# -- separate processes ---------------------------------------------------------------------


def node(federation: LocalFederation, name: str) -> NodeProcess:
    """The child process of holder ``name``."""
    return next(n for n in federation.nodes if n.name == name)


# -- ledgers --------------------------------------------------------------------------------


def entries(path: Path, since: int = 0) -> list[LedgerEntry]:
    """The entries of a ledger file after index ``since``."""
    return list(read_ledger(path, since + 1).entries)


def head(path: Path) -> int:
    return read_ledger(path).head if path.exists() else 0


def receipts_of(meta: Mapping[str, Any]) -> list[Receipt]:
    return [Receipt.from_dict(r) for r in meta["receipts"]]


def copy_ledger(source: Path, target: Path) -> Path:
    """A consistent copy of a live WAL ledger, in rollback-journal mode (one plain file)."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        src.close()
        dst.close()
    return target


def tamper(path: Path, *statements: str | tuple[Any, ...]) -> None:
    """What an attacker with write access does: drop the append-only guards, then edit.

    Each statement is SQL text, or a tuple of SQL text and its parameters.
    """
    con = sqlite3.connect(path)
    try:
        for table in ("ledger_entries", "ledger_meta"):
            for action in ("update", "delete"):
                con.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
        for statement in statements:
            con.execute(*((statement,) if isinstance(statement, str) else statement))
        con.commit()
    finally:
        con.close()


def flip_hex_digit(path: Path, needle: str) -> None:
    """Change one hex digit of ``needle`` where it is stored in the file's raw bytes."""
    data = bytearray(path.read_bytes())
    at = data.find(needle.encode("ascii"))
    assert at >= 0, "the value is not in the file"
    assert data.find(needle.encode("ascii"), at + 1) < 0, "the value is in the file twice"
    spot = at + 10
    data[spot] = ord("0") if data[spot] != ord("0") else ord("1")
    path.write_bytes(bytes(data))


def fill_ledger(path: Path, holder: str, key: SigningKey, count: int) -> None:
    """Give a new ledger ``count`` valid entries at once (one transaction, not one per entry).

    Written as docs/governance.md specifies the format: the entry hash from
    :meth:`LedgerEntry.compute_hash`, signed as ``b"unseen.ledger.sig.v1\\n" + hash``.
    """
    Ledger(path, holder, key).close()  # schema and owner
    moment, prev, rows = utcnow(), GENESIS_HASH, []
    for index in range(1, count + 1):
        draft = LedgerEntry(
            holder=holder,
            holder_key_id=key.key_id,
            index=index,
            time=moment,
            kind="aggregate",
            plan_digest="",
            voucher_id="",
            analyst="",
            outcome="refused",
            reason="filler",
            result_digest="",
            prev_hash=prev,
            entry_hash="",
            signature=b"",
        )
        digest = draft.compute_hash()
        signature = key.sign(b"unseen.ledger.sig.v1\n" + digest.encode("ascii"))
        fields = (utc_text(moment), "aggregate", "", "", "", "refused", "filler", "")
        rows.append((index, *fields, prev, digest, signature.hex()))
        prev = digest
    con = sqlite3.connect(path)
    try:
        con.executemany(f"INSERT INTO ledger_entries VALUES ({', '.join('?' * 12)})", rows)
        con.commit()
    finally:
        con.close()
