"""Attacker: the analyst. It sends queries whose literals are shaped like each warehouse
driver's parameter syntax (``%(p1)s``, ``%s``, ``:p1``, ``$1``) or break out of a string
(``'); DROP TABLE ...; --``), against a table whose column name holds a ``%``, served by
PostgreSQL (psycopg), MariaDB (PyMySQL) and Spark holders.

What it must learn: nothing beyond the answer to the question as written. Each literal is
a value compared with the data (the table holds rows whose region *is* that text, so the
counts must match DuckDB's exactly, not zero and not all), and the table is intact
afterwards. A driver that formatted a literal into the SQL text would answer differently,
fail, or lose the table.
"""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import start_federation
from tests.servers import load_spark
from tests.shards import Reference, load_duckdb

SCHEMA = [("region", "VARCHAR"), ("rate%", "DOUBLE"), ("n", "BIGINT")]
HOSTILE = ["%(p1)s", "%s", "%%", ":p1", "$1", "x'); DROP TABLE atk; --", "a\\'b", "plain"]
K = 5


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def attacked(postgres, mariadb, spark):
    rows = [(region, 0.5 * i, i) for i, region in enumerate(HOSTILE * 6)]
    postgres.load(SCHEMA, rows, "atk")
    mariadb.load(SCHEMA, rows, "atk")
    load_spark(spark, SCHEMA, rows, "atk")
    holders = {
        "pg": {"t": postgres.url("atk")},
        "maria": {"t": mariadb.url("atk")},
        "spark": {"t": "spark+local:///?table=atk"},
    }
    con = duckdb.connect()
    for name in holders:
        load_duckdb(con, SCHEMA, rows, f"t@{name}")
    load_duckdb(con, SCHEMA, rows * 3, "t")
    fed = start_federation(holders, k=K)
    yield fed, Reference(con, [f"t@{name}" for name in holders]), len(rows)
    fed.close()


@pytest.mark.parametrize("literal", HOSTILE)
def test_a_literal_shaped_like_a_parameter_is_only_a_value(attacked, key, literal):
    fed, reference, _ = attacked
    client = fed.client(key)
    sql = f'SELECT COUNT(*) AS n, SUM("rate%") AS r FROM t WHERE region = {_quote(literal)}'
    result, _, verdict = reference.check(client, sql, K)
    assert verdict.ok, verdict.problems[:3]
    assert result.rows[0][0] == 3 * 6  # exactly the rows holding that text, at each holder
    if "\\" not in literal:
        # LIKE's default escape is a backslash in PostgreSQL, MySQL and Spark, none in
        # DuckDB: patterns with one are a known difference (docs/operations.md).
        sql = f"SELECT COUNT(*) AS n FROM t WHERE region LIKE {_quote(literal)} OR n < 0"
        _, _, verdict = reference.check(client, sql, K)
        assert verdict.ok, verdict.problems[:3]


def test_the_tables_are_intact_after_the_attack(attacked, key, postgres, mariadb, spark):
    fed, reference, count = attacked
    client = fed.client(key)
    sql = 'SELECT region, COUNT(*) AS n, SUM("rate%") AS r FROM t GROUP BY region ORDER BY region'
    _, _, verdict = reference.check(client, sql, K)
    assert verdict.ok, verdict.problems[:3]
    with postgres.connect() as con:
        assert con.execute('SELECT COUNT(*) FROM "atk"').fetchone()[0] == count
    maria = mariadb.connect()
    try:
        with maria.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM `atk`")
            assert cur.fetchone()[0] == count
    finally:
        maria.close()
    assert spark.table("atk").count() == count
