"""``unseen demo --province``: city federations under a provincial coordinator, verified.

Why: the province's statistics run through two levels of coordinators — each
city coordinator serves its own holders and answers the provincial
coordinator as one holder (``--as-holder``, :mod:`unseen.nodes.city`) — and
every answer must still be exactly what DuckDB gives over the pooled rows,
with the groups small at any one leaf holder suppressed.

Every node runs in this process on its own loopback port (about 75 gRPC
servers for 21 cities): a process per node would need ~75 Python
interpreters with TenSEAL on a small machine. The wire is real gRPC all the
same. :func:`start_province` is what the tests start too; ``governed=True``
adds mTLS on every channel, vouchers naming every leaf as the federation,
and a ledger at every leaf and every city.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.data.synth.province import CITIES, INDUSTRIES
from unseen.engine.governance.access import Governance
from unseen.engine.governance.audit import check_receipts, follow_relays
from unseen.engine.governance.ledger import Ledger, Receipt, read_ledger
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.transport.tls import TlsFiles, make_bundle
from unseen.nodes.city import CityHolder
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder
from unseen.oracle.plaintext import check_answer

__all__ = [
    "QUERIES",
    "SCHEMA",
    "SMALL_INDUSTRY",
    "Province",
    "ProvinceData",
    "run_province_demo",
    "start_province",
    "write_province",
]

TABLE = "power"
SCHEMA = (("city", "VARCHAR"), ("industry", "VARCHAR"), ("month", "BIGINT"), ("kwh", "BIGINT"))
# Two rows at one holder of the first city, nowhere else: suppressed in the province's answer.
SMALL_INDUSTRY = "aerospace"
QUERIES = (
    "SELECT city, COUNT(*) AS firms, SUM(kwh) AS kwh, AVG(kwh) AS mean_kwh "
    "FROM power GROUP BY city",
    "SELECT industry, COUNT(*) AS firms, SUM(kwh) AS kwh FROM power GROUP BY industry",
    "SELECT city, industry, COUNT(*) AS firms, SUM(kwh) AS kwh FROM power GROUP BY city, industry",
    "SELECT COUNT(*) AS firms, SUM(kwh) AS kwh, STDDEV(kwh) AS sd FROM power WHERE month >= 7",
)
K = 5


@dataclass
class ProvinceData:
    """Each leaf holder's shard on disk, its city, and the plaintext twin in DuckDB."""

    shards: dict[str, Path]  # leaf holder -> CSV
    cities: dict[str, list[str]]  # city -> its leaf holders
    con: Any  # DuckDB: the pooled table and one ``power@holder`` per shard

    @property
    def reference_shards(self) -> list[str]:
        return [f"{TABLE}@{holder}" for holder in self.shards]


def _leaf_rows(rng: np.random.Generator, city: str) -> list[tuple[Any, ...]]:
    """One holder's rows: per industry it serves, 5 to 12 firms (never a small group)."""
    rows: list[tuple[Any, ...]] = []
    served = rng.choice(len(INDUSTRIES), size=int(rng.integers(3, 7)), replace=False)
    for index in sorted(served):
        for _ in range(int(rng.integers(K, 13))):
            kwh = int(rng.integers(2_000, 9_000))
            rows.append((city, INDUSTRIES[index], int(rng.integers(1, 13)), kwh))
    return rows


def write_province(
    out: Path, cities: int = 21, holders: Callable[[int], int] = lambda i: 2 + i % 2, seed: int = 7
) -> ProvinceData:
    """Write ``cities`` cities' leaf shards (``holders(i)`` each) under ``out``."""
    if not 1 <= cities <= len(CITIES):
        raise ValueError(f"a province has 1 to {len(CITIES)} cities")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    con = duckdb.connect()
    columns = ", ".join(f"{name} {kind}" for name, kind in SCHEMA)
    con.execute(f"CREATE TABLE {TABLE} ({columns})")
    shards: dict[str, Path] = {}
    by_city: dict[str, list[str]] = {}
    for i, city in enumerate(CITIES[:cities]):
        for j in range(holders(i)):
            name = f"{city.lower()}-grid{j}"
            rows = _leaf_rows(rng, city)
            if i == 0 and j == 0:
                rows += [(city, SMALL_INDUSTRY, 3, 4_000), (city, SMALL_INDUSTRY, 4, 4_100)]
            shard = f'"{TABLE}@{name}"'
            con.execute(f"CREATE TABLE {shard} ({columns})")
            con.executemany(f"INSERT INTO {shard} VALUES (?, ?, ?, ?)", rows)  # noqa: S608 - our names
            con.execute(f"INSERT INTO {TABLE} SELECT * FROM {shard}")  # noqa: S608 - our names
            path = out / f"{name}.csv"
            con.execute(f"COPY {shard} TO '{path}' (HEADER)")
            shards[name] = path
            by_city.setdefault(city.lower(), []).append(name)
    return ProvinceData(shards, by_city, con)


