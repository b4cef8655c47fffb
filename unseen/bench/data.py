"""Benchmark data from the synthetic province: electricity shards and wide feature tables.

*Aggregates* run over the grid's monthly electricity table, generated for as
many enterprises as the requested rows need and cut into contiguous,
equal horizontal shards (one Parquet file per holder), so every holder has
every city. *Scoring* runs over wide per-entity tables (one row per
enterprise, one DOUBLE column per feature) pivoted from the departments'
monthly and quarterly tables: electricity (``kwh_mNN``, ``peak_mNN``), tax
(``revenue_qNN``, ``vat_qNN``, ``arrears_qNN``) and social insurance
(``staff_mNN``), 144 candidate features over 36 months. Feature ``j`` of a
model is taken round-robin from the three departments; with three holders
each department is one holder, otherwise feature ``j`` lives at holder
``j mod H``. Everything is deterministic in the seed and cached under the
data directory (a ``manifest.json`` marks a finished set).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from unseen.engine.data import synth
from unseen.engine.data.synth.columns import Column, Digits, Lookup, Text, row_count, take
from unseen.engine.data.synth.departments import (
    electricity_table,
    headcount_table,
    tax_filings_table,
)
from unseen.engine.data.synth.ids import uscc
from unseen.engine.data.synth.writers import write_columns

__all__ = [
    "DEPARTMENTS",
    "ScoringData",
    "electricity_shards",
    "feature_columns",
    "holder_of",
    "label",
    "read_features",
    "scoring_data",
]

_FORMAT = 1  # bump when the layout of generated files changes
_MONTHS = 36  # scoring history: 36 months, 12 quarters
_ELECTRICITY_MONTHS = 24
DEPARTMENTS = ("grid", "tax", "hr")
Log = Callable[[str], None]


def label(count: int) -> str:
    """``10000 -> '10k'``, ``1000000 -> '1m'``: a size as a table-name suffix."""
    for suffix, unit in (("m", 1_000_000), ("k", 1_000)):
        if count >= unit and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def _cached(folder: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    manifest = folder / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("spec") == spec:
            return dict(data)
    return None


def _finish(folder: Path, spec: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    data = {"spec": spec, **body}
    (folder / "manifest.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


# -- aggregates ----------------------------------------------------------------------


def electricity_shards(
    root: Path, total_rows: int, splits: Sequence[int], seed: int = 7, log: Log | None = None
) -> dict[int, list[Path]]:
    """``total_rows`` electricity rows cut into ``h`` equal shards for every ``h`` in ``splits``.

    Returns ``{h: [shard paths]}``. Rows are the first ``total_rows`` of the
    table (enterprise-major), so the pooled rows are the same for every split.
    """
    counts = sorted(set(splits))
    spec = {"format": _FORMAT, "rows": total_rows, "splits": counts, "seed": seed}
    folder = root / f"electricity-{label(total_rows)}-s{seed}"
    cached = _cached(folder, spec)
    if cached is None:
        _fresh(folder)
        keep = 1 - synth.SynthSpec().missing_rate
        enterprises = math.ceil(total_rows / (_ELECTRICITY_MONTHS * keep) * 1.01) + 10
        synth_spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
        table = electricity_table(synth_spec, synth.enterprises(synth_spec))
        rows = row_count(table)
        if rows < total_rows:
            raise RuntimeError(f"generated {rows} electricity rows, fewer than {total_rows}")
        files: dict[str, list[str]] = {}
        for count in counts:
            bounds = np.linspace(0, total_rows, count + 1).astype(np.int64)
            paths = []
            for index in range(count):
                part = take(table, np.arange(bounds[index], bounds[index + 1]))
                path = folder / f"h{count}" / f"shard-{index + 1:02d}.parquet"
                write_columns(part, path, "electricity")
                paths.append(str(path.relative_to(folder)))
            files[str(count)] = paths
            if log:
                log(f"electricity {label(total_rows)} rows in {count} shard(s) written")
        cached = _finish(folder, spec, {"files": files, "enterprises": enterprises})
    return {int(h): [folder / p for p in paths] for h, paths in cached["files"].items()}


# -- scoring -------------------------------------------------------------------------


def feature_columns() -> dict[str, list[str]]:
    """Candidate feature columns of each department, in the order models take them."""
    months = [f"m{m + 1:02d}" for m in range(_MONTHS)]
    quarters = [f"q{q + 1:02d}" for q in range(_MONTHS // 3)]
    return {
        "grid": [f"{kind}_{m}" for m in months for kind in ("kwh", "peak")],
        "tax": [f"{kind}_{q}" for q in quarters for kind in ("revenue", "vat", "arrears")],
        "hr": [f"staff_{m}" for m in months],
    }


def _model_columns(features: int) -> list[tuple[int, str]]:
    """The first ``features`` features: (department index, column), round-robin."""
    pools = list(feature_columns().values())
    if features > sum(len(p) for p in pools):
        raise ValueError(f"at most {sum(len(p) for p in pools)} features are available")
    out: list[tuple[int, str]] = []
    depth = 0
    while len(out) < features:
        for department, pool in enumerate(pools):
            if depth < len(pool) and len(out) < features:
                out.append((department, pool[depth]))
        depth += 1
    return out


def holder_of(feature: int, department: int, holders: int) -> int:
    """Which holder hosts feature ``feature`` (of ``department``) among ``holders``."""
    return department if holders == len(DEPARTMENTS) else feature % holders


def holder_names(holders: int) -> list[str]:
    if holders == len(DEPARTMENTS):
        return list(DEPARTMENTS)
    return [f"h{index + 1:02d}" for index in range(holders)]


@dataclass(frozen=True)
class ScoringData:
    """Wide feature tables for ``entities`` enterprises split over ``holders`` holders.

    ``tables`` maps holder name to ``(table name, path)``; ``features`` lists,
    in model order, ``(holder name, table name, column)``; ``ids`` is the
    entity file (one credit code per line, in table row order); ``scales``
    is each column's median non-zero magnitude (for weights of comparable effect).
    """

    entities: int
    holders: int
    tables: dict[str, tuple[str, Path]]
    features: list[tuple[str, str, str]]
    ids: Path
    scales: dict[str, float]

    def model_features(self, count: int) -> list[tuple[str, str, str]]:
        if count > len(self.features):
            raise ValueError(f"the data holds {len(self.features)} features, not {count}")
        return self.features[:count]


def _panel_index(table: dict[str, Column], period: str) -> tuple[np.ndarray, np.ndarray]:
    """Entity index and period code of each row of a generated monthly/quarterly table.

    The table was generated with ``_org = arange(n)`` (see :func:`_world`), so the
    digits part of its credit codes is the entity index itself.
    """
    ids, periods = table["uscc"], table[period]
    assert isinstance(ids, Text) and isinstance(ids.parts[1], Digits)
    assert isinstance(periods, Text) and isinstance(periods.parts[0], Lookup)
    return ids.parts[1].values, periods.parts[0].codes.astype(np.int64)


def _pivot(
    who: np.ndarray, period: np.ndarray, values: np.ndarray, n: int, prefix: str
) -> dict[str, np.ndarray]:
    """One column per period (``<prefix>_m01`` or ``<prefix>_q01`` ...), NaN where missing."""
    letter, periods = (
        ("q", _MONTHS // 3) if prefix in ("revenue", "vat", "arrears") else ("m", _MONTHS)
    )
    dense = np.full((n, periods), np.nan)
    dense[who, period] = values
    return {f"{prefix}_{letter}{p + 1:02d}": dense[:, p].copy() for p in range(periods)}


def _world(entities: int, seed: int) -> tuple[dict[str, np.ndarray], Text, np.ndarray]:
    """Every candidate feature column, the lazy credit codes, and the codes as strings."""
    spec = synth.SynthSpec(seed=seed, enterprises=entities, months=_MONTHS)
    ent = synth.enterprises(spec)
    n = entities
    probe = dict(ent, _org=np.arange(n, dtype=np.int64))
    columns: dict[str, np.ndarray] = {}
    power = electricity_table(spec, probe)
    who, month = _panel_index(power, "month")
    columns |= _pivot(who, month, np.asarray(power["kwh"]), n, "kwh")
    columns |= _pivot(who, month, np.asarray(power["peak_kw"], np.float64), n, "peak")
    del power
    tax = tax_filings_table(spec, probe)
    who, quarter = _panel_index(tax, "quarter")
    for name, prefix in (("revenue", "revenue"), ("vat_paid", "vat"), ("arrears", "arrears")):
        values = np.asarray(tax[name], np.float64)
        columns |= _pivot(who, quarter, values, n, prefix)
    del tax
    staff = headcount_table(spec, probe)
    who, month = _panel_index(staff, "month")
    columns |= _pivot(who, month, np.asarray(staff["insured_staff"], np.float64), n, "staff")
    return columns, uscc(ent), np.asarray(ent["uscc"])


def _scale(column: np.ndarray) -> float:
    """The median magnitude of a column's non-zero values (1 when it has none).

    Mostly-zero columns (tax arrears) have a zero median; dividing a weight by
    it would blow the scores up to ~1e9 and hide the encryption error.
    """
    magnitudes = np.abs(column[np.isfinite(column) & (column != 0)])
    return float(np.median(magnitudes)) if magnitudes.size else 1.0


def scoring_data(
    root: Path,
    entities: int,
    holders: int,
    features: int,
    seed: int = 7,
    log: Log | None = None,
) -> ScoringData:
    """Write (or reuse) the wide tables for ``entities`` x the first ``features`` features."""
    spec = {
        "format": _FORMAT,
        "entities": entities,
        "holders": holders,
        "features": features,
        "seed": seed,
    }
    folder = root / f"wide-{label(entities)}-h{holders}-f{features}-s{seed}"
    cached = _cached(folder, spec)
    names = holder_names(holders)
    suffix = label(entities)
    chosen = _model_columns(features)
    placed = [(names[holder_of(i, d, holders)], c) for i, (d, c) in enumerate(chosen)]
    if cached is None:
        _fresh(folder)
        columns, codes, strings = _world(entities, seed)
        by_holder: dict[str, list[str]] = {name: [] for name in names}
        for holder, column in placed:
            by_holder[holder].append(column)
        tables: dict[str, list[str]] = {}
        for name, cols in by_holder.items():
            if not cols:
                continue
            table = f"{name}_{suffix}"
            path = folder / f"{table}.parquet"
            write_columns({"uscc": codes, **{c: columns[c] for c in cols}}, path, table)
            tables[name] = [table, path.name]
        ids = folder / "entities.txt"
        ids.write_text("\n".join(strings.tolist()) + "\n")
        scales = {c: _scale(columns[c]) for _, c in chosen}
        cached = _finish(folder, spec, {"tables": tables, "scales": scales})
        if log:
            log(f"wide tables: {entities:,} entities x {features} features at {holders} holders")
    tables_out = {h: (t, folder / p) for h, (t, p) in cached["tables"].items()}
    model = [(holder, tables_out[holder][0], column) for holder, column in placed]
    return ScoringData(
        entities, holders, tables_out, model, folder / "entities.txt", dict(cached["scales"])
    )


def read_features(data: ScoringData, features: Sequence[tuple[str, str, str]]) -> np.ndarray:
    """The plaintext feature matrix (entities x features, NULL as 0), in entity order."""
    out = np.zeros((data.entities, len(features)))
    con = duckdb.connect()
    try:
        for holder, (_, path) in data.tables.items():
            wanted = [(j, c) for j, (h, _, c) in enumerate(features) if h == holder]
            if not wanted:
                continue
            # A NULL (or an entity the holder lacks) takes the feature's default, 0.
            select = ", ".join(f'COALESCE(CAST("{c}" AS DOUBLE), 0) AS "{c}"' for _, c in wanted)
            query = f"SELECT {select} FROM read_parquet(?)"  # noqa: S608 - our own column names
            arrays = con.execute(query, [str(path)]).fetchnumpy()
            for j, column in wanted:
                out[:, j] = np.asarray(arrays[column], dtype=np.float64)
    finally:
        con.close()
    return out
