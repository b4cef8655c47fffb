"""The PostgreSQL scale bench (issue 14) at a CI size: the table is generated inside a real
PostgreSQL, served by a holder process, and the federated GROUP BY city equals the same SQL
run directly in PostgreSQL (counts exactly, sums and moments to CKKS precision)."""

from __future__ import annotations

from pathlib import Path

from tests.servers import Postgres
from unseen.bench.warehouse import CITIES, compare, postgres_figure, summary_line
from unseen.engine.crypto.keys import AnalystKey

ROWS = 10_000


def test_federated_group_by_on_a_generated_postgres_table_equals_direct_sql(
    postgres: Postgres, key: AnalystKey, tmp_path: Path
):
    figure = postgres_figure(
        postgres.connect,
        postgres.url("bench_electricity"),
        ROWS,
        tmp_path,
        key,
        repeats=1,
        table="bench_electricity",
    )
    assert figure["answers_equal"], figure
    assert figure["groups"] == CITIES
    assert figure["max_relative_error"] < 1e-6
    assert figure["federated_seconds"]["runs"] == 1 and figure["direct_seconds"]["runs"] == 1
    assert figure["holder_peak_rss_bytes"] > 0
    with postgres.connect() as con:
        # The rows were generated in the database: all of them, 21 cities in turn.
        count, cities = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT city) FROM bench_electricity"
        ).fetchone()
    assert (count, cities) == (ROWS, CITIES)
    assert "answers equal" in summary_line(figure)


def test_the_comparison_catches_a_wrong_count_or_group():
    direct = [("city_00", 10, 5.0), ("city_01", 10, 7.0)]
    assert compare(direct, direct) == 0
    assert compare([("city_00", 11, 5.0), ("city_01", 10, 7.0)], direct) == float("inf")
    assert compare([("city_00", 10, 5.0)], direct) == float("inf")
    assert compare([("city_00", 10, 5.0), ("city_01", 10, 7.7)], direct) > 0.09