@dataclass
class Province:
    """Running servers: leaf holders, city coordinators (as holders), the province."""

    address: str
    city_addresses: dict[str, str]
    holder_addresses: dict[str, str]
    holders: dict[str, HolderNode]
    cities: dict[str, CityHolder]
    tls: dict[str, TlsFiles] = field(default_factory=dict)
    vouchers: list[str] = field(default_factory=list)
    ledgers: dict[str, Path] = field(default_factory=dict)  # node -> ledger file
    ledger_keys: dict[str, SigningKey] = field(default_factory=dict)
    _servers: list[Any] = field(default_factory=list)
    _coordinators: list[Coordinator] = field(default_factory=list)
    _holder_servers: dict[str, Any] = field(default_factory=dict)

    def stop_holder(self, name: str) -> None:
        """Stop one leaf holder's server (failure tests)."""
        self._holder_servers[name].stop(None).wait()

    def client(self, key: AnalystKey, address: str | None = None, **kwargs: Any) -> Client:
        tls = self.tls.get("analyst")
        vouchers = self.vouchers if self.vouchers else ()
        return Client(address or self.address, key=key, tls=tls, vouchers=vouchers, **kwargs)

    def close(self) -> None:
        # Channels first, then servers from the top down: no call is cut mid-way.
        for coordinator in reversed(self._coordinators):
            coordinator.close()
        for server in reversed(self._servers):
            server.stop(None).wait()
        for node in self.holders.values():
            for source in node.sources.values():
                source.close()


def _host(tls: TlsFiles | None) -> str:
    # Certificates name localhost; quick-start refuses anything but loopback.
    return "localhost" if tls is not None else "127.0.0.1"


def start_province(
    data: ProvinceData,
    work: Path,
    governed: bool = False,
    analyst: AnalystKey | None = None,
    supervisor: SigningKey | None = None,
) -> Province:
    """Serve ``data``: a holder per shard, a coordinator per city, one province.

    ``governed`` needs ``analyst`` (the grantee of the vouchers it issues);
    ``supervisor`` may then fetch every leaf's and city's ledger over RPC.
    """
    supervisors = {} if supervisor is None else {supervisor.key_id: supervisor.public_key}
    files: dict[str, TlsFiles] = {}
    issuer = SigningKey.generate()
    trusted = VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key})
    if governed:
        parties = [(h, "holder") for h in data.shards]
        parties += [(c, "coordinator") for c in data.cities] + [("province", "coordinator")]
        parties += [("analyst", "analyst"), ("supervisor", "supervisor")]
        files = make_bundle(work / "pki", parties)
    province = Province("", {}, {}, {}, {}, tls=files)
    try:
        for name, path in data.shards.items():
            node = HolderNode.quickstart(name, {TABLE: path}, k=K)
            if governed:
                province.ledger_keys[name] = SigningKey.generate()
                province.ledgers[name] = work / "ledgers" / f"{name}.sqlite"
                province.ledgers[name].parent.mkdir(parents=True, exist_ok=True)
                node.governance = Governance(
                    name,
                    # The province's voucher issuer is one of the leaf's trusted issuers.
                    trusted,
                    Ledger(province.ledgers[name], name, province.ledger_keys[name]),
                    supervisors,
                )
            tls = files.get(name)
            server, port = serve_holder(node, f"{_host(tls)}:0", tls)
            province._servers.append(server)
            province._holder_servers[name] = server
            province.holders[name] = node
            province.holder_addresses[name] = f"{_host(tls)}:{port}"
        for city, leaves in data.cities.items():
            tls = files.get(city)
            coordinator = Coordinator.connect(
                [province.holder_addresses[h] for h in leaves], tls=tls
            )
            province._coordinators.append(coordinator)
            governance = Governance(city)
            if governed:
                province.ledger_keys[city] = SigningKey.generate()
                province.ledgers[city] = work / "ledgers" / f"{city}.sqlite"
                ledger = Ledger(province.ledgers[city], city, province.ledger_keys[city])
                governance = Governance(city, ledger=ledger, supervisors=supervisors)
            holder = CityHolder(city, coordinator, governance)
            server, port = serve_coordinator(coordinator, f"{_host(tls)}:0", tls, city=holder)
            province._servers.append(server)
            province.cities[city] = holder
            province.city_addresses[city] = f"{_host(tls)}:{port}"
        tls = files.get("province")
        top = Coordinator.connect(list(province.city_addresses.values()), tls=tls)
        province._coordinators.append(top)
        server, port = serve_coordinator(top, f"{_host(tls)}:0", tls)
        province._servers.append(server)
        province.address = f"{_host(tls)}:{port}"
        if governed:
            assert analyst is not None, "a governed province issues vouchers to an analyst"
            until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
            leaves = list(data.shards)
            province.vouchers = [
                issue(
                    issuer,
                    grantee=analyst.key_id,
                    holder=name,
                    scope={
                        TABLE: {
                            "city": ["group", "filter"],
                            "industry": ["group", "filter"],
                            "month": ["filter"],
                            "kwh": ["aggregate"],
                        }
                    },
                    purpose="provincial electricity statistics",
                    not_after=until,
                    grantee_subject="analyst",
                    federation=leaves,  # every leaf of the province must take part
                ).encode()
                for name in leaves
            ]
    except BaseException:
        province.close()
        raise
    return province


