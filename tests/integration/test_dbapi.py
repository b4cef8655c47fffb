"""The DB-API driver and the SQLAlchemy dialect over a real federation on loopback.

Two holders (CSV and Parquet, the README's sample files) and a coordinator,
each its own process. ``pandas.read_sql`` over a DB-API connection and over a
SQLAlchemy engine must return the same frame as ``unseen query --format
json``, and that answer must agree with DuckDB over the pooled plaintext rows
(the suppressed group aside, which must be the one below k at a holder).
"""

from __future__ import annotations

import json
import os
import warnings

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy
from sqlalchemy import inspect, text

import unseen
from tests.conftest import unseen as run_unseen
from unseen import dbapi
from unseen.federation import LocalFederation
from unseen.sample import write_sample

SQL = (
    "SELECT city, COUNT(*) AS loans, SUM(amount) AS amount, AVG(rate) AS rate "
    "FROM loans WHERE month >= '2022-03' GROUP BY city ORDER BY city"
)
PARAM_SQL = (
    "SELECT city, COUNT(*) AS loans, SUM(amount) AS amount, AVG(rate) AS rate "
    "FROM loans WHERE month >= ? GROUP BY city ORDER BY city"
)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbapi")
    csv_path, parquet_path = write_sample(root)
    keys = root / "key"
    done = run_unseen("keys", "new", "--out", keys)
    assert done.returncode == 0, done.stderr
    holders = {"bank-a": {"loans": csv_path}, "bank-b": {"loans": parquet_path}}
    reference = duckdb.connect()
    reference.execute(
        f"CREATE VIEW loans AS SELECT * FROM read_csv('{csv_path}') "
        f"UNION ALL SELECT * FROM read_parquet('{parquet_path}')"
    )
    with LocalFederation(holders, root / "logs") as fed:
        yield fed.address, keys, reference


@pytest.fixture(scope="module")
def cli_frame(federation):
    address, keys, _ = federation
    done = run_unseen("query", "--coordinator", address, "--key", keys, "--format", "json", SQL)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return pd.DataFrame(out["rows"], columns=out["columns"]), out["meta"]


@pytest.fixture(scope="module")
def conn(federation):
    address, keys, _ = federation
    connection = unseen.connect(address, key=keys)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def engine(federation):
    # CI installs the package, so the entry point names the dialect; a source tree on
    # PYTHONPATH over another install may lack it, hence the explicit registration.
    sqlalchemy.dialects.registry.register("unseen", "unseen.sqlalchemy", "UnseenDialect")
    address, keys, _ = federation
    eng = sqlalchemy.create_engine(f"unseen://{address}?key={keys}")
    yield eng
    eng.dispose()


def _read_sql_dbapi(sql, conn, **kwargs):
    # pandas warns for every DB-API connection that is not sqlite3's (psycopg's too).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "pandas only supports SQLAlchemy", UserWarning)
        return pd.read_sql(sql, conn, **kwargs)


def test_the_cli_answer_agrees_with_plaintext(federation, cli_frame):
    _, _, reference = federation
    frame, meta = cli_frame
    theirs = reference.sql(SQL).fetchall()
    assert [g["group"] for g in meta["suppressed"]] == [{"city": "Zhoushan"}]
    shown = frame[frame["city"] != "Zhoushan"].itertuples(index=False)
    plain = [row for row in theirs if row[0] != "Zhoushan"]
    assert len(plain) == 4
    for ours, row in zip(shown, plain, strict=True):
        assert (ours.city, ours.loans, ours.amount) == row[:3]
        assert ours.rate == pytest.approx(row[3], rel=1e-6)
    suppressed = frame[frame["city"] == "Zhoushan"]
    assert suppressed[["loans", "amount", "rate"]].isna().all(axis=None)


def test_read_sql_over_dbapi_is_the_cli_frame(conn, cli_frame):
    frame, _ = cli_frame
    pd.testing.assert_frame_equal(_read_sql_dbapi(SQL, conn), frame)


def test_read_sql_over_sqlalchemy_is_the_cli_frame(engine, cli_frame, federation):
    frame, _ = cli_frame
    pd.testing.assert_frame_equal(pd.read_sql(SQL, engine), frame)
    pd.testing.assert_frame_equal(pd.read_sql(text(SQL), engine), frame)
    address, keys, _ = federation
    pd.testing.assert_frame_equal(pd.read_sql(SQL, f"unseen://{address}?key={keys}"), frame)


