"""The benchmark grids and the run that walks one: data, federations, cells, targets."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unseen.bench import paillier
from unseen.bench.analysts import concurrent_analysts
from unseen.bench.cluster import Cluster
from unseen.bench.data import (
    DEPARTMENTS,
    ScoringData,
    electricity_shards,
    holder_names,
    label,
    scoring_data,
)
from unseen.bench.machine import describe_machine, load_average
from unseen.bench.processes import NOT_HOLDERS, holder_peak_rss
from unseen.bench.progress import Progress
from unseen.bench.scenarios import (
    AGGREGATE_SQL,
    aggregate_cell,
    key_registration,
    scoring_cell,
    scoring_model,
)
from unseen.bench.targets import add_best_ratios, evaluate_targets
from unseen.engine.crypto.keys import AnalystKey

__all__ = ["GRIDS", "SCHEMA", "Grid", "refresh", "run_suite"]

SCHEMA = "unseen-bench/1"


@dataclass(frozen=True)
class Grid:
    """What one mode measures.

    Attributes:
        name: tiny, quick or full.
        aggregate_rows: rows per holder of the 3-holder aggregate cells.
        scoring: (entities, features) cells at 3 holders.
        holders: holder counts of the scaling sweep.
        sweep_rows: rows per holder at 3 holders for the sweep (the pooled
            ``3 x sweep_rows`` rows are split over every holder count).
        sweep_scoring: (entities, features) scored at every holder count.
        analysts: concurrent analyst counts (3 holders).
        analyst_calls: calls per analyst per workload.
        repeats: timed runs per figure (after a warm-up).
        paillier_sample: entities timed with Paillier per feature count.
        aggregate_repeats: timed runs of each aggregate (they are short, so more).
    """

    name: str
    aggregate_rows: tuple[int, ...]
    scoring: tuple[tuple[int, int], ...]
    holders: tuple[int, ...]
    sweep_rows: int
    sweep_scoring: tuple[int, int]
    analysts: tuple[int, ...]
    analyst_calls: int
    repeats: int
    paillier_sample: int
    aggregate_repeats: int


GRIDS = {
    "tiny": Grid("tiny", (5_000,), ((600, 6),), (2, 3), 5_000, (600, 6), (1, 2), 2, 1, 2, 1),
    "quick": Grid(
        "quick",
        (100_000,),
        ((10_000, 10), (100_000, 30)),
        (2, 3),
        100_000,
        (10_000, 30),
        (1, 4),
        4,
        3,
        16,
        5,
    ),
    "full": Grid(
        "full",
        (100_000, 1_000_000, 10_000_000),
        tuple((e, f) for e in (10_000, 100_000, 1_000_000) for f in (10, 30, 100)),
        (2, 3, 8, 21),
        1_000_000,
        (100_000, 30),
        (1, 4, 8),
        5,
        3,
        60,
        7,
    ),
}


def _electricity_table(rows_total: int) -> str:
    return f"electricity_{label(rows_total)}"


def _prepare(
    grid: Grid, root: Path, seed: int, progress: Progress
) -> tuple[dict[int, dict[int, list[Path]]], dict[tuple[int, int], ScoringData]]:
    """Generate (or reuse) every file the grid needs.

    Returns electricity shards by pooled row count then holder count, and the
    scoring data by (entities, holders).
    """
    splits: dict[int, set[int]] = {3 * n: {3} for n in grid.aggregate_rows}
    splits.setdefault(3 * grid.sweep_rows, set()).update({3, *grid.holders})
    shards = {}
    for total, counts in sorted(splits.items()):
        with progress.step(f"data: electricity, {total:,} rows in {sorted(counts)} shard(s)"):
            shards[total] = electricity_shards(root, total, sorted(counts), seed, progress.log)
    widest: dict[tuple[int, int], int] = {}
    for entities, features in grid.scoring:
        widest[(entities, 3)] = max(widest.get((entities, 3), 0), features)
    sweep_entities, sweep_features = grid.sweep_scoring
    for holders in (3, *grid.holders):
        key = (sweep_entities, holders)
        widest[key] = max(widest.get(key, 0), sweep_features)
    scoring = {}
    for (entities, holders), features in sorted(widest.items()):
        with progress.step(f"data: {entities:,} entities x {features} features, {holders} holders"):
            scoring[(entities, holders)] = scoring_data(
                root, entities, holders, features, seed, progress.log
            )
    return shards, scoring


def _holders_map(
    holders: int,
    shards: dict[int, dict[int, list[Path]]],
    scoring: dict[tuple[int, int], ScoringData],
) -> dict[str, dict[str, Path]]:
    names = holder_names(holders)
    tables: dict[str, dict[str, Path]] = {name: {} for name in names}
    for total, by_count in shards.items():
        if holders in by_count:
            for name, path in zip(names, by_count[holders], strict=True):
                tables[name][_electricity_table(total)] = path
    for (_, count), data in scoring.items():
        if count == holders:
            for name, (table, path) in data.tables.items():
                tables[name][table] = path
    return tables


def _memory_row(scenario: str, processes: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "holder_peak_rss_bytes_max": holder_peak_rss(processes),
        "coordinator_peak_rss_bytes": processes.get("coordinator", {}).get("peak_rss_bytes"),
        "analyst_peak_rss_bytes": processes.get("analyst", {}).get("peak_rss_bytes"),
        "holder_cpu_s": {k: v["cpu_s"] for k, v in processes.items() if k not in NOT_HOLDERS},
        "coordinator_cpu_s": processes.get("coordinator", {}).get("cpu_s"),
        "analyst_cpu_s": processes.get("analyst", {}).get("cpu_s"),
    }


class _PaillierCache:
    """Paillier measured once per feature count on a sample of the first cell's rows."""

    def __init__(self, sample: int, progress: Progress):
        self.sample = sample
        self.progress = progress
        self.measured: dict[int, dict[str, Any]] = {}

    def __call__(
        self, matrix: np.ndarray, weights: np.ndarray, per_holder: list[int]
    ) -> dict[str, Any]:
        features = len(weights)
        if features not in self.measured:
            self.progress.log(
                f"  Paillier (2048-bit): timing {self.sample} entities x {features} features ..."
            )
            rows = matrix[: self.sample]
            self.measured[features] = paillier.measure(rows, weights, per_holder)
        return self.measured[features]


