"""The command line as a user runs it: separate processes, real ports, exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.conftest import unseen
from tests.shards import write_shards
from unseen.federation import LocalFederation

SCHEMA = [
    ("city", "VARCHAR"),
    ("month", "VARCHAR"),
    ("amount", "BIGINT"),
    ("rate", "DOUBLE"),
    ("borrower", "VARCHAR"),
]


def _rows(offset: int) -> list[tuple]:
    cities = ["Hangzhou", "Ningbo", "Wenzhou"]
    return [
        (
            cities[i % 3],
            f"2022-{i % 12 + 1:02d}",
            1000 * (i + offset),
            0.01 * (i % 17),
            f"b-{i + offset}",  # an identifier: one loan per borrower
        )
        for i in range(120)
    ]


@pytest.fixture(scope="module")
def cli_federation(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    holders, reference = write_shards(
        SCHEMA,
        {
            f"bank-{i}": (root / f"loans{i}{suffix}", _rows(i * 1000))
            for i, suffix in enumerate((".csv", ".parquet", ".sqlite"))
        },
        table="loans",
    )
    with LocalFederation(holders, root / "logs") as federation:
        yield federation, reference.con, root


def test_query_json_matches_duckdb(cli_federation, tmp_path):
    federation, reference, _ = cli_federation
    sql = (
        "SELECT city, COUNT(*), SUM(amount), AVG(rate), STDDEV_SAMP(rate) FROM loans "
        "WHERE month >= '2022-03' GROUP BY city ORDER BY city"
    )
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    done = unseen("query", "--coordinator", federation.address, "--format", "json", sql, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"columns", "rows", "meta"}
    assert out["columns"] == ["city", "COUNT(*)", "SUM(amount)", "AVG(rate)", "STDDEV_SAMP(rate)"]
    theirs = reference.sql(sql).fetchall()
    assert len(out["rows"]) == len(theirs)
    for ours, plain in zip(out["rows"], theirs, strict=True):
        assert ours[:3] == list(plain[:3])
        assert ours[3] == pytest.approx(plain[3], rel=1e-6)
        assert ours[4] == pytest.approx(plain[4], rel=1e-6)
    assert out["meta"]["suppressed"] == [] and len(out["meta"]["holders"]) == 3
    # No --key: a key was created on first use, private.
    secret = tmp_path / "cfg" / "unseen" / "keys" / "default" / "secret.tenseal"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_csv_and_table_formats(cli_federation):
    federation, _, _ = cli_federation
    sql = "SELECT city, COUNT(*) AS n FROM loans GROUP BY city ORDER BY city"
    done = unseen("query", "--coordinator", federation.address, "--format", "csv", sql)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["city,n", "Hangzhou,120", "Ningbo,120", "Wenzhou,120"]
    done = unseen("query", "--coordinator", federation.address, sql)
    assert done.returncode == 0 and "Hangzhou" in done.stdout and "n" in done.stdout


@pytest.mark.parametrize(
    "sql, needle",
    [
        ("SELECT MIN(amount) FROM loans", "MIN is not supported at line 1, column 8"),
        ("SELECT amount FROM loans", "a row-level SELECT is not supported"),
        ("SELECT COUNT(* FROM loans", "SQL does not parse"),
        ("SELECT SUM(nothing) FROM loans", "no column nothing"),
    ],
)
def test_refusals_print_one_line_and_exit_1(cli_federation, sql, needle):
    federation, _, _ = cli_federation
    done = unseen("query", "--coordinator", federation.address, sql)
    assert done.returncode == 1
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_unreachable_coordinator_exits_3_in_one_line(tmp_path):
    done = unseen(
        "query", "--coordinator", "127.0.0.1:9", "--timeout", "3", "SELECT COUNT(*) FROM t"
    )
    assert done.returncode == 3
    assert "unavailable" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2_in_one_line(tmp_path):
    for args in (
        ["query"],
        ["node", "serve", "--name", "x", "--listen", "nohost"],
        [
            "node",
            "serve",
            "--name",
            "x",
            "--listen",
            "127.0.0.1:0",
            "--table",
            f"t={tmp_path / 'missing.csv'}",
        ],
    ):
        done = unseen(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_bad_log_level_from_the_environment_is_a_usage_error(tmp_path):
    # argparse checks --log-level but not its default, taken from UNSEEN_LOG_LEVEL.
    env = dict(os.environ, UNSEEN_LOG_LEVEL="loud")
    done = unseen("keys", "new", "--out", tmp_path / "k", env=env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "UNSEEN_LOG_LEVEL" in done.stderr
    assert not (tmp_path / "k").exists()


def test_keys_new_writes_a_private_key(tmp_path):
    done = unseen("keys", "new", "--out", str(tmp_path / "k"))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "k" / "secret.tenseal").stat().st_mode) == 0o600
    again = unseen("keys", "new", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_catalog_command(cli_federation):
    federation, _, _ = cli_federation
    done = unseen("catalog", "--coordinator", federation.address, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert rows[0][:3] == ["loans", "city", "VARCHAR"]


def test_demo_runs_verified(tmp_path):
    done = unseen("demo", "--enterprises", "5000", "--workdir", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "demo finished: all answers agree with plaintext" in out
    # five aggregates (two of them the park job), three scoring runs (one after a withdrawal),
    # the jointly trained model's scores, the dp job
    assert out.count("  verified\n") == 10
    assert "AUC on the same applicants: jointly trained" in out
    assert "epsilon = 1 at delta = 1e-06" in out and "budget at hr: rho" in out
    assert "✗" not in out and "MISMATCH" not in out
    assert "without a voucher: refused (PERMISSION_DENIED)" in out
    assert "every one matches its holder's ledger" in out
    assert "AUC against the applicants' true outcomes: encrypted" in out
    # Issue 16: consents, a withdrawal refused at the next score, the flow audit.
    assert "no valid consent (1 withdrawn)" in out
    assert "cross-domain flows (from ledgers, registrations and consents alone)" in out
    assert "flows lacking consent: " in out and "(0 in the credit job;" in out


def test_servers_log_no_data_values(cli_federation):
    federation, _, root = cli_federation
    unseen(
        "query",
        "--coordinator",
        federation.address,
        "SELECT city, SUM(amount) FROM loans WHERE city = 'Ningbo' GROUP BY city",
    )
    logs = "".join(p.read_text() for p in Path(root / "logs").glob("*.log"))
    for value in ("Ningbo", "Hangzhou", "2022-03"):
        assert value not in logs


def test_score_command_prints_entities_in_order(cli_federation, tmp_path):
    federation, reference, _ = cli_federation
    model = {
        "entity": "borrower",
        "features": [
            {"table": "loans", "column": "amount", "weight": 1e-6, "aggregate": "sum"},
            {"table": "loans", "column": "rate", "weight": 2.0, "aggregate": "count"},
        ],
        "intercept": -1.0,
        "link": "identity",
    }
    (tmp_path / "m.json").write_text(json.dumps(model))
    (tmp_path / "e.txt").write_text("borrower\nb-1010\nb-7\nNowhere\n")
    args = ["score", "--coordinator", federation.address, "--model", str(tmp_path / "m.json")]
    done = unseen(*args, "--entities", str(tmp_path / "e.txt"), "--format", "json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["columns"] == ["borrower", "score"]
    assert [r[0] for r in out["rows"]] == ["b-1010", "b-7", "Nowhere"]
    sums = dict(
        reference.sql(
            "SELECT borrower, SUM(amount) * 1e-6 + 2 * COUNT(rate) - 1 FROM loans GROUP BY borrower"
        ).fetchall()
    )
    for borrower, score in out["rows"]:
        assert score == pytest.approx(sums.get(borrower, -1.0), abs=1e-6)
    # A dimension does not key entities: the per-city sum is a GROUP BY query.
    (tmp_path / "city.json").write_text(json.dumps(dict(model, entity="city")))
    (tmp_path / "c.txt").write_text("Wenzhou\n")
    city = ["score", "--coordinator", federation.address, "--model", str(tmp_path / "city.json")]
    refused = unseen(*city, "--entities", str(tmp_path / "c.txt"))
    assert refused.returncode != 0 and "GROUP BY city" in refused.stderr
    bad = unseen(
        "score",
        "--coordinator",
        federation.address,
        "--model",
        str(tmp_path / "e.txt"),
        "--entities",
        str(tmp_path / "e.txt"),
    )
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
