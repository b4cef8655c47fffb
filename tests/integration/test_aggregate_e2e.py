"""End-to-end aggregate queries: real gRPC on loopback, real TenSEAL, real DuckDB/SQLite.

Every encrypted answer is checked against DuckDB answering the same SQL over
the pooled rows.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from tests.conftest import start_federation
from tests.shards import Reference, write_shard, write_shards
from unseen.engine.errors import PlanError, PolicyError, RemoteError, UnsupportedError
from unseen.engine.query.expr import Column
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure, SlotCodec

LOANS = [("city", "VARCHAR"), ("month", "VARCHAR"), ("amount", "BIGINT"), ("rate", "DOUBLE")]
CITIES = ["Hangzhou", "Ningbo", "Wenzhou", "Shaoxing", "Jiaxing", "Huzhou"]


def _loans(seed: int, n: int) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rate = None if rng.random() < 0.05 else round(rng.uniform(0.02, 0.2), 6)
        rows.append(
            (
                rng.choice(CITIES),
                f"2022-{rng.randint(1, 12):02d}",
                rng.randint(1_000, 10_000_000),
                rate,
            )
        )
    return rows


def check(fed, key, reference: Reference, sql: str, k: int = 5):
    """Run ``sql`` encrypted and in plaintext; assert they agree, suppression included."""
    result, theirs, verdict = reference.check(fed.client(key), sql, k)
    assert verdict.ok, verdict.problems
    return result, theirs


@pytest.fixture(scope="module")
def loans_federation(tmp_path_factory: pytest.TempPathFactory):
    """Three holders serving CSV shards of one loans table, and the pooled reference."""
    tmp_path = tmp_path_factory.mktemp("loans")
    holders, reference = write_shards(
        LOANS,
        {f"bank-{h}": (tmp_path / f"loans{h}.csv", _loans(h, 700 + 150 * h)) for h in range(3)},
        table="loans",
    )
    fed = start_federation(holders)
    yield fed, reference
    fed.close()


def test_done_when_query_matches_duckdb_over_pooled_csvs(loans_federation, key):
    fed, reference = loans_federation
    sql = (
        "SELECT city, COUNT(*), SUM(amount), AVG(rate), STDDEV_SAMP(rate) FROM loans "
        "WHERE month >= '2022-03' GROUP BY city ORDER BY city"
    )
    result, theirs = check(fed, key, reference, sql)
    assert [r[0] for r in result.rows] == sorted(CITIES)
    # COUNT and integer SUM are exact, not merely close.
    for ours, plain in zip(result.rows, theirs, strict=True):
        assert ours[1] == plain[1] and isinstance(ours[1], int)
        assert ours[2] == plain[2] and isinstance(ours[2], int)
    assert result.meta["holders"] == ["bank-0", "bank-1", "bank-2"]
    assert result.meta["ciphertexts"] == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*), SUM(amount), AVG(amount), VAR_SAMP(amount), VAR_POP(rate) FROM loans",
        "SELECT city, month, COUNT(*), SUM(amount) / COUNT(*) AS mean FROM loans "
        "WHERE city IN ('Ningbo', 'Wenzhou') GROUP BY city, month ORDER BY city, month",
        "SELECT city, COUNT(rate), STDDEV_POP(rate), VARIANCE(rate), STDDEV(rate) FROM loans "
        "WHERE rate BETWEEN 0.05 AND 0.15 OR amount < 2000000 GROUP BY city ORDER BY 2 DESC, city",
        "SELECT city AS c, SUM(amount) AS total FROM loans WHERE city LIKE '%zhou' "
        "AND NOT month IN ('2022-01', '2022-02') GROUP BY c HAVING SUM(amount) > 1000 "
        "ORDER BY total",
        "SELECT month, ROUND(AVG(rate) * 100, 3) AS pct, ABS(-COUNT(*)) FROM loans "
        "WHERE rate IS NOT NULL GROUP BY 1 ORDER BY month LIMIT 4 OFFSET 2",
        "SELECT city, COUNT(*) FROM loans WHERE amount * 2 > 9000000 AND city ILIKE 'h%' "
        "GROUP BY ALL ORDER BY city",
    ],
)
def test_query_shapes_match_duckdb(loans_federation, key, sql):
    fed, reference = loans_federation
    check(fed, key, reference, sql)


def test_global_aggregate_of_no_rows_follows_sql_null_rules(loans_federation, key):
    fed, reference = loans_federation
    sql = (
        "SELECT COUNT(*), COUNT(rate), SUM(amount), AVG(rate), VAR_SAMP(rate) FROM loans "
        "WHERE amount < 0"
    )
    result, _theirs = check(fed, key, reference, sql)
    assert result.rows == [[0, 0, None, None, None]]


def test_groups_present_at_no_holder_do_not_appear(loans_federation, key):
    fed, reference = loans_federation
    sql = (
        "SELECT city, COUNT(*) FROM loans WHERE city IN ('Ningbo', 'Atlantis') "
        "GROUP BY city ORDER BY city"
    )
    result, _ = check(fed, key, reference, sql)
    assert [r[0] for r in result.rows] == ["Ningbo"]


def test_small_group_at_one_holder_is_suppressed_everywhere(tmp_path, federation_factory, key):
    big = [("A", "2022-01", 10, 0.1)] * 20 + [("B", "2022-01", 5, 0.2)] * 20
    small = [("A", "2022-01", 7, 0.3)] * 30 + [("B", "2022-01", 1_000_000, 0.9)] * 2
    holders, reference = write_shards(
        LOANS,
        {"big": (tmp_path / "big.parquet", big), "small": (tmp_path / "small.parquet", small)},
        table="loans",
    )
    fed = federation_factory(holders)
    sql = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city ORDER BY city"
    result, _ = check(fed, key, reference, sql)
    assert result.rows == [["A", 50, 410], ["B", None, None]]
    assert result.meta["suppressed"] == [{"group": {"city": "B"}, "reason": "k"}]


def test_integer_sums_are_exact_beyond_float_precision(tmp_path, federation_factory, key):
    schema = [("g", "VARCHAR"), ("v", "BIGINT")]
    # Values spread over several magnitudes, so no row (nor offset) dominates
    # (unseen.engine.privacy.suppression).
    rows = [
        ("x", 2**53 + 1),
        ("x", 2**61 + 3),
        ("x", -(2**52) + 7),
        ("x", 2**62 - 1),
        ("x", 2**60 + 5),
    ]
    holders = {
        f"h{i}": {"t": write_shard(tmp_path / f"h{i}.duckdb", schema, rows)} for i in range(3)
    }
    fed = federation_factory(holders)
    result = fed.client(key).query("SELECT SUM(v), COUNT(*), AVG(v) FROM t")
    total = 3 * sum(v for _, v in rows)
    assert result.rows[0][0] == total  # > 2^63: exact through limbs, no float rounding
    assert result.rows[0][1] == 15
    assert result.rows[0][2] == pytest.approx(total / 15, rel=1e-12)


def test_variance_survives_a_huge_mean(tmp_path, federation_factory, key):
    # Mean 1e9, spread 1e-3: naive sum-of-squares would cancel catastrophically.
    rng = random.Random(3)
    holders, reference = write_shards(
        [("v", "DOUBLE")],
        {
            f"h{i}": (
                tmp_path / f"h{i}.parquet",
                [(1e9 + rng.gauss(0, 1e-3) + i * 1e-3,) for _ in range(200)],
            )
            for i in range(3)
        },
    )
    fed = federation_factory(holders)
    ours = fed.client(key).query("SELECT VAR_SAMP(v), STDDEV_POP(v) FROM t").rows[0]
    theirs = reference.con.sql("SELECT VAR_SAMP(v), STDDEV_POP(v) FROM t").fetchall()[0]
    assert ours[0] == pytest.approx(theirs[0], rel=1e-4)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-4)


def test_every_source_format_serves_one_table(tmp_path, federation_factory, key):
    schema = [
        ("city", "VARCHAR"),
        ("day", "DATE"),
        ("flag", "BOOLEAN"),
        ("n", "BIGINT"),
        ("price", "DECIMAL(12,2)"),
        ("x", "DOUBLE"),
    ]
    rng = random.Random(9)

    def rows() -> list[tuple]:
        return [
            (
                rng.choice(["a", "b", "c"]),
                dt.date(2021, 1, 1) + dt.timedelta(rng.randint(0, 60)),
                rng.random() < 0.5,
                rng.randint(-50, 50),
                Decimal(rng.randint(0, 100_000)) / 100,
                rng.uniform(-5, 5),
            )
            for _ in range(60)
        ]

    suffixes = (".csv", ".parquet", ".duckdb", ".sqlite")
    holders, reference = write_shards(
        schema, {f"src{s.replace('.', '-')}": (tmp_path / f"t{s}", rows()) for s in suffixes}
    )
    fed = federation_factory(holders)
    for sql in (
        "SELECT city, COUNT(*), SUM(n), AVG(x), SUM(price) FROM t WHERE day >= '2021-01-20' "
        "GROUP BY city ORDER BY city",
        "SELECT flag, COUNT(*), VAR_POP(n) FROM t WHERE day < DATE '2021-02-15' AND flag "
        "IS NOT NULL GROUP BY flag ORDER BY flag",
        "SELECT COUNT(*), SUM(price), STDDEV_SAMP(price) FROM t WHERE city <> 'b'",
    ):
        check(fed, key, reference, sql)


@pytest.mark.parametrize(
    "sql, construct",
    [
        ("SELECT MIN(amount) FROM loans", "MIN"),
        ("SELECT city, MAX(rate) FROM loans GROUP BY city", "MAX"),
        ("SELECT MEDIAN(amount) FROM loans", "MEDIAN"),
        ("SELECT COUNT(DISTINCT city) FROM loans", "COUNT(DISTINCT"),
        ("SELECT * FROM loans", "row-level SELECT"),
        ("SELECT amount FROM loans", "row-level SELECT"),
        ("SELECT city, amount FROM loans GROUP BY city", "column amount outside an aggregate"),
        ("SELECT COUNT(*) FROM loans a JOIN loans b ON a.city = b.city", "JOIN"),
        ("SELECT COUNT(*) FROM (SELECT * FROM loans) s", "subquery"),
        ("SELECT COUNT(*) FROM loans WHERE amount > (SELECT 1)", "subquery"),
        ("SELECT SUM(amount) OVER () FROM loans", "window function"),
        ("WITH x AS (SELECT 1) SELECT COUNT(*) FROM loans", "WITH"),
        ("SELECT COUNT(*) FROM loans UNION SELECT COUNT(*) FROM loans", "UNION"),
        ("DELETE FROM loans", "DELETE"),
        ("SELECT COUNT(*) FROM loans WHERE amount + INTERVAL '1' DAY > 1", "INTERVAL arithmetic"),
        ("SELECT COUNT(*) FROM loans WHERE SUM(amount) > 1", "aggregate"),
        ("SELECT SUM(SUM(amount)) FROM loans", "aggregate"),
        ("SELECT COUNT(*) FROM loans WHERE UPPER(city) = 'X'", "function UPPER"),
    ],
)
def test_unsupported_sql_is_refused_with_its_position(loans_federation, key, sql, construct):
    fed, _ = loans_federation
    with pytest.raises(UnsupportedError) as info:
        fed.client(key).query(sql)
    message = str(info.value)
    assert construct.lower() in message.lower()
    assert "line 1, column" in message


def test_plan_errors_name_the_problem(loans_federation, key):
    fed, _ = loans_federation
    client = fed.client(key)
    with pytest.raises(PlanError, match="no holder serves a table nowhere"):
        client.query("SELECT COUNT(*) FROM nowhere")
    with pytest.raises(PlanError, match="no column salary"):
        client.query("SELECT SUM(salary) FROM loans")
    with pytest.raises(PlanError, match="SUM needs a number"):
        client.query("SELECT SUM(city) FROM loans")
    with pytest.raises(PolicyError, match="may not be used to group"):
        client.query("SELECT rate, COUNT(*) FROM loans GROUP BY rate")


def test_holder_refuses_a_plan_the_coordinator_would_not_send(loans_federation, key):
    # A hand-made plan that bypasses the client's checks still meets the holder's.
    fed, _ = loans_federation
    client = fed.client(key)
    plan = AggregatePlan(
        "loans",
        None,
        (GroupColumn("rate", (0.1,)),),
        (Measure(Column("amount"), Encoding.INTEGER),),
        SlotCodec(),
    )
    with pytest.raises(RemoteError) as info:
        client.aggregate(plan)
    assert info.value.code == "PERMISSION_DENIED"
    assert "may not be used to group" in info.value.reason


def test_aggregates_encrypted_in_worker_processes(tmp_path, federation_factory, key):
    """With --workers, a holder encrypts in spawned processes; answers are the same."""
    holders, reference = write_shards(
        LOANS, {"w": (tmp_path / "l.parquet", _loans(7, 500))}, table="loans"
    )
    # A second holder serving another table masks w's answer (no holder answers alone).
    holders["x"] = {"other": holders["w"]["loans"]}
    fed = federation_factory(holders, workers=1)
    sql = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city ORDER BY city"
    assert fed.client(key).query(sql).rows == [list(r) for r in reference.con.sql(sql).fetchall()]
    assert fed.holders["w"].pool._executor is not None  # the workers did the encryption
