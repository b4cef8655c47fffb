"""Differential test: random data at several holders, random queries, DuckDB as the oracle.

Each query runs through the whole encrypted path (client, coordinator,
holders over CSV / Parquet / DuckDB / SQLite shards) and in plaintext DuckDB
over the pooled rows; answers must agree (exact for counts and integer sums,
1e-6 otherwise) and the suppressed groups must be exactly those some shard
fails unseen.engine.privacy.suppression's rules for (k, dominance, moments), computed from
DuckDB's own plaintext statistics of each shard. CI runs ``UNSEEN_DIFF_QUERIES`` (default 120)
queries over 3 seeds of data; ``scripts/differential.sh`` runs thousands.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path

import pytest

from tests.conftest import start_federation
from tests.shards import write_shards

SCHEMA = [
    ("region", "VARCHAR"),
    ("year", "BIGINT"),
    ("day", "DATE"),
    ("kind", "VARCHAR"),
    ("qty", "BIGINT"),
    ("price", "DOUBLE"),
    ("weight", "DOUBLE"),
]
REGIONS = ["north", "south", "east", "west", "Port O'Hara"]
KINDS = ["a", "ab", "b", None]
QUERIES = int(os.environ.get("UNSEEN_DIFF_QUERIES", "120"))
SEEDS = (11, 12, 13)
FORMATS = (".csv", ".parquet", ".duckdb", ".sqlite")
K = 3


def _rows(rng: random.Random, n: int) -> list[tuple]:
    rows = []
    for _ in range(n):
        qty = (
            None
            if rng.random() < 0.1
            else rng.choice([rng.randint(-100, 100), rng.randint(-(2**40), 2**40)])
        )
        price = (
            None
            if rng.random() < 0.1
            else rng.choice(
                [rng.uniform(-1, 1), rng.lognormvariate(5, 2), 1e6 + rng.gauss(0, 0.01)]
            )
        )
        rows.append(
            (
                rng.choice(REGIONS),
                rng.randint(2019, 2023),
                dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500)),
                rng.choice(KINDS),
                qty,
                price,
                round(rng.uniform(0, 50), 3),
            )
        )
    return rows


def _predicate(rng: random.Random) -> str:
    choices = [
        lambda: f"year {rng.choice(['=', '<>', '<', '<=', '>', '>='])} {rng.randint(2018, 2024)}",
        lambda: f"qty {rng.choice(['<', '>'])} {rng.randint(-50, 50)}",
        lambda: f"price BETWEEN {rng.uniform(-1, 10):.3f} AND {rng.uniform(10, 5000):.3f}",
        lambda: (
            "region IN ("
            + ", ".join(
                "'" + r.replace("'", "''") + "'" for r in rng.sample(REGIONS, rng.randint(1, 4))
            )
            + ")"
        ),
        lambda: f"kind {rng.choice(['LIKE', 'NOT LIKE'])} '{rng.choice(['a%', '%b', '_', 'a'])}'",
        lambda: f"kind IS {rng.choice(['', 'NOT '])}NULL",
        lambda: f"day >= '{dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500))}'",
        lambda: f"weight * 2 + qty > {rng.randint(-20, 80)}",
        lambda: f"NOT (price < {rng.uniform(0, 100):.2f})",
        # Calendar functions, constant INTERVAL arithmetic, CAST, COALESCE.
        lambda: (
            f"EXTRACT({rng.choice(['month', 'year', 'dow'])} FROM day) "
            f"{rng.choice(['=', '<', '>='])} {rng.randint(0, 12) if rng.random() < 0.7 else 2021}"
        ),
        lambda: (
            f"date_trunc('{rng.choice(['month', 'quarter', 'year'])}', day) >= "
            f"DATE '{dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500))}'"
        ),
        lambda: (
            f"day < DATE '{dt.date(2021, 1, 31) + dt.timedelta(days=rng.randint(0, 900))}' "
            f"- INTERVAL '{rng.randint(1, 14)}' {rng.choice(['DAY', 'MONTH', 'YEAR', 'WEEK'])}"
        ),
        lambda: f"CAST(qty AS DOUBLE) / 2 {rng.choice(['<', '>'])} {rng.randint(-50, 50)}",
        lambda: f"COALESCE(kind, 'z') {rng.choice(['=', '<>'])} 'z'",
    ]
    return rng.choice(choices)()


def _where(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return ""
    parts = [_predicate(rng) for _ in range(rng.randint(1, 3))]
    glue = rng.choice([" AND ", " AND ", " OR "])
    return " WHERE " + glue.join(f"({p})" for p in parts)


def _aggregate(rng: random.Random) -> str:
    column = rng.choice(
        [
            "qty",
            "price",
            "weight",
            "qty * 3 - price",
            "weight / 4",
            "CASE WHEN kind = 'a' THEN qty ELSE 0 END",
            "CASE WHEN weight > 25 THEN weight WHEN qty < 0 THEN 1 END",
            "COALESCE(price, 0)",
            "NULLIF(qty, 0)",
            "CAST(qty AS DECIMAL(38,2))",
        ]
    )
    fn = rng.choice(["COUNT", "SUM", "AVG", "VAR_SAMP", "VAR_POP", "STDDEV_SAMP", "STDDEV_POP"])
    call = "COUNT(*)" if rng.random() < 0.15 else f"{fn}({column})"
    if rng.random() < 0.15:
        call += f" FILTER (WHERE {_predicate(rng)})"
    return call


GROUP_KEYS = [
    "region",
    "year",
    "kind",
    "EXTRACT(year FROM day)",
    "date_trunc('quarter', day)",
    "CASE WHEN qty < 0 THEN 'neg' WHEN qty < 50 THEN 'small' ELSE 'big' END",
]


def random_query(rng: random.Random) -> str:
    groups = rng.sample(GROUP_KEYS, rng.choice([0, 1, 1, 2]))
    aggregates = [_aggregate(rng) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.2 and len(aggregates) >= 2:
        aggregates.append(f"{aggregates[0]} {rng.choice(['+', '-', '*', '/'])} {aggregates[1]}")
    select = ", ".join(groups + [f"{a} AS a{i}" for i, a in enumerate(aggregates)])
    sql = f"SELECT {select} FROM t{_where(rng)}"
    if groups:
        sql += " GROUP BY " + ", ".join(groups)
        if rng.random() < 0.3:
            sql += f" HAVING COUNT(*) > {rng.randint(0, 20)}"
        sql += " ORDER BY " + ", ".join(groups)
    return sql


@pytest.fixture(scope="module", params=SEEDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    seed = request.param
    rng = random.Random(seed)
    root: Path = tmp_path_factory.mktemp(f"diff{seed}")
    holders, reference = write_shards(
        SCHEMA,
        {
            f"h{i}": (
                root / f"h{i}{FORMATS[(seed + i) % 4]}",
                _rows(rng, rng.choice([0, 5, 40, 150, 400]) if i else rng.randint(100, 300)),
            )
            for i in range(rng.randint(2, 4))
        },
    )
    fed = start_federation(holders, k=K)
    yield seed, fed, reference
    fed.close()


def test_random_queries_agree_with_duckdb(world, key):
    seed, fed, reference = world
    rng = random.Random(seed * 1000)
    client = fed.client(key)
    failures = []
    reasons: dict[str, int] = {}
    for _ in range(QUERIES // len(SEEDS)):
        sql = random_query(rng)
        result, _, verdict = reference.check(client, sql, K)
        if not verdict.ok:
            failures.append((sql, verdict.problems[:3]))
        for entry in result.meta["suppressed"]:
            reasons[entry.get("reason", "")] = reasons.get(entry.get("reason", ""), 0) + 1
    assert not failures, "\n".join(f"{sql}\n    {problems}" for sql, problems in failures[:5])
    # Every rule was exercised, and DuckDB agreed with each (seeds 11-13, 40 queries
    # each: each rule suppressed 29 to 158 cells); a shorter run may not meet them all.
    if QUERIES >= 120:
        assert set(reasons) == {"k", "dominance", "moments"}, reasons
