"""Deterministic synthetic data for the showcase federation (see docs/synthetic-data.md).

One seed fixes everything. Enterprises live in the 21 prefecture-level
cities of a province, belong to industries and have a latent size and
health; every department's table is derived from those latents with noise,
so cross-department signals are realistic: electricity use and taxes grow
with size, headcount with size, seasonality by industry, heavy-tailed
amounts, missing values, and loan defaults that truly depend on the
features. Tables come back as dicts of numpy columns and are written with
DuckDB (CSV or Parquet by file suffix).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
from sqlglot import exp

__all__ = [
    "CITIES",
    "INDUSTRIES",
    "Columns",
    "SynthSpec",
    "electricity",
    "enterprises",
    "loans",
    "months",
    "public_relation",
    "split",
    "write_table",
]

Columns = dict[str, np.ndarray]

CITIES = (
    "Guangzhou",
    "Shenzhen",
    "Zhuhai",
    "Shantou",
    "Foshan",
    "Shaoguan",
    "Heyuan",
    "Meizhou",
    "Huizhou",
    "Shanwei",
    "Dongguan",
    "Zhongshan",
    "Jiangmen",
    "Yangjiang",
    "Zhanjiang",
    "Maoming",
    "Zhaoqing",
    "Qingyuan",
    "Chaozhou",
    "Jieyang",
    "Yunfu",
)
# Relative economic weight of each city (enterprise counts follow it).
_CITY_WEIGHT = np.array(
    [18, 20, 3, 3, 10, 1.2, 1, 1.2, 4, 0.8, 10, 3, 3, 1, 2, 1.5, 1.5, 1.2, 1, 1.5, 0.8]
)
INDUSTRIES = (
    "manufacturing",
    "retail",
    "wholesale",
    "construction",
    "logistics",
    "software",
    "catering",
    "agriculture",
    "textiles",
    "electronics",
    "chemicals",
    "services",
)
# Electricity intensity per unit of size, and summer seasonality amplitude.
_INTENSITY = np.array([3.0, 0.6, 0.5, 1.2, 0.9, 0.4, 0.8, 1.5, 2.2, 2.0, 3.5, 0.5])
_SEASONAL = np.array([0.10, 0.15, 0.10, 0.05, 0.08, 0.20, 0.25, 0.30, 0.10, 0.12, 0.08, 0.18])


@dataclass(frozen=True)
class SynthSpec:
    """Size and seed of a generated federation."""

    seed: int = 7
    enterprises: int = 5_000
    months: int = 24
    start_year: int = 2022
    missing_rate: float = 0.03


def months(spec: SynthSpec) -> list[str]:
    """Month labels 'YYYY-MM' covered by the data."""
    return [f"{spec.start_year + m // 12}-{m % 12 + 1:02d}" for m in range(spec.months)]


def enterprises(spec: SynthSpec) -> Columns:
    """The enterprise registry with latent size and health (latents prefixed ``_``)."""
    rng = np.random.default_rng([spec.seed, 1])
    n = spec.enterprises
    city = rng.choice(len(CITIES), size=n, p=_CITY_WEIGHT / _CITY_WEIGHT.sum())
    industry = rng.integers(0, len(INDUSTRIES), size=n)
    size = rng.lognormal(mean=0.0, sigma=1.1, size=n)  # heavy-tailed firm size
    health = rng.normal(size=n)  # latent credit quality
    founded = np.clip(2021 - rng.gamma(shape=2.0, scale=5.0, size=n).astype(int), 1985, 2021)
    ids = np.array([f"E{spec.seed:03d}{i:09d}" for i in range(n)])
    return {
        "uscc": ids,
        "city": np.array(CITIES)[city],
        "industry": np.array(INDUSTRIES)[industry],
        "founded": founded.astype(np.int64),
        "_city": city,
        "_industry": industry,
        "_size": size,
        "_health": health,
    }


def electricity(spec: SynthSpec, ent: Columns) -> Columns:
    """Monthly electricity per enterprise (kWh), seasonal, with gaps and outages."""
    rng = np.random.default_rng([spec.seed, 2])
    labels = months(spec)
    n, m = len(ent["uscc"]), len(labels)
    month_index = np.tile(np.arange(m), n)
    who = np.repeat(np.arange(n), m)
    industry = ent["_industry"][who]
    season = 1 + _SEASONAL[industry] * np.sin(2 * np.pi * ((month_index % 12) - 3) / 12)
    # Healthier firms grow; distressed ones drift down.
    trend = 1 + 0.01 * ent["_health"][who] * month_index / 12
    base = 12_000 * ent["_size"][who] * _INTENSITY[industry]
    kwh = base * season * trend * rng.lognormal(0, 0.15, size=n * m)
    keep = rng.random(n * m) > spec.missing_rate  # months never reported
    kwh = np.round(kwh, 2)
    peak = np.round(kwh / 300 * rng.uniform(0.8, 1.2, size=n * m)).astype(np.int64)
    return {
        "uscc": ent["uscc"][who][keep],
        "city": ent["city"][who][keep],
        "industry": ent["industry"][who][keep],
        "month": np.array(labels)[month_index][keep],
        "kwh": kwh[keep],
        "peak_kw": peak[keep],
    }


def loans(spec: SynthSpec, ent: Columns, bank: int, share: float = 0.3) -> Columns:
    """One bank's loan book: amounts, rates and defaults that depend on health."""
    rng = np.random.default_rng([spec.seed, 10 + bank])
    n = len(ent["uscc"])
    borrowers = np.flatnonzero(rng.random(n) < share)
    count = len(borrowers)
    labels = months(spec)
    month_index = rng.integers(0, len(labels), size=count)
    amount = np.round(50_000 * ent["_size"][borrowers] * rng.lognormal(0, 0.6, count), -2)
    risk = -ent["_health"][borrowers] + rng.normal(0, 0.5, count)
    rate = np.round(
        0.035 + 0.02 * (risk - risk.min()) / (np.ptp(risk) + 1e-9) + rng.normal(0, 0.004, count), 5
    )
    rate_missing = rng.random(count) < spec.missing_rate
    defaulted = (1 / (1 + np.exp(-(risk * 1.5 - 2.5)))) > rng.random(count)
    return {
        "loan_id": np.array([f"B{bank}L{i:08d}" for i in range(count)]),
        "uscc": ent["uscc"][borrowers],
        "city": ent["city"][borrowers],
        "month": np.array(labels)[month_index],
        "amount": amount.astype(np.int64),
        "rate": np.where(rate_missing, np.nan, rate),
        "defaulted": defaulted.astype(np.int64),
    }


