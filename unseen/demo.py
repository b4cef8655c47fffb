"""``unseen demo``: a whole federation on loopback, showcase queries, verified.

Generates the synthetic province, writes each department's shard in a
different source format (CSV, Parquet, DuckDB, SQLite), starts every holder
and the coordinator as separate processes on ephemeral ports, runs the
showcase queries through the encrypted path and prints each answer beside
the same query answered in plaintext by DuckDB over the pooled rows, with a
mark per row. Exits 0 only when every answer agrees.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from engine import synth
from engine.client import Client
from engine.keys import AnalystKey
from engine.query import GroupRef
from engine.verify import suppressed_keys, verify
from unseen.federation import LocalFederation

__all__ = ["DemoQuery", "run_demo"]

# Three regional grid companies share the electricity table horizontally.
REGIONS = {
    "grid-pearl-river": (
        "Guangzhou",
        "Shenzhen",
        "Zhuhai",
        "Foshan",
        "Dongguan",
        "Zhongshan",
        "Jiangmen",
        "Huizhou",
        "Zhaoqing",
    ),
    "grid-east": ("Shantou", "Shanwei", "Chaozhou", "Jieyang", "Meizhou", "Heyuan"),
    "grid-west-north": ("Zhanjiang", "Maoming", "Yangjiang", "Yunfu", "Shaoguan", "Qingyuan"),
}
# Bank name -> (file format, share of enterprises it lends to). bank-c is small,
# so some cities have only a handful of its loans and get suppressed (k = 5).
BANKS = {"bank-a": (".csv", 0.35), "bank-b": (".sqlite", 0.25), "bank-c": (".duckdb", 0.06)}
GRID_FORMATS = (".parquet", ".csv", ".duckdb")


@dataclass(frozen=True)
class DemoQuery:
    title: str
    sql: str


QUERIES = (
    DemoQuery(
        "Electricity by city in 2023 (three regional grid companies)",
        "SELECT city, COUNT(*) AS reports, SUM(kwh) AS total_kwh, AVG(kwh) AS mean_kwh, "
        "STDDEV_SAMP(kwh) AS sd_kwh FROM electricity "
        "WHERE month BETWEEN '2023-01' AND '2023-12' GROUP BY city ORDER BY city",
    ),
    DemoQuery(
        "Top industries by peak load in the Pearl River Delta, summer 2023",
        "SELECT industry, SUM(peak_kw) AS peak_kw, AVG(kwh) AS mean_kwh FROM electricity "
        "WHERE city IN ('Guangzhou', 'Shenzhen', 'Foshan', 'Dongguan') "
        "AND month IN ('2023-06', '2023-07', '2023-08') "
        "GROUP BY industry HAVING COUNT(*) >= 20 ORDER BY peak_kw DESC LIMIT 5",
    ),
    DemoQuery(
        "Loans by city since March 2022 (three banks; small groups suppressed)",
        "SELECT city, COUNT(*), SUM(amount), AVG(rate), STDDEV_SAMP(rate) FROM loans "
        "WHERE month >= '2022-03' GROUP BY city ORDER BY city",
    ),
    DemoQuery(
        "Province-wide default rate and rate dispersion outside Shenzhen",
        "SELECT COUNT(*) AS loans, SUM(defaulted) AS defaults, "
        "SUM(defaulted) / COUNT(*) AS default_rate, VAR_POP(rate) AS rate_var "
        "FROM loans WHERE rate IS NOT NULL AND NOT city IN ('Shenzhen')",
    ),
)


def _federation_data(
    spec: synth.SynthSpec, root: Path
) -> tuple[dict[str, dict[str, Path]], dict[str, list[tuple[str, synth.Columns]]]]:
    ent = synth.enterprises(spec)
    power = synth.electricity(spec, ent)
    holders: dict[str, dict[str, Path]] = {}
    shards: dict[str, list[tuple[str, synth.Columns]]] = {"electricity": [], "loans": []}
    for (name, cities), suffix in zip(REGIONS.items(), GRID_FORMATS, strict=True):
        part = synth.split(power, np.isin(power["city"], cities))
        path = synth.write_table(part, root / name / f"electricity{suffix}", "electricity")
        holders[name] = {"electricity": path}
        shards["electricity"].append((name, part))
    for bank, (name, (suffix, share)) in enumerate(BANKS.items()):
        book = synth.loans(spec, ent, bank, share)
        path = synth.write_table(book, root / name / f"loans{suffix}", "loans")
        holders[name] = {"loans": path}
        shards["loans"].append((name, book))
    return holders, shards


def _reference(shards: dict[str, list[tuple[str, synth.Columns]]]) -> duckdb.DuckDBPyConnection:
    """DuckDB over the pooled rows, plus one view per shard for the k check."""
    con = duckdb.connect()
    for table, parts in shards.items():
        for holder, columns in parts:
            synth.public_relation(con, columns, f"raw_{holder}_{table}").create_view(
                f"{table}@{holder}"
            )
        pooled = {k: np.concatenate([c[k] for _, c in parts]) for k in parts[0][1]}
        synth.public_relation(con, pooled, f"raw_{table}").create_view(table)
    return con


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else str(value)
    return str(value)


def _side_by_side(
    columns: Sequence[str],
    ours: Sequence[Sequence[Any]],
    theirs: Sequence[Sequence[Any]],
    marks: Sequence[str],
) -> str:
    symbol = {"ok": "✓", "suppressed": "⊘ k", "MISMATCH": "✗"}
    header = [*columns, "│", *[f"{c} (plain)" for c in columns], ""]
    body = [
        [*map(_cell, o), "│", *map(_cell, t or [""] * len(columns)), symbol[m]]
        for o, t, m in zip(ours, theirs, marks, strict=True)
    ]
    grid = [header, *body]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in grid) for i in range(len(header))]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in grid
    ]
    lines.insert(1, "  " + "  ".join("─" * w for w in widths))
    return "\n".join(lines)


def run_demo(
    enterprises: int = 3000, seed: int = 7, workdir: Path | None = None, out: Any = print
) -> bool:
    """Run the showcase; True when every encrypted answer matched plaintext."""
    with tempfile.TemporaryDirectory(prefix="unseen-demo-") as tmp:
        root = workdir or Path(tmp)
        spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
        out(f"unseen demo — synthetic province, {enterprises} enterprises, seed {seed}")
        holders, shards = _federation_data(spec, root)
        reference = _reference(shards)
        out(f"starting {len(holders)} holders and a coordinator (separate processes) ...")
        all_ok = True
        with LocalFederation(holders, root / "logs") as federation:
            for node in federation.nodes:
                tables = ", ".join(f"{t}={p.name}" for t, p in holders[node.name].items())
                out(f"  holder {node.name:<17} {node.address:<16} {tables}")
            out(f"  coordinator             {federation.address}")
            key = AnalystKey.generate()
            with Client(federation.address, key=key) as client:
                started = time.perf_counter()
                client.register_key()
                out(
                    f"analyst key {key.key_id[:16]}… registered "
                    f"({len(key.public) / 1e6:.2f} MB public context, no secret key sent) "
                    f"in {time.perf_counter() - started:.2f} s\n"
                )
                catalog = client.catalog()
                for number, query in enumerate(QUERIES, 1):
                    all_ok &= _run_one(number, query, client, catalog, reference, shards, out)
        verdict = "all answers agree with plaintext" if all_ok else "SOME ANSWERS DISAGREE"
        out(f"demo finished: {verdict}")
        return all_ok


def _run_one(
    number: int,
    query: DemoQuery,
    client: Client,
    catalog: Any,
    reference: duckdb.DuckDBPyConnection,
    shards: dict[str, list[tuple[str, synth.Columns]]],
    out: Any,
) -> bool:
    out(f"[{number}/{len(QUERIES)}] {query.title}")
    out(f"  {query.sql}")
    compiled = client.compile(query.sql, catalog)
    table = compiled.plan.table
    started = time.perf_counter()
    result = client.query(query.sql)
    elapsed = time.perf_counter() - started
    theirs = reference.sql(query.sql).fetchall()
    k = catalog.table(table).min_group_size
    expected = suppressed_keys(
        query.sql,
        [g.column for g in compiled.plan.groups],
        [f"{table}@{holder}" for holder, _ in shards[table]],
        k,
        lambda sql: reference.sql(sql).fetchall(),
    )
    positions = [compiled.outputs.index(GroupRef(i)) for i in range(len(compiled.plan.groups))]
    ours_hidden = {tuple(g["group"].values()) for g in result.meta["suppressed"]}
    verdict = verify(
        result.columns,
        result.rows,
        ours_hidden,
        theirs,
        expected,
        positions,
        ordered=bool(compiled.order),
    )
    out(_side_by_side(result.columns, result.rows, verdict.expected, verdict.marks))
    meta = result.meta
    out(
        f"  seen: holders {', '.join(meta['holders'])} saw the plan (table {table}, filter, "
        f"{compiled.plan.group_count} group slots) and no other holder's answer; the coordinator "
        f"added {len(meta['holders'])} x {meta['ciphertexts']} ciphertexts "
        f"({meta['bytes_received'] / 1e3:.0f} KB back) with no key; the analyst decrypted the "
        f"sum; {len(meta['suppressed'])} group(s) suppressed (k={k})"
    )
    status = "verified" if verdict.ok else "MISMATCH: " + "; ".join(verdict.problems)
    out(f"  {status} in {elapsed:.2f} s\n")
    return verdict.ok
