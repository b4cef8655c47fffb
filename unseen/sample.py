"""``unseen sample``: the two small loan tables the README's by-hand federation serves.

Two banks' loan books with one schema — ``city``, ``month`` (``YYYY-MM``),
``amount`` (whole yuan) and ``rate`` — bank A's as CSV, bank B's as Parquet,
so one federation shows both source kinds. Deterministic for a seed. Bank B
has only three loans in Zhoushan, fewer than the quick-start k = 5, so the
README's query shows a suppressed group (NULL cells, listed in ``meta``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np

__all__ = ["CITIES", "SAMPLE_FILES", "write_sample"]

CITIES = ("Hangzhou", "Ningbo", "Wenzhou", "Shaoxing")
SAMPLE_FILES = ("loans_a.csv", "loans_b.parquet")
_COLUMNS = ("city", "month", "amount", "rate")

Row = tuple[str, str, int, float]


def _loans(rng: np.random.Generator, count: int, cities: tuple[str, ...]) -> list[Row]:
    rows: list[Row] = []
    for _ in range(count):
        city = cities[int(rng.integers(len(cities)))]
        month = f"2022-{int(rng.integers(1, 13)):02d}"
        amount = int(rng.lognormal(12.0, 0.8)) // 100 * 100
        rate = round(float(rng.normal(0.045, 0.01)), 4)
        rows.append((city, month, amount, rate))
    return rows


def write_sample(out: Path, seed: int = 7) -> list[Path]:
    """Write ``loans_a.csv`` and ``loans_b.parquet`` into ``out``; returns their paths."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    bank_a = _loans(rng, 400, CITIES)
    bank_b = _loans(rng, 300, CITIES) + _loans(rng, 3, ("Zhoushan",))
    csv_path, parquet_path = (out / name for name in SAMPLE_FILES)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_COLUMNS)
        writer.writerows(bank_a)
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE loans (city VARCHAR, month VARCHAR, amount BIGINT, rate DOUBLE)")
        con.executemany("INSERT INTO loans VALUES (?, ?, ?, ?)", bank_b)
        con.execute("COPY loans TO ? (FORMAT parquet)", [str(parquet_path)])
    finally:
        con.close()
    return [csv_path, parquet_path]