def test_parameters_bind_over_dbapi_and_sqlalchemy(conn, engine, cli_frame):
    frame, _ = cli_frame
    pd.testing.assert_frame_equal(_read_sql_dbapi(PARAM_SQL, conn, params=["2022-03"]), frame)
    named = PARAM_SQL.replace("?", ":since")
    pd.testing.assert_frame_equal(
        pd.read_sql(text(named), engine, params={"since": "2022-03"}), frame
    )
    with engine.connect() as connection:
        rows = connection.execute(text(named), {"since": "2022-03"}).fetchall()
    assert [tuple(r) for r in rows] == conn.execute(SQL).fetchall()


def test_a_quoted_parameter_stays_a_value(conn, federation):
    _, _, reference = federation
    sql = "SELECT COUNT(*) AS n FROM loans WHERE city = ?"
    hostile = "Hangzhou' OR city <> '"
    (ours,) = conn.execute(sql, [hostile]).fetchall()
    (theirs,) = reference.execute(sql, [hostile]).fetchall()
    assert ours == theirs == (0,)
    (honest,) = conn.execute(sql, ["Hangzhou"]).fetchall()
    assert honest == reference.execute(sql, ["Hangzhou"]).fetchall()[0] and honest[0] > 0


def test_cursor_fetches_description_and_meta(conn, federation, cli_frame):
    frame, meta = cli_frame
    cursor = conn.cursor()
    assert cursor.description is None and cursor.rowcount == -1
    cursor.execute(SQL)
    assert cursor.rowcount == len(frame) == 5
    names = [d[0] for d in cursor.description]
    assert names == ["city", "loans", "amount", "rate"]
    codes = [d[1] for d in cursor.description]
    assert codes == [dbapi.STRING, dbapi.NUMBER, dbapi.NUMBER, dbapi.NUMBER]
    assert codes == ["VARCHAR", "INTEGER", "INTEGER", "FLOAT"]
    assert all(len(d) == 7 for d in cursor.description)
    first = cursor.fetchone()
    assert first == tuple(frame.iloc[0])
    assert len(cursor.fetchmany(2)) == 2
    assert len(cursor.fetchall()) == 2
    assert cursor.fetchone() is None and cursor.fetchall() == []
    assert cursor.meta["suppressed"] == meta["suppressed"]
    assert sorted(cursor.meta["holders"]) == ["bank-a", "bank-b"]
    assert len(cursor.meta["receipts"]) == len(meta["receipts"])
    cursor.close()
    with pytest.raises(dbapi.InterfaceError):
        cursor.fetchall()


def test_df_and_arrow_carry_meta(conn, cli_frame):
    frame, meta = cli_frame
    df = conn.execute(SQL).df()
    pd.testing.assert_frame_equal(df, frame)
    assert df.attrs["unseen"]["suppressed"] == meta["suppressed"]
    table = conn.execute(SQL).fetch_arrow_table()
    assert table.column_names == ["city", "loans", "amount", "rate"]
    assert table.schema.field("loans").type == pa.int64()
    assert table.column("city").to_pylist() == frame["city"].tolist()
    assert table.column("loans").null_count == 1  # the suppressed group
    attached = json.loads(table.schema.metadata[b"unseen"])
    assert attached["suppressed"] == meta["suppressed"]


def test_refusals_are_pep249_errors_under_the_one_root(conn):
    cursor = conn.cursor()
    with pytest.raises(dbapi.NotSupportedError) as refused:
        cursor.execute("SELECT MAX(amount) FROM loans")
    assert isinstance(refused.value, unseen.dbapi.DatabaseError)
    from unseen.engine.errors import UnseenError, UnsupportedError

    assert isinstance(refused.value, UnseenError)
    assert isinstance(refused.value.__cause__, UnsupportedError)
    with pytest.raises(dbapi.ProgrammingError):
        cursor.execute("SELECT COUNT(*) FROM no_such_table")
    with pytest.raises(dbapi.ProgrammingError):
        cursor.execute("SELEC COUNT(*) FROM loans")
    with pytest.raises(dbapi.NotSupportedError):
        cursor.executemany("SELECT COUNT(*) FROM loans WHERE city = ?", [["a"], ["b"]])
    with pytest.raises(dbapi.ProgrammingError):
        cursor.execute("SELECT COUNT(*) FROM loans WHERE city = ?", ["a", "b"])


