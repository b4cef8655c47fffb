"""Holders on real warehouses: one table split over DuckDB, PostgreSQL, MariaDB and
Spark holders answers the differential test's random queries like DuckDB over the
pooled rows; a model scores over features held in PostgreSQL, MariaDB and Spark
like numpy.

The servers are real (tests/servers.py starts them once per session) and every
holder reaches its warehouse as a deployment does: through a URL naming a
read-only account whose password sits in a file, never in the URL. CI runs
``UNSEEN_WAREHOUSE_QUERIES`` (default 30) queries; ``scripts/differential.sh``
runs more.
"""

from __future__ import annotations

import os
import random
from typing import Any

import duckdb
import numpy as np
import pytest

from tests.conftest import start_federation
from tests.integration.test_differential import SCHEMA, K, _rows, random_query
from tests.integration.test_scoring import MODEL, POWER, REGISTRY, TAX, TRANSFERS, _world
from tests.servers import load_spark
from tests.shards import Reference, load_duckdb, write_shard
from unseen.engine.client import Client
from unseen.engine.errors import PlanError, SourceError, UnseenError
from unseen.engine.query.model import parse_model
from unseen.federation import LocalFederation
from unseen.oracle.plaintext import plaintext_scores

QUERIES = int(os.environ.get("UNSEEN_WAREHOUSE_QUERIES", "30"))
SEED = 21

# Literals an analyst could use to break a driver's parameter syntax: none may
# reach the SQL text, so each is just a value that matches nothing.
HOSTILE = [
    "SELECT COUNT(*) AS n FROM t WHERE region = '%(p1)s'",
    "SELECT COUNT(*) AS n FROM t WHERE region = '%s' OR kind LIKE '%%'",
    "SELECT COUNT(*) AS n FROM t WHERE region = ':p1' OR region = '$1'",
    "SELECT COUNT(*) AS n FROM t WHERE region = 'x''); DROP TABLE t; --'",
    "SELECT region, SUM(qty) AS s FROM t WHERE kind LIKE '%''%' GROUP BY region ORDER BY region",
]


@pytest.fixture(scope="module")
def warehouse_world(tmp_path_factory, postgres, mariadb, spark):
    rng = random.Random(SEED)
    root = tmp_path_factory.mktemp("warehouses")
    shards = {name: _rows(rng, rng.randint(60, 200)) for name in ("duck", "pg", "maria", "spark")}
    postgres.load(SCHEMA, shards["pg"], "diff_t")
    mariadb.load(SCHEMA, shards["maria"], "diff_t")
    load_spark(spark, SCHEMA, shards["spark"], "diff_t")
    holders: dict[str, dict[str, Any]] = {
        "duck": {"t": write_shard(root / "duck.duckdb", SCHEMA, shards["duck"])},
        "pg": {"t": postgres.url("diff_t")},
        "maria": {"t": mariadb.url("diff_t")},
        "spark": {"t": "spark+local:///?table=diff_t"},
    }
    con = duckdb.connect()
    pooled: list[Any] = []
    for name, rows in shards.items():
        load_duckdb(con, SCHEMA, rows, f"t@{name}")
        pooled += rows
    load_duckdb(con, SCHEMA, pooled, "t")
    fed = start_federation(holders, k=K)
    yield fed, Reference(con, [f"t@{name}" for name in shards])
    fed.close()


def test_every_warehouse_publishes_the_same_catalog(warehouse_world, key):
    fed, _ = warehouse_world
    catalogs = {name: node.catalog().tables[0] for name, node in fed.holders.items()}
    reference = catalogs.pop("duck")
    for name, table in catalogs.items():
        assert [(c.name, str(c.type)) for c in table.columns] == [
            (c.name, str(c.type)) for c in reference.columns
        ], name
        # Group domains come from each engine's SELECT DISTINCT; region is public in all.
        region = table.column("region")
        assert region is not None and region.domain, name


def test_random_queries_agree_with_duckdb_over_the_pooled_rows(warehouse_world, key):
    fed, reference = warehouse_world
    rng = random.Random(SEED * 1000)
    client = fed.client(key)
    failures = []
    refused = 0
    for sql in [random_query(rng) for _ in range(QUERIES)] + HOSTILE:
        try:
            client.compile(sql)
        except PlanError:
            # The front end refuses some random queries for every engine alike (a
            # WHERE that leaves a group key no value); no holder sees them.
            refused += 1
            continue
        _, _, verdict = reference.check(client, sql, K)
        if not verdict.ok:
            failures.append((sql, verdict.problems[:3]))
    assert not failures, "\n".join(f"{sql}\n    {problems}" for sql, problems in failures[:5])
    assert refused <= QUERIES // 10


