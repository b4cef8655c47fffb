"""How the warehouse dialects spell DuckDB's calendar functions and casts.

The integration matrix (tests/integration/test_warehouses.py) proves each
spelling on the real engines; these pin the text each engine receives, so a
regression names the construct and dialect without starting a server.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlglot import exp

from unseen.engine.data.spellings import cast_to_integer, date_trunc, extract
from unseen.engine.data.warehouses.paramstyle import parse, pyformat
from unseen.engine.query.types import SqlType, normalize_value

DAY = exp.column("day", quoted=True)


def _text(node: exp.Expression, dialect: str) -> str:
    """The text a holder sends: for pyformat drivers after re-spelling placeholders."""
    sql = exp.select(node).from_("t").sql(dialect)
    return (
        parse(sql, dialect).sql(dialect)
        if dialect == "spark"
        else pyformat(parse(sql, dialect), dialect)
    )


@pytest.mark.parametrize("unit", ["year", "quarter", "month", "day"])
def test_mysql_date_trunc_needs_no_format_string(unit):
    """sqlglot's own MySQL date_trunc is STR_TO_DATE('%Y ...'): PyMySQL reads "%Y" as a
    placeholder and raises ValueError (the internal error this module fixes)."""
    text = _text(date_trunc(unit, DAY.copy(), "mysql"), "mysql")
    assert "%" not in text and "STR_TO_DATE" not in text
    assert text.startswith("SELECT CAST(") and "AS DATETIME" in text


@pytest.mark.parametrize("dialect", ["postgres", "spark"])
def test_date_trunc_truncates_a_timestamp_without_time_zone(dialect):
    # PostgreSQL truncates a bare DATE as timestamptz, a zoned value at the driver.
    text = _text(date_trunc("quarter", DAY.copy(), dialect), dialect)
    assert "DATE_TRUNC('QUARTER', CAST(" in text and "AS TIMESTAMP)" in text


@pytest.mark.parametrize("dialect", ["mysql", "spark"])
def test_dow_counts_from_zero_on_sunday(dialect):
    text = _text(extract("dow", DAY.copy(), dialect), dialect)
    assert "DAYOFWEEK(`day`) - 1" in text


def test_postgres_extract_is_an_integer_not_numeric():
    assert _text(extract("year", DAY.copy(), "postgres"), "postgres") == (
        'SELECT CAST((EXTRACT(YEAR FROM "day")) AS BIGINT) FROM t'
    )


def test_spark_rounds_a_decimal_before_casting_to_integer():
    assert "CAST(ROUND(`day`) AS BIGINT)" in _text(
        cast_to_integer(DAY.copy(), "spark", "DECIMAL"), "spark"
    )
    assert "ROUND" not in _text(cast_to_integer(DAY.copy(), "spark", "INTEGER"), "spark")
    boolean = _text(cast_to_integer(DAY.copy(), "postgres", "BOOLEAN"), "postgres")
    assert boolean == 'SELECT CASE WHEN "day" THEN 1 WHEN NOT "day" THEN 0 END FROM t'


def test_pyformat_doubles_percent_in_string_literals():
    tree = parse("SELECT DATE_FORMAT(d, '%Y') FROM t WHERE x = :p1", "mysql")
    text = pyformat(tree, "mysql")
    assert "'%%Y'" in text and "%(p1)s" in text
    assert text % {"p1": "'v'"} == "SELECT DATE_FORMAT(d, '%Y') FROM t WHERE x = 'v'"


def test_zoned_and_date_valued_engine_keys_normalise_to_the_catalog_type():
    zoned = dt.datetime(2021, 4, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert normalize_value(zoned, SqlType("TIMESTAMP")) == dt.datetime(2021, 4, 1)
    assert normalize_value(dt.datetime(2021, 4, 1), SqlType("DATE")) == dt.date(2021, 4, 1)


class _Cursor:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, text, params):
        return text % params  # PyMySQL's binding: a stray "%" raises here

    def fetchall(self):
        return []


class _Connection:
    closed = False

    def cursor(self):
        return _Cursor()

    def close(self):
        self.closed = True


def test_a_driver_that_cannot_bind_is_a_refusal_not_an_internal_error(monkeypatch):
    from unseen.engine.data.warehouses.location import parse_url
    from unseen.engine.data.warehouses.server import ServerSource
    from unseen.engine.errors import SourceError

    class Fake(ServerSource):
        label = "Fake"
        dialect = "mysql"
        driver_errors = (OSError,)

        def connect(self, streaming=False):
            return _Connection()

        def columns(self):
            return []

        def table_names(self):
            return ["t"]

        def open_stream(self, connection, sql, params, req):
            raise NotImplementedError

    source = Fake("t", parse_url("mysql://holder@127.0.0.1/db?table=t", "t"))
    monkeypatch.setattr(source, "prepare", lambda sql: "SELECT '%Y' FROM t WHERE v = 'secret'")
    with pytest.raises(SourceError) as refused:
        source.run("SELECT 1")
    message = str(refused.value)
    assert "Fake refused the query while binding its parameters (ValueError)" in message
    assert "secret" not in message and "%Y" not in message
