"""The bench's GROUP BY city on a PostgreSQL holder: federated against the warehouse itself.

Issue 14 asks that a holder on a warehouse scale with the warehouse, not
with its own memory: the holder pushes the whole aggregate down, so only
per-group sums reach it. This bench checks that claim on a table of
``rows`` rows that PostgreSQL generates itself (``generate_series``, no row
passes through Python):

- ``electricity(city TEXT, kwh DOUBLE PRECISION)``: 21 cities, ``kwh`` a
  deterministic function of the row number, so a re-run sees the same data;
- a holder process serving it (``--table electricity=postgresql://...``) and
  a second, unrelated holder (no holder answers alone: its masks need a peer),
  under a coordinator, all processes of :class:`~unseen.federation.LocalFederation`;
- the same SQL run directly in PostgreSQL.

It reports the federated and direct latencies (medians of ``repeats`` runs
after one warm-up each), their ratio, the holder's peak RSS (``VmHWM``) and
the table's size on disk, and checks that the federated answer equals the
direct one (counts exactly, sums and moments to CKKS precision).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unseen.bench.measure import Stat, fmt_bytes, ratio, timed
from unseen.bench.processes import ProcessProbe, status_kib
from unseen.bench.scenarios import AGGREGATE_SQL
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.federation import LocalFederation

__all__ = ["CITIES", "compare", "generate_table", "postgres_figure", "summary_line"]

CITIES = 21
TABLE = "electricity"
Log = Callable[[str], None]

# Every value is computed in the database from the row number g: 21 cities in
# turn, and kwh = (g * 7919 mod 100003) / 100, spread over [0, 1000) kWh.
_GENERATE = (
    "INSERT INTO {table} (city, kwh) "
    "SELECT 'city_' || lpad((g %% {cities})::text, 2, '0'), "
    "((g * 7919) %% 100003)::double precision / 100 "
    "FROM generate_series(1::bigint, %(rows)s::bigint) AS g"
)


def generate_table(con: Any, rows: int, reader: str, table: str = TABLE) -> int:
    """(Re)create ``table`` with ``rows`` rows generated inside PostgreSQL.

    ``con`` is an autocommit psycopg connection of an account that may create
    tables; ``reader`` is the holder's account, granted SELECT on it only. The
    table is UNLOGGED (a benchmark table need not survive a crash, and the
    write-ahead log would double the generation time). Returns its size in bytes.
    """
    # Our own constant table name and role, not user input.
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"CREATE UNLOGGED TABLE {table} (city TEXT NOT NULL, kwh DOUBLE PRECISION)")
    con.execute(_GENERATE.format(table=table, cities=CITIES), {"rows": rows})
    con.execute(f"VACUUM ANALYZE {table}")
    con.execute(f"GRANT SELECT ON {table} TO {reader}")
    size = con.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()
    return int(size[0])


def compare(federated: Sequence[Sequence[Any]], direct: Sequence[Sequence[Any]]) -> float:
    """The largest relative difference between two answers (inf if groups or counts differ)."""
    if len(federated) != len(direct):
        return math.inf
    worst = 0.0
    for ours, theirs in zip(federated, direct, strict=True):
        if ours[0] != theirs[0] or int(ours[1]) != int(theirs[1]):
            return math.inf
        for a, b in zip(ours[2:], theirs[2:], strict=True):
            if a is None or b is None:
                return math.inf  # nothing is small enough to suppress here
            worst = max(worst, abs(float(a) - float(b)) / max(abs(float(b)), 1e-12))
    return worst


def postgres_figure(
    admin: Callable[[], Any],
    holder_url: str,
    rows: int,
    work_dir: Path,
    key: AnalystKey,
    repeats: int = 3,
    reader: str = "holder",
    log: Log = lambda _line: None,
    generate: bool = True,
    table: str = TABLE,
) -> dict[str, Any]:
    """Generate the table (unless ``generate`` is False), then time both sides.

    ``admin`` opens an autocommit connection that may create the table and runs
    the direct query; ``holder_url`` is the holder's ``postgresql://`` source of
    ``table``.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    with admin() as con:
        if generate:
            log(f"generating {rows:,} rows in PostgreSQL ...")
            seconds, size = timed(lambda: generate_table(con, rows, reader, table))
            log(f"  generated in {seconds:.1f} s, {fmt_bytes(size)} on disk")
        else:
            seconds = math.nan
            size = int(con.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])
    # The peer serves an unrelated one-row table: it takes part in every answer's
    # masks, as the federation requires, and adds no rows to electricity.
    peer_csv = work_dir / "peer.csv"
    with open(peer_csv, "w", newline="") as out:
        csv.writer(out).writerows([("note",), ("peer",)])
    sql = AGGREGATE_SQL.format(table=table)
    holders: dict[str, dict[str, Path | str]] = {
        "warehouse": {table: holder_url},
        "peer": {"peer_note": peer_csv},
    }
    federated, direct = Stat(), Stat()
    started = time.perf_counter()
    with LocalFederation(
        holders, work_dir / "logs", holder_args=["--workers", "0"], startup_timeout=600
    ) as federation:
        startup = time.perf_counter() - started
        pid = next(n.process.pid for n in federation.nodes if n.name == "warehouse")
        probe = ProcessProbe({"warehouse": pid})
        client = Client(federation.address, key=key)
        try:
            with admin() as con:

                def in_postgres() -> list[tuple[Any, ...]]:
                    return list(con.execute(sql).fetchall())

                # Its peak through start-up (catalog, quick-start domains), before
                # the probe resets the high-water mark to measure the queries alone.
                startup_peak = _peak_rss(pid)
                probe.start()
                log("warm-up: one federated and one direct run")
                answer = client.query(sql).rows
                expected = in_postgres()
                for rep in range(repeats):
                    seconds_f, answer = timed(lambda: client.query(sql).rows)
                    seconds_d, expected = timed(in_postgres)
                    federated.add(seconds_f)
                    direct.add(seconds_d)
                    log(
                        f"  rep {rep + 1}/{repeats}: federated {seconds_f:.3f} s, "
                        f"PostgreSQL {seconds_d:.3f} s"
                    )
                processes = probe.stop()
        finally:
            client.close()
    error = compare(answer, expected)
    query_peak = processes.get("warehouse", {}).get("peak_rss_bytes")
    peaks = [p for p in (startup_peak, query_peak) if p is not None]
    return {
        "rows": rows,
        "groups": len(expected),
        "sql": sql,
        "generate_seconds": seconds,
        "table_bytes": size,
        "startup_seconds": startup,
        "federated_seconds": federated.to_json(),
        "direct_seconds": direct.to_json(),
        "ratio": ratio(federated, direct),
        "holder_peak_rss_bytes": max(peaks) if peaks else None,
        "holder_peak_rss_startup_bytes": startup_peak,
        "holder_peak_rss_queries_bytes": query_peak,
        "max_relative_error": error,
        "answers_equal": error <= 1e-6,
    }


def _peak_rss(pid: int) -> int | None:
    """A process's lifetime peak RSS in bytes (``VmHWM``), None off Linux."""
    kib = status_kib(pid, "VmHWM")
    return None if kib is None else kib * 1024


def summary_line(figure: dict[str, Any]) -> str:
    """One line: rows, both latencies, their ratio and the holder's peak RSS."""
    peak = figure["holder_peak_rss_bytes"]
    return (
        f"PostgreSQL {figure['rows']:,} rows: federated "
        f"{figure['federated_seconds']['median']:.2f} s, direct "
        f"{figure['direct_seconds']['median']:.2f} s, ratio {figure['ratio']:.2f}, "
        f"holder peak RSS {fmt_bytes(peak) if peak else '-'}, "
        f"answers {'equal' if figure['answers_equal'] else 'DIFFER'}"
    )