def split(columns: Columns, mask: np.ndarray) -> Columns:
    """Rows of ``columns`` where ``mask`` holds (for horizontal shards)."""
    return {k: v[mask] for k, v in columns.items()}


def public_relation(
    con: duckdb.DuckDBPyConnection, columns: Columns, view: str
) -> duckdb.DuckDBPyRelation:
    """The public columns (no ``_`` latents) as a relation, NaN turned into NULL."""
    public = {k: v for k, v in columns.items() if not k.startswith("_")}
    con.register(view, public)
    items = []
    for name, values in public.items():
        column: exp.Expression = exp.column(name, quoted=True)
        if values.dtype.kind == "f":
            column = exp.If(this=exp.func("isnan", column.copy()), true=exp.Null(), false=column)
        elif values.dtype.kind in "US":
            # DuckDB reads numpy string arrays as ENUMs; files should hold VARCHAR.
            column = exp.cast(column, "VARCHAR")
        items.append(exp.alias_(column, name, quoted=True))
    return con.sql(exp.select(*items).from_(exp.to_identifier(view, quoted=True)).sql("duckdb"))


def write_table(columns: Columns, path: Path, table: str | None = None) -> Path:
    """Write a table as .csv, .parquet, a DuckDB file or a SQLite file (by suffix).

    Database files get one table named ``table`` (default: the file's stem).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    name = table or path.stem
    if path.suffix in (".sqlite", ".sqlite3"):
        _write_sqlite(columns, path, name)
        return path
    if path.suffix in (".duckdb", ".db"):
        path.unlink(missing_ok=True)
        con = duckdb.connect(str(path))
        try:
            public_relation(con, columns, "columns_view").create(name)
        finally:
            con.close()
        return path
    con = duckdb.connect()
    try:
        relation = public_relation(con, columns, "columns_view")
        if path.suffix == ".parquet":
            relation.write_parquet(str(path))
        else:
            relation.write_csv(str(path))
    finally:
        con.close()
    return path


def _write_sqlite(columns: Columns, path: Path, table: str) -> None:
    public = {k: v for k, v in columns.items() if not k.startswith("_")}
    kinds = {"i": "INTEGER", "f": "REAL", "b": "INTEGER"}
    defs = [
        exp.ColumnDef(
            this=exp.to_identifier(k, quoted=True),
            kind=exp.DataType.build(kinds.get(v.dtype.kind, "TEXT")),
        )
        for k, v in public.items()
    ]
    create = exp.Create(
        this=exp.Schema(this=exp.table_(table, quoted=True), expressions=defs), kind="TABLE"
    )
    insert = exp.insert(
        exp.values([tuple(exp.Placeholder() for _ in public)]),
        exp.table_(table, quoted=True),
        columns=list(public),
    )
    rows = zip(*[_python_values(v) for v in public.values()], strict=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(create.sql("sqlite"))
        con.executemany(insert.sql("sqlite"), rows)


def _python_values(values: np.ndarray) -> list[object]:
    if values.dtype.kind == "f":
        return [None if np.isnan(v) else float(v) for v in values]
    if values.dtype.kind in "iub":
        return [int(v) for v in values]
    return [str(v) for v in values]
