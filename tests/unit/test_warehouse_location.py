"""Warehouse URLs, parameter re-spelling and each engine's type names, without a server."""

from __future__ import annotations

import pytest

from unseen.engine.data.source import open_source
from unseen.engine.data.warehouses.location import is_url, parse_url
from unseen.engine.data.warehouses.paramstyle import parse, pyformat
from unseen.engine.errors import ConfigError
from unseen.engine.query.types import SqlType


def test_a_url_names_engine_host_database_and_table():
    url = parse_url(
        "postgresql://holder@db.example:5433/stats?table=loans_2024&sslmode=require", "loans"
    )
    assert (url.engine, url.user, url.host, url.port, url.database, url.table) == (
        "postgresql",
        "holder",
        "db.example",
        5433,
        "stats",
        "loans_2024",
    )
    assert dict(url.options) == {"sslmode": "require"}
    assert url.redacted() == "postgresql://holder@db.example:5433/stats?table=loans_2024"


def test_the_served_name_is_the_table_unless_given():
    assert parse_url("mysql://u@h/db", "loans").table == "loans"
    assert parse_url("mariadb://u@h/db", "loans").engine == "mysql"
    assert parse_url("spark+local:///?table=t&cores=2", "x").engine == "spark"


def test_paths_are_not_urls():
    assert is_url("postgresql://u@h/db")
    assert not is_url("data/loans.csv")
    assert not is_url("C:/data/loans.csv")


def test_a_password_in_the_url_is_refused_without_repeating_it():
    with pytest.raises(ConfigError) as caught:
        open_source("loans", "postgresql://holder:s3cr3t-pw@127.0.0.1:5432/db")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "PGPASSWORD" in str(caught.value)
    with pytest.raises(ConfigError, match="MYSQL_PWD") as caught:
        parse_url("mysql://holder:s3cr3t-pw@127.0.0.1/db", "loans")
    assert "s3cr3t-pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?host=evil.example",  # libpq options beyond the list are refused
        "mysql://u@h/db?init_command=DROP",
        "spark+local:///?master=yarn",
    ],
)
def test_unknown_options_are_refused(url):
    with pytest.raises(ConfigError, match="unknown option"):
        parse_url(url, "t")


def test_unknown_schemes_and_bad_ports_are_refused():
    with pytest.raises(ConfigError, match="unknown source scheme"):
        open_source("t", "oracle://u@h/db")
    with pytest.raises(ConfigError, match="invalid host or port"):
        parse_url("postgresql://u@h:99999/db", "t")


def test_pyformat_respells_placeholders_and_escapes_percent_in_names():
    sql = "SELECT CAST(:p1 AS BIGINT), `a%b`, x % 2 FROM `t` WHERE y LIKE CAST(:p2 AS CHAR)"
    text = pyformat(parse(sql, "mysql"), "mysql")
    assert "%(p1)s" in text and "%(p2)s" in text
    assert "`a%%b`" in text and "MOD(x, 2)" in text
    # The driver's formatting then restores the single % inside the name.
    assert (text % {"p1": "1", "p2": "'z'"}).count("`a%b`") == 1


def test_type_names_map_to_the_catalog_vocabulary():
    from unseen.engine.data.warehouses.mysql import from_mysql
    from unseen.engine.data.warehouses.postgres import from_postgres

    assert from_postgres("bigint", 64, 0) == SqlType("INTEGER")
    assert from_postgres("numeric", 12, 2) == SqlType("DECIMAL", 12, 2)
    assert from_postgres("numeric", None, None) == SqlType("FLOAT")
    assert from_postgres("character varying", None, None) == SqlType("VARCHAR")
    assert from_postgres("timestamp with time zone", None, None) == SqlType("OTHER")
    assert from_mysql("tinyint", 3, 0, "tinyint(1)") == SqlType("BOOLEAN")
    assert from_mysql("int", 10, 0, "int(11)") == SqlType("INTEGER")
    assert from_mysql("decimal", 10, 3, "decimal(10,3)") == SqlType("DECIMAL", 10, 3)
    assert from_mysql("datetime", None, None, "datetime") == SqlType("TIMESTAMP")


def test_spark_type_names_map_to_the_catalog_vocabulary():
    from unseen.engine.data.warehouses.spark import from_spark

    assert from_spark("bigint") == SqlType("INTEGER")
    assert from_spark("decimal(12,2)") == SqlType("DECIMAL", 12, 2)
    assert from_spark("string") == SqlType("VARCHAR")
    assert from_spark("timestamp_ntz") == SqlType("TIMESTAMP")
    assert from_spark("array<int>") == SqlType("OTHER")


def test_the_command_line_keeps_a_url_whole_and_a_path_as_a_path():
    from unseen.cli import _table_arg

    assert _table_arg("loans=postgresql://holder@db:5432/stats?table=l") == (
        "loans",
        "postgresql://holder@db:5432/stats?table=l",
    )
    name, location = _table_arg("loans=data/loans.csv")
    assert name == "loans" and str(location) == "data/loans.csv" and not isinstance(location, str)


def test_a_config_file_source_may_be_a_url(tmp_path):
    from unseen.engine.config import load_config

    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nname = "bank"\n\n[governance]\nrequire_vouchers = false\n\n[tables.loans]\n'
        'source = "mysql://holder@db:3306/stats?table=loans_2024"\n'
    )
    config = load_config(path)
    assert config.tables["loans"].source == "mysql://holder@db:3306/stats?table=loans_2024"