# One query per construct docs/sql.md lists as supported, each run over the table
# split across DuckDB, PostgreSQL, MariaDB and Spark holders and compared with
# DuckDB over the pooled rows: a construct one engine spells differently fails here.
CONSTRUCTS = {
    "aggregates": "SELECT COUNT(*) AS n, COUNT(kind) AS c, SUM(qty) AS s, AVG(weight) AS a FROM t",
    "moments": "SELECT VAR_POP(qty) AS v, STDDEV_SAMP(price) AS s FROM t",
    "arithmetic": "SELECT SUM(qty * 3 - price) AS s, AVG(weight / 4) AS a FROM t",
    "decimal product": (
        "SELECT SUM(CAST(year AS DECIMAL(20,1)) * CAST(qty AS DECIMAL(30,2)) * 0.25) AS s "
        "FROM t WHERE qty BETWEEN -100 AND 100"
    ),
    "case": "SELECT SUM(CASE WHEN kind = 'a' THEN qty ELSE 0 END) AS s FROM t",
    "simple case": "SELECT SUM(CASE kind WHEN 'ab' THEN weight END) AS s FROM t",
    "coalesce nullif abs": (
        "SELECT AVG(COALESCE(price, 0)) AS a, COUNT(NULLIF(qty, 0)) AS c, SUM(ABS(qty)) AS s FROM t"
    ),
    "filter": "SELECT SUM(qty) FILTER (WHERE region = 'north') AS s FROM t",
    "count filter": "SELECT COUNT(*) FILTER (WHERE weight > 25) AS n FROM t",
    "predicates": (
        "SELECT COUNT(*) AS n FROM t WHERE qty BETWEEN -50 AND 50 AND region IN ('north', "
        "'Port O''Hara') AND kind LIKE 'a%' AND price IS NOT NULL"
    ),
    "ilike": "SELECT COUNT(*) AS n FROM t WHERE kind ILIKE 'A%'",
    "date literal": "SELECT COUNT(*) AS n FROM t WHERE day >= DATE '2021-06-01'",
    "timestamp literal": (
        "SELECT COUNT(*) AS n FROM t WHERE CAST(day AS TIMESTAMP) < TIMESTAMP '2022-03-04 12:00:00'"
    ),
    "interval": "SELECT COUNT(*) AS n FROM t WHERE day <= DATE '2023-01-31' - INTERVAL '1' MONTH",
    "cast numbers": (
        "SELECT SUM(CAST(qty AS DOUBLE)) AS f, SUM(CAST(year AS BIGINT)) "
        "AS i, SUM(CAST(qty AS DECIMAL(38,2))) AS d FROM t"
    ),
    "cast dates": ("SELECT COUNT(*) AS n FROM t WHERE CAST(CAST(day AS TIMESTAMP) AS DATE) = day"),
    "extract": (
        "SELECT SUM(EXTRACT(quarter FROM day)) AS q, SUM(EXTRACT(dow FROM day)) AS w, "
        "SUM(EXTRACT(doy FROM day)) AS y, SUM(EXTRACT(day FROM day)) AS d, "
        "SUM(EXTRACT(hour FROM CAST(day AS TIMESTAMP))) AS h FROM t WHERE year(day) > 2020"
    ),
    "date_trunc": (
        "SELECT COUNT(*) AS n FROM t WHERE date_trunc('month', day) = DATE '2021-03-01' "
        "OR date_trunc('year', day) = DATE '2022-01-01' OR date_trunc('day', day) < "
        "DATE '2020-02-01'"
    ),
    "group by columns": "SELECT region, kind, COUNT(*) AS n FROM t GROUP BY region, kind",
    "group by calendar": (
        "SELECT EXTRACT(year FROM day) AS y, date_trunc('quarter', day) AS q, COUNT(*) AS n, "
        "SUM(qty) AS s FROM t GROUP BY 1, 2"
    ),
    "group by listed years": (
        "SELECT EXTRACT(dow FROM day) AS w, COUNT(*) AS n FROM t "
        "WHERE EXTRACT(dow FROM day) IN (0, 6) GROUP BY w"
    ),
    "group by case": (
        "SELECT CASE WHEN qty < 10 THEN 'small' ELSE 'large' END AS size, COUNT(*) AS n "
        "FROM t GROUP BY size"
    ),
    "having order limit": (
        "SELECT region, SUM(qty) / COUNT(*) AS q FROM t GROUP BY region HAVING COUNT(*) > 10 "
        "ORDER BY q DESC LIMIT 2"
    ),
    "over aggregates": (
        "SELECT ROUND(SQRT(VAR_POP(weight)), 4) AS r, CASE WHEN SUM(qty) > 100 THEN 'big' END AS b "
        "FROM t"
    ),
}


@pytest.mark.parametrize("construct", list(CONSTRUCTS))
def test_each_construct_agrees_with_duckdb_on_every_engine(warehouse_world, key, construct):
    fed, reference = warehouse_world
    _, _, verdict = reference.check(fed.client(key), CONSTRUCTS[construct], K)
    assert verdict.ok, verdict.problems[:3]