def run_suite(
    grid: Grid,
    data_dir: Path,
    log_dir: Path,
    progress: Progress,
    seed: int = 7,
    with_paillier: bool = True,
) -> dict[str, Any]:
    """Run every cell of ``grid``; returns the results document (see benchmarks/README.md)."""
    started = time.perf_counter()
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": grid.name,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": describe_machine(),
        "grid": asdict(grid),
        "aggregates": [],
        "scoring": [],
        "scaling": {"holders": [], "analysts": []},
        "wire": {"key_registration": {}},
        "memory": [],
        "notes": [],
    }
    has_phe, has_gmpy2 = paillier.available()
    if with_paillier and not has_phe:
        with_paillier = False
        results["notes"].append(
            "Paillier comparison skipped: phe is not installed (pip install '.[bench]')"
        )
    elif with_paillier and not has_gmpy2:
        results["notes"].append("Paillier ran without gmpy2 (slower than it could be)")
    if not with_paillier and has_phe:
        results["notes"].append("Paillier comparison skipped on request")
    shards, scoring = _prepare(grid, data_dir, seed, progress)
    results["data_s"] = round(progress.elapsed, 1)
    key = AnalystKey.generate()
    paillier_for = _PaillierCache(grid.paillier_sample, progress) if with_paillier else None
    for holders in sorted({3, *grid.holders}, key=lambda h: (h != 3, h)):
        tables = _holders_map(holders, shards, scoring)
        progress.log(f"federation of {holders} holder(s): starting ...")
        with Cluster(tables, log_dir / f"h{holders}", key) as cluster:
            progress.log(f"federation of {holders} holder(s): up in {cluster.startup_s:.1f} s")
            registration = key_registration(cluster)
            results["wire"]["key_registration"][str(holders)] = registration
            if holders == 3:
                _aggregate_cells(grid, cluster, shards, results, progress)
            if holders in grid.holders:
                _sweep_cell(
                    grid, holders, cluster, registration, shards, scoring, results, progress
                )
            if holders == 3:
                _scoring_cells(grid, cluster, scoring, results, progress, paillier_for)
                _analyst_cells(grid, cluster, scoring, results, progress)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["load_average_at_end"] = load_average()
    add_best_ratios(results)
    results["targets"] = evaluate_targets(results)
    shares = [
        c["others_on_machine"].get("others_share") or 0.0
        for c in results["aggregates"] + results["scoring"]
        if c.get("others_on_machine")
    ]
    if shares and max(shares) > 0.1:
        results["notes"].append(
            f"Other programs used up to {max(shares):.0%} of the machine's CPU during a cell "
            "(others_on_machine in each cell): those times are inflated and noisy."
        )
    results["notes"] += _standing_notes(grid)
    return results


def _aggregate_cells(
    grid: Grid,
    cluster: Cluster,
    shards: dict[int, dict[int, list[Path]]],
    results: dict[str, Any],
    progress: Progress,
) -> None:
    """The aggregate cells on the 3-holder federation, against centralized DuckDB."""
    for rows in grid.aggregate_rows:
        total = 3 * rows
        with progress.step(f"aggregates: 3 holders x {rows:,} rows"):
            cell = aggregate_cell(
                cluster,
                _electricity_table(total),
                shards[total][3],
                rows,
                grid.aggregate_repeats,
                progress,
            )
        results["aggregates"].append(cell)
        results["memory"].append(_memory_row(f"aggregate 3x{label(rows)}", cell["processes"]))