def test_an_unreachable_coordinator_is_an_operational_error(tmp_path, federation):
    _, keys, _ = federation
    with (
        unseen.connect("127.0.0.1:9", key=keys, timeout=5) as lost,
        pytest.raises(dbapi.OperationalError),
    ):
        lost.execute("SELECT COUNT(*) FROM loans")
    with pytest.raises(dbapi.InterfaceError):
        unseen.connect("127.0.0.1:9", key=tmp_path / "no-key")


def test_a_closed_connection_refuses_work(federation):
    address, keys, _ = federation
    connection = unseen.connect(address, key=keys)
    cursor = connection.cursor()
    connection.commit()
    connection.rollback()
    connection.close()
    connection.close()  # idempotent
    for attempt in (connection.cursor, lambda: cursor.execute(SQL), connection.commit):
        with pytest.raises(dbapi.InterfaceError):
            attempt()


def test_sqlalchemy_reflects_the_catalog(engine):
    inspector = inspect(engine)
    assert inspector.get_table_names() == ["loans"]
    assert inspector.has_table("loans") and not inspector.has_table("nope")
    columns = {c["name"]: c for c in inspector.get_columns("loans")}
    assert list(columns) == ["city", "month", "amount", "rate"]
    assert isinstance(columns["city"]["type"], sqlalchemy.String)
    assert isinstance(columns["amount"]["type"], sqlalchemy.BigInteger)
    assert isinstance(columns["rate"]["type"], sqlalchemy.Float)
    assert (
        "group" in columns["city"]["comment"] and "domain: 5 values" in columns["city"]["comment"]
    )
    assert "group" not in columns["rate"]["comment"]
    assert inspector.get_pk_constraint("loans")["constrained_columns"] == []
    with pytest.raises(sqlalchemy.exc.NoSuchTableError):
        inspector.get_columns("nope")


def test_sqlalchemy_text_query_and_errors(engine, conn, cli_frame):
    frame, _ = cli_frame
    with engine.connect() as connection:
        result = connection.execute(text(SQL))
        assert list(result.keys()) == list(frame.columns)
        assert [tuple(r) for r in result] == conn.execute(SQL).fetchall()
        with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
            connection.execute(text("SELECT MAX(amount) FROM loans"))
        assert isinstance(refused.value.orig, dbapi.NotSupportedError)
    assert engine.dialect.do_ping(engine.raw_connection().dbapi_connection)


def test_the_environment_is_not_needed(federation, monkeypatch, tmp_path):
    # No key= uses the default key under $XDG_CONFIG_HOME, created on first use (mode 0600).
    address, _, _ = federation
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with unseen.connect(address) as connection:
        (row,) = connection.execute("SELECT COUNT(*) FROM loans").fetchall()
    secret = tmp_path / "unseen" / "keys" / "default" / "secret.tenseal"
    assert row[0] == 703 and oct(os.stat(secret).st_mode & 0o777) == "0o600"


def test_sqlalchemy_core_over_a_reflected_table(engine, federation):
    """What a BI tool does: reflect the table, then build a grouped SELECT with Core."""
    _, _, reference = federation
    loans = sqlalchemy.Table("loans", sqlalchemy.MetaData(), autoload_with=engine)
    query = (
        sqlalchemy.select(loans.c.city, sqlalchemy.func.sum(loans.c.amount).label("amount"))
        .where(loans.c.month >= "2022-03", loans.c.city.in_(["Ningbo", "Hangzhou"]))
        .group_by(loans.c.city)
        .order_by(loans.c.city)
    )
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(query)]
    plain = reference.sql(
        "SELECT city, SUM(amount) FROM loans WHERE month >= '2022-03' "
        "AND city IN ('Ningbo', 'Hangzhou') GROUP BY city ORDER BY city"
    ).fetchall()
    assert rows == plain and len(rows) == 2