@pytest.fixture(scope="module")
def scoring_warehouses(postgres, mariadb, spark, tmp_path_factory):
    ids, registry, power, tax, transfers = _world(7, 600)
    postgres.load(REGISTRY, registry, "registry")
    mariadb.load(POWER, power, "electricity")
    load_spark(spark, TAX, tax, "tax_filings")
    reference = duckdb.connect()
    load_duckdb(reference, REGISTRY, registry, "registry")
    load_duckdb(reference, POWER, power, "electricity")
    load_duckdb(reference, TAX, tax, "tax_filings")
    load_duckdb(reference, TRANSFERS, transfers[0], "transfers")
    root = tmp_path_factory.mktemp("scoring-warehouses")
    holders = {
        "samr": {"registry": postgres.url("registry")},
        "grid": {"electricity": mariadb.url("electricity")},
        "tax": {"tax_filings": "spark+local:///?table=tax_filings"},
        "bank": {"transfers": write_shard(root / "t.parquet", TRANSFERS, transfers[0])},
    }
    fed = start_federation(holders)
    yield fed, reference, ids
    fed.close()


def test_scores_over_warehouse_features_match_numpy(scoring_warehouses, key):
    fed, reference, ids = scoring_warehouses
    rng = random.Random(3)
    entities = [*rng.sample(ids, 500), "unknown-entity", ids[0]]
    model = parse_model(MODEL)
    result = fed.client(key).score(model, entities)
    assert [r[0] for r in result.rows] == entities
    ours = np.array([r[1] for r in result.rows])
    expected = plaintext_scores(reference, model, entities)
    assert np.max(np.abs(ours - expected)) < 1e-6
    assert sorted(result.meta["holders"]) == ["bank", "grid", "samr", "tax"]


@pytest.mark.parametrize(
    ("holder", "code"),
    [
        ("pg", "25006"),
        ("maria", "1792"),
    ],  # read_only_sql_transaction / ER_CANT_EXECUTE_IN_READ_ONLY
)
def test_a_holders_warehouse_session_is_read_only(warehouse_world, holder, code):
    """Even a temporary table, which the holder's grants allow, is refused: were
    an injection ever to reach the SQL text, the session could not write."""
    fed, _ = warehouse_world
    source = fed.holders[holder].sources["t"]
    create = "CREATE TEMPORARY TABLE unseen_probe (a INTEGER)"
    with pytest.raises(SourceError, match=f"code {code}"):
        source.run(create)


def test_a_warehouse_error_reaches_the_analyst_as_class_and_code_only(
    warehouse_world, postgres, key
):
    """PostgreSQL and Spark refuse x / 0 (DuckDB gives NaN, MariaDB NULL); the analyst
    learns that a holder's engine refused and its error code, never the engine's own
    message, which for other errors may quote a value."""
    # A second holder without the table masks the PostgreSQL holder's answer.
    fed = start_federation({"pg": {"t": postgres.url("diff_t")}, "peer": {}}, k=K)
    try:
        with pytest.raises(UnseenError) as caught:
            fed.client(key).query("SELECT SUM(qty / (year - year)) AS s FROM t")
    finally:
        fed.close()
    message = str(caught.value)
    assert "PostgreSQL refused the query (DivisionByZero, code 22012)" in message
    assert "division by zero" not in message
    spark_source = warehouse_world[0].holders["spark"].sources["t"]
    with pytest.raises(SourceError) as refused:
        spark_source.run("SELECT SUM(CAST(`qty` AS DOUBLE) / (`year` - `year`)) FROM `diff_t`")
    assert "DIVIDE_BY_ZERO" in str(refused.value)
    assert "try_divide" not in str(refused.value)


def test_the_command_line_serves_warehouse_tables_and_logs_no_secret(
    warehouse_world, postgres, mariadb, key, tmp_path, monkeypatch
):
    """``unseen node serve --table t=postgresql://...`` as an operator runs it: answers like
    DuckDB, and its log names the table's place without the password or its file."""
    _, reference = warehouse_world
    holders = {"pg": {"t": postgres.url("diff_t")}, "maria": {"t": mariadb.url("diff_t")}}
    sql = "SELECT COUNT(*) AS n, SUM(qty) AS s FROM t"
    monkeypatch.setenv("UNSEEN_LOG_LEVEL", "INFO")  # where each table is served from
    fed = LocalFederation(holders, tmp_path / "logs")  # type: ignore[arg-type]
    with fed, Client(fed.address, key=key) as client:
        result = client.query(sql)
    expected = reference.con.sql(
        'SELECT COUNT(*), SUM(qty) FROM (SELECT * FROM "t@pg" UNION ALL SELECT * FROM "t@maria")'
    ).fetchall()
    assert [tuple(result.rows[0])] == [tuple(int(v) for v in expected[0])]
    passwords = [
        postgres.passfile.read_text().strip().rsplit(":", 1)[1],
        mariadb.option_file.read_text().split("password=", 1)[1].strip(),
    ]
    for name, label in (("pg", "PostgreSQL postgresql://holder@127.0.0.1"), ("maria", "MySQL")):
        log = (tmp_path / "logs" / f"{name}.log").read_text()
        assert label in log and "?table=diff_t" in log
        assert not any(secret in log for secret in passwords)
        assert "pgpass" not in log and "holder.cnf" not in log