def _scoring_cells(
    grid: Grid,
    cluster: Cluster,
    scoring: dict[tuple[int, int], ScoringData],
    results: dict[str, Any],
    progress: Progress,
    paillier_for: _PaillierCache | None,
) -> None:
    """The scoring cells on the 3-holder federation, against the floor, numpy and Paillier."""
    for entities, features in grid.scoring:
        with progress.step(f"scoring: {entities:,} entities x {features} features"):
            cell = scoring_cell(
                cluster,
                scoring[(entities, 3)],
                features,
                grid.repeats,
                progress,
                paillier_for,
            )
        results["scoring"].append(cell)
        results["memory"].append(
            _memory_row(f"score {label(entities)}x{features}", cell["processes"])
        )


def _sweep_cell(
    grid: Grid,
    holders: int,
    cluster: Cluster,
    registration: dict[str, Any],
    shards: dict[int, dict[int, list[Path]]],
    scoring: dict[tuple[int, int], ScoringData],
    results: dict[str, Any],
    progress: Progress,
) -> None:
    """The same pooled rows and features at ``holders`` holders: one aggregate, one score."""
    total = 3 * grid.sweep_rows
    entities, features = grid.sweep_scoring
    with progress.step(f"scaling: {holders} holder(s)"):
        aggregate = aggregate_cell(
            cluster,
            _electricity_table(total),
            shards[total][holders],
            total // holders,
            grid.aggregate_repeats,
            progress,
            centralized=False,
        )
        # Another seed than the scoring cells: a model already registered would skip
        # its registration there.
        score = scoring_cell(
            cluster,
            scoring[(entities, holders)],
            features,
            grid.repeats,
            progress,
            baselines=False,
            seed=5,
        )
    results["scaling"]["holders"].append(
        {
            "holders": holders,
            "startup_s": cluster.startup_s,
            "key_registration": registration,
            "aggregate": aggregate,
            "scoring": score,
        }
    )
    results["memory"].append(
        _memory_row(f"sweep: aggregate, {holders} holders", aggregate["processes"])
    )
    results["memory"].append(
        _memory_row(
            f"sweep: score {label(entities)}x{features}, {holders} holders", score["processes"]
        )
    )


def _analyst_cells(
    grid: Grid,
    cluster: Cluster,
    scoring: dict[tuple[int, int], ScoringData],
    results: dict[str, Any],
    progress: Progress,
) -> None:
    """Concurrent analysts on the 3-holder federation: an aggregate and a score workload."""
    aggregate_work = {
        "kind": "aggregate",
        "sql": AGGREGATE_SQL.format(table=_electricity_table(3 * grid.sweep_rows)),
    }
    entities, features = grid.scoring[0]
    data = scoring[(entities, 3)]
    model, _ = scoring_model(data, features)
    score_work = {"kind": "score", "model": model, "ids": str(data.ids)}
    for analysts in grid.analysts:
        for work, what in (
            (aggregate_work, f"aggregate 3x{label(grid.sweep_rows)}"),
            (score_work, f"score {label(entities)}x{features}"),
        ):
            with progress.step(f"analysts: {analysts} concurrent, {what}"):
                row = concurrent_analysts(cluster.address, work, analysts, grid.analyst_calls)
            row["what"] = what
            results["scaling"]["analysts"].append(row)


def refresh(results: dict[str, Any]) -> dict[str, Any]:
    """Recompute what derives from the samples (best-of ratios, targets, standing notes).

    For re-rendering a results file written by an earlier version of the suite.
    """
    add_best_ratios(results)
    results["targets"] = evaluate_targets(results)
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in results["grid"].items()
    }
    grid = Grid(**fields)
    standing = _standing_notes(grid)
    heads = tuple(note[:24] for note in standing)
    results["notes"] = [n for n in results.get("notes", []) if not n.startswith(heads)] + standing
    return results


def _standing_notes(grid: Grid) -> list[str]:
    cores = os.cpu_count()
    notes = [
        f"Figures are medians of {grid.repeats} timed run(s) ({grid.aggregate_repeats} for "
        "aggregates) after a warm-up, with min-max in brackets. Ratios are of medians; "
        "targets are judged on that and on the best-of-runs ratio (fastest over fastest), "
        "whichever is less favourable.",
        "Every holder and the coordinator is its own process on loopback (--workers 0); "
        f"the analyst is the benchmark process; {cores} cores are shared by all of them.",
        "Centralized DuckDB runs in the analyst's process over read_parquet of the same shard "
        "files (the pooled rows), interleaved with the federated runs.",
        "Wire bytes are TCP payload bytes per connection from ss (tcp_info), gRPC framing "
        "included; score bytes per entity include the zero-padded last block.",
        "Peak RSS is each process's VmHWM, reset at the start of every cell.",
        "Holder scaling splits the same pooled rows and the same features over 2..N holders "
        "(an aggregate needs two holders at least: each answer is masked by its peers').",
        "Feature tables are wide Parquet files pivoted from the synthetic departments' tables "
        f"({', '.join(DEPARTMENTS)}); with 3 holders each department is one holder.",
    ]
    return notes
