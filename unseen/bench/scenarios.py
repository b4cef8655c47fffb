"""One benchmark cell each: an aggregate size, a scoring size, a holder count, a key.

Every cell runs against a live :class:`~unseen.bench.cluster.Cluster`, checks
the encrypted answers against plaintext (DuckDB / numpy) and returns a JSON
ready dict: times as ``{median, min, max, runs, samples}``, bytes from the
kernel's TCP counters, and each process's peak RSS over the cell.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from unseen.bench import kernel, paillier
from unseen.bench.cluster import Cluster, Measured
from unseen.bench.data import ScoringData, read_features
from unseen.bench.measure import Stat, ratio, timed
from unseen.bench.progress import Progress
from unseen.engine.query.model import Feature, Model

__all__ = [
    "AGGREGATE_SQL",
    "aggregate_cell",
    "key_registration",
    "scoring_cell",
    "scoring_model",
]

AGGREGATE_SQL = (
    "SELECT city, COUNT(*) AS n, SUM(kwh) AS kwh, AVG(kwh) AS avg_kwh, "
    "STDDEV_SAMP(kwh) AS sd_kwh FROM {table} GROUP BY city ORDER BY city"
)


def _median_traffic(runs: Sequence[Measured], name: str, field: str) -> float | None:
    values = [getattr(m.traffic[name], field) for m in runs if m.traffic and name in m.traffic]
    return float(statistics.median(values)) if values else None


def _wire(runs: Sequence[Measured], holders: Sequence[str]) -> dict[str, Any]:
    """Median bytes per call: each holder's upload and download, and the analyst's link."""
    if not runs or runs[0].traffic is None:
        return {"method": "unavailable (no ss)"}
    return {
        "method": "ss tcp_info bytes (gRPC payload on loopback)",
        "holder_sent": {h: _median_traffic(runs, h, "sent") for h in holders},
        "holder_received": {h: _median_traffic(runs, h, "received") for h in holders},
        "coordinator_to_analyst": _median_traffic(runs, "coordinator", "sent"),
        "analyst_to_coordinator": _median_traffic(runs, "coordinator", "received"),
    }


def _max_rel_error(ours: Sequence[Sequence[Any]], theirs: Sequence[Sequence[Any]]) -> float:
    if len(ours) != len(theirs):
        return math.inf
    worst = 0.0
    for mine, other in zip(ours, theirs, strict=True):
        if mine[0] != other[0]:
            return math.inf
        for a, b in zip(mine[1:], other[1:], strict=True):
            if a is None or b is None:
                continue  # suppressed group (fewer than k rows at some holder)
            worst = max(worst, abs(float(a) - float(b)) / max(abs(float(b)), 1e-12))
    return worst


def key_registration(cluster: Cluster) -> dict[str, Any]:
    """Register the analyst's public key once: time and bytes per holder."""
    assert cluster.client is not None
    client = cluster.client
    measured = cluster.measure(lambda: client.register_key(force=True))
    holders = list(cluster.holders)
    wire = _wire([measured], holders)
    received = wire.get("holder_received", {})
    return {
        "seconds": measured.seconds,
        "public_context_bytes": len(cluster.key.public),
        "bytes_per_holder": received or {h: len(cluster.key.public) for h in holders},
        "max_bytes_per_holder": max(received.values()) if received else len(cluster.key.public),
        "analyst_to_coordinator": wire.get("analyst_to_coordinator"),
        "method": wire["method"],
    }


def aggregate_cell(
    cluster: Cluster,
    table: str,
    shards: Sequence[Path],
    rows_per_holder: int,
    repeats: int,
    progress: Progress,
    centralized: bool = True,
) -> dict[str, Any]:
    """The GROUP BY city query, federated (encrypted) and on centralized DuckDB."""
    assert cluster.client is not None
    client = cluster.client
    sql = AGGREGATE_SQL.format(table=table)
    con = duckdb.connect()
    files = ", ".join(f"'{p}'" for p in shards)
    # Our own table name and file paths, not user input.
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{files}])")  # noqa: S608

    def central() -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()

    holders = list(cluster.holders)
    cluster.probe_start()
    client.query(sql)  # warm-up: catalog, first scan of the files
    central()
    federated, pooled, cpu = Stat(), Stat(), Stat()
    runs: list[Measured] = []
    expected: list[tuple[Any, ...]] = []
    for rep in range(repeats):
        measured = cluster.measure(lambda: client.query(sql))
        runs.append(measured)
        federated.add(measured.seconds)
        if measured.cpu_s is not None:
            cpu.add(measured.cpu_s)
        if centralized:
            seconds, expected = timed(central)
            pooled.add(seconds)
        progress.log(
            f"  {table} rep {rep + 1}/{repeats}: federated {measured.seconds:.3f} s"
            + (f", centralized {pooled.samples[-1]:.3f} s" if centralized else "")
        )
    processes = cluster.probe_stop()
    result = runs[-1].result
    error = _max_rel_error(result.rows, expected) if centralized else None
    con.close()
    wire = _wire(runs, holders)
    return {
        "table": table,
        "holders": len(holders),
        "rows_per_holder": rows_per_holder,
        "rows_total": rows_per_holder * len(holders),
        "groups": len(result.rows),
        "federated_s": federated.to_json(),
        "federated_cpu_s": cpu.to_json(),
        "centralized_s": pooled.to_json() if centralized else None,
        "ratio": ratio(federated, pooled) if centralized else None,
        "ciphertexts": result.meta.get("ciphertexts"),
        "analyst_bytes_received": result.meta.get("bytes_received"),
        "wire": wire,
        "bytes_per_query_per_holder": _max_value(wire.get("holder_sent"))
        or result.meta.get("bytes_received"),
        "max_rel_error": error,
        "suppressed": len(result.meta.get("suppressed", [])),
        "processes": processes,
        "others_on_machine": cluster.interference(),
    }