def check_query(client: Client, data: ProvinceData, sql: str) -> tuple[Any, list[str]]:
    """Run ``sql`` encrypted through two levels and in DuckDB; (result, problems)."""
    compiled = client.compile(sql)
    result = client.query(sql)
    cursor = data.con.cursor()
    _, verdict = check_answer(
        compiled, result, lambda q: cursor.sql(q).fetchall(), data.reference_shards, K
    )
    return result, list(verdict.problems)


def run_province_demo(
    cities: int = 21,
    out: Callable[[str], None] = print,
    workdir: Path | None = None,
    seed: int = 7,
    governed: bool = False,
) -> int:
    """Start the province, run :data:`QUERIES`, verify each; 0 when all agree.

    ``governed``: mTLS on every channel, vouchers naming every leaf, a ledger at
    every leaf and city, and at the end every receipt checked against its ledger
    and each city's relay entry followed down to its holders' receipts.
    """
    import tempfile

    started = time.perf_counter()
    analyst = AnalystKey.generate()
    with tempfile.TemporaryDirectory(prefix="unseen-province-") as tmp:
        work = workdir or Path(tmp)
        data = write_province(work / "data", cities, seed=seed)
        leaves = len(data.shards)
        # One line for all holders instead of each one's quick-start warning.
        holder_log = logging.getLogger("unseen.nodes.holder")
        level = holder_log.level
        holder_log.setLevel(logging.ERROR)
        try:
            province = start_province(data, work, governed, analyst)
        finally:
            holder_log.setLevel(level)
        mode = (
            "governed (mTLS, vouchers naming every leaf, ledgers at every leaf and city)"
            if governed
            else f"quick-start (k = {K})"
        )
        out(
            f"unseen demo --province: {cities} city coordinators over {leaves} holders, "
            f"{mode}, masks between all {leaves}, under one provincial coordinator "
            f"(started in {time.perf_counter() - started:.1f} s)"
        )
        failures = 0
        receipts: list[str] = []
        try:
            with province.client(analyst) as client:
                for sql in QUERIES:
                    began = time.perf_counter()
                    result, problems = check_query(client, data, sql)
                    took = time.perf_counter() - began
                    receipts += [json.dumps(r) for r in result.meta.get("receipts", [])]
                    hidden = [
                        f"{'/'.join(map(str, s['group'].values()))} ({s.get('reason') or '?'})"
                        for s in result.meta["suppressed"]
                    ]
                    verdict = "ok" if not problems else "MISMATCH"
                    out(
                        f"  [{verdict}] {len(result.rows)} rows, {len(hidden)} suppressed, "
                        f"{took:.1f} s: {sql}"
                    )
                    if hidden:
                        out(f"    suppressed: {', '.join(hidden[:6])}{' ...' * (len(hidden) > 6)}")
                    for problem in problems:
                        out(f"    {problem}")
                    failures += bool(problems)
            audited = _audit(province, receipts, out) if governed else True
        finally:
            province.close()
        total = time.perf_counter() - started
        out(
            f"province: {len(QUERIES) - failures}/{len(QUERIES)} answers agree with DuckDB "
            f"over the pooled rows{'' if audited else '; the AUDIT FAILED'} ({total:.1f} s)"
        )
    return 0 if failures == 0 and audited else 1


def _audit(province: Province, lines: list[str], out: Callable[[str], None]) -> bool:
    """Every receipt matches its ledger; every city's relay entry commits to its holders'."""
    receipts = [Receipt.decode(line) for line in lines]
    ledgers = [read_ledger(path) for path in province.ledgers.values()]
    keys = {name: k.public_key for name, k in province.ledger_keys.items()}
    report = check_receipts(receipts, ledgers, keys)
    relays = follow_relays(receipts, ledgers)
    broken = [r for r in relays if r.status != "ok"]
    out(
        f"  [{'ok' if report.ok and not broken else 'MISMATCH'}] audit: {len(receipts)} receipts "
        f"match {len(ledgers)} ledgers ({len(report.problems)} problems); {len(relays)} city "
        f"relay entries followed down to their holders' receipts ({len(broken)} broken)"
    )
    return report.ok and not broken