def _max_value(values: dict[str, float | None] | None) -> float | None:
    found = [v for v in (values or {}).values() if v is not None]
    return max(found) if found else None


def scoring_model(data: ScoringData, features: int, seed: int = 3) -> tuple[Model, np.ndarray]:
    """A linear model over the first ``features`` features; weights give terms of order 1."""
    chosen = data.model_features(features)
    rng = np.random.default_rng([seed, features])
    # A zero scale comes from data cached before scales skipped zeros: use 1.
    scales = np.array([data.scales.get(c) or 1.0 for _, _, c in chosen])
    weights = rng.normal(size=features) / scales
    model = Model(
        entity="uscc",
        features=tuple(
            Feature(table=t, column=c, weight=float(w))
            for (_, t, c), w in zip(chosen, weights, strict=True)
        ),
        intercept=0.0,
        link="identity",
    )
    return model, weights


def scoring_cell(
    cluster: Cluster,
    data: ScoringData,
    features: int,
    repeats: int,
    progress: Progress,
    paillier_for: Callable[[np.ndarray, np.ndarray, list[int]], dict[str, Any] | None]
    | None = None,
    baselines: bool = True,
    seed: int = 3,
) -> dict[str, Any]:
    """Score every entity: end to end, against the kernel floor, numpy and Paillier.

    The plaintext features are read only after the encrypted runs, so the
    analyst's peak RSS is the client's own, not the benchmark's plaintext copy.
    """
    assert cluster.client is not None
    client = cluster.client
    entities = data.entities
    model, weights = scoring_model(data, features, seed)
    chosen = data.model_features(features)
    holders = list(cluster.holders)
    per_holder = [sum(1 for h, _, _ in chosen if h == name) for name in holders]
    ids = data.ids.read_text().split()

    cluster.probe_start()
    registration = cluster.measure(lambda: client.register_model(model, ids))
    if entities * features <= 3_000_000:
        client.score(model, ids)  # warm-up
    end_to_end, cpu = Stat(), Stat()
    runs: list[Measured] = []
    for rep in range(repeats):
        measured = cluster.measure(lambda: client.score(model, ids))
        if runs:
            runs[-1].result = None  # keep one result's rows alive, not every repeat's
        runs.append(measured)
        end_to_end.add(measured.seconds)
        if measured.cpu_s is not None:
            cpu.add(measured.cpu_s)
        progress.log(
            f"  score {entities:,} x {features} rep {rep + 1}/{repeats}: {measured.seconds:.3f} s"
        )
    processes = cluster.probe_stop()
    last = runs[-1].result
    scores = np.array([row[1] for row in last.rows], dtype=np.float64)
    received = last.meta.get("bytes_received")
    runs[-1].result = last = None
    matrix = read_features(data, chosen)
    expected = matrix @ weights
    error = float(np.max(np.abs(scores - expected))) if len(scores) else math.nan
    magnitude = float(np.max(np.abs(expected))) if len(scores) else math.nan
    del expected
    del scores
    wire = _wire(runs, holders)
    sent = _max_value(wire.get("holder_sent"))
    reg_wire = _wire([registration], holders)
    cell: dict[str, Any] = {
        "entities": entities,
        "features": features,
        "holders": len(holders),
        "features_per_holder": dict(zip(holders, per_holder, strict=True)),
        "end_to_end_s": end_to_end.to_json(),
        "end_to_end_cpu_s": cpu.to_json(),
        "model_registration_s": registration.seconds,
        "model_registration_bytes_per_holder": reg_wire.get("holder_received"),
        "blocks": -(-entities // 4096),
        "analyst_bytes_received": received,
        "wire": wire,
        # Without ss: every holder's block is the size of the combined block the analyst gets.
        "bytes_per_entity_per_holder": (sent or received or 0) / entities or None,
        "max_abs_error": error,
        "max_abs_score": magnitude,
        "processes": processes,
        "others_on_machine": cluster.interference(),
    }
    if not baselines:
        return cell
    progress.log(f"  kernel floor {entities:,} x {features} ...")
    floor = kernel.kernel_floor(entities, features, repeats)
    seal_floor = kernel.sealapi_floor(entities, features, repeats)
    plain = kernel.numpy_scores(matrix, weights, max(5, repeats))
    cell["kernel_floor_s"] = floor.to_json()
    cell["sealapi_floor_s"] = seal_floor.to_json()
    # Issue 11: the SEAL floor with every column already encoded (the encoded-column
    # cache's hit), and flooding one block (each holder floods each of its blocks).
    cell["sealapi_floor_cached_s"] = kernel.sealapi_floor(
        entities, features, repeats, cached=True
    ).to_json()
    cell["flood_per_block_s"] = kernel.flood_per_block(max(5, repeats)).to_json()
    cell["numpy_s"] = plain.to_json()
    cell["ratio_to_floor"] = ratio(end_to_end, floor)
    if entities * features <= 3_000_000:
        progress.log(f"  HE pipeline in one process {entities:,} x {features} ...")
        cell["pipeline_s"] = kernel.pipeline(entities, [c for c in per_holder if c])
    measured_paillier = paillier_for(matrix, weights, per_holder) if paillier_for else None
    if measured_paillier is not None:
        estimate = paillier.extrapolate(measured_paillier, entities)
        cell["paillier"] = {**measured_paillier, **estimate}
        cell["speedup_vs_paillier"] = ratio(estimate["wall_s_estimate"], end_to_end)
    else:
        cell["paillier"] = None
        cell["speedup_vs_paillier"] = None
    return cell
