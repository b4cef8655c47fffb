"""The DB-API driver's layers without a federation: PEP 249 surface, error mapping,
parameter binding, type codes, the cursor over a stand-in client, the SQLAlchemy URL."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

import unseen
from unseen import dbapi
from unseen.dbapi.connection import Connection
from unseen.dbapi.errors import translate, translated
from unseen.dbapi.params import bind
from unseen.dbapi.types import column_type, decimal_scale
from unseen.engine.errors import (
    ConfigError,
    CryptoError,
    EncodingOverflowError,
    HolderError,
    PlanError,
    PolicyError,
    RemoteError,
    SourceError,
    SqlSyntaxError,
    UnseenError,
    UnsupportedError,
    VerificationError,
)
from unseen.engine.query.result import Result

ROOT = Path(__file__).resolve().parents[2]


# -- the PEP 249 surface ------------------------------------------------------------
def test_module_globals():
    assert dbapi.apilevel == "2.0"
    assert dbapi.threadsafety in (0, 1, 2, 3)
    assert dbapi.paramstyle == "qmark"
    assert unseen.connect is dbapi.connect


def test_exception_hierarchy_is_pep249s_under_the_one_root():
    assert issubclass(dbapi.Error, UnseenError) and issubclass(dbapi.Warning, UnseenError)
    assert not issubclass(dbapi.Warning, dbapi.Error)
    assert issubclass(dbapi.InterfaceError, dbapi.Error)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(dbapi, name), dbapi.DatabaseError), name


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SqlSyntaxError("bad"), dbapi.ProgrammingError),
        (PlanError("no table"), dbapi.ProgrammingError),
        (UnsupportedError("MAX"), dbapi.NotSupportedError),
        (PolicyError("k"), dbapi.ProgrammingError),
        (CryptoError("foreign"), dbapi.InternalError),
        (EncodingOverflowError("big"), dbapi.DataError),
        (SourceError("gone"), dbapi.OperationalError),
        (ConfigError("flags"), dbapi.InterfaceError),
        (VerificationError("differs"), dbapi.IntegrityError),
        (RemoteError("UNAVAILABLE", "down"), dbapi.OperationalError),
        (RemoteError("DEADLINE_EXCEEDED", "late"), dbapi.OperationalError),
        (RemoteError("PERMISSION_DENIED", "no voucher"), dbapi.ProgrammingError),
        (RemoteError("INVALID_ARGUMENT", "bad plan"), dbapi.ProgrammingError),
        (RemoteError("UNIMPLEMENTED", "no"), dbapi.NotSupportedError),
        (RemoteError("OUT_OF_RANGE", "big"), dbapi.DataError),
        (RemoteError("INTERNAL", "bug"), dbapi.InternalError),
        (HolderError("bank-a", "PERMISSION_DENIED", "quota"), dbapi.ProgrammingError),
        (HolderError("bank-a", "UNAVAILABLE", "down"), dbapi.OperationalError),
        (UnseenError("other"), dbapi.DatabaseError),
    ],
)
def test_engine_errors_translate_to_their_pep249_class(error, expected):
    with pytest.raises(expected) as caught, translated():
        raise error
    assert type(caught.value) is expected
    assert str(caught.value) == str(error)
    assert caught.value.__cause__ is error
    assert caught.value.grpc_code == error.grpc_code


def test_translation_leaves_bugs_and_driver_errors_alone():
    with pytest.raises(KeyError), translated():
        raise KeyError("a bug")
    already = dbapi.DataError("x")
    assert translate(already) is already


# -- parameter binding --------------------------------------------------------------
def _tree(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read="duckdb")


def test_positional_parameters_follow_the_text_not_the_tree():
    sql = (
        "SELECT city, COUNT(*) FROM t WHERE a > ? AND b IN (?, ?) "
        "GROUP BY city HAVING COUNT(*) > ? ORDER BY city LIMIT ? OFFSET ?"
    )
    bound = bind(sql, [1, "x", 2.5, 3, 4, 5])
    assert _tree(bound) == _tree(
        "SELECT city, COUNT(*) FROM t WHERE a > 1 AND b IN ('x', 2.5) "
        "GROUP BY city HAVING COUNT(*) > 3 ORDER BY city LIMIT 4 OFFSET 5"
    )


def test_named_parameters_bind_by_name_and_may_repeat():
    bound = bind("SELECT COUNT(*) FROM t WHERE a = :v OR b = :v AND c < :w", {"v": "q", "w": 2})
    assert _tree(bound) == _tree("SELECT COUNT(*) FROM t WHERE a = 'q' OR b = 'q' AND c < 2")


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (-7, "(-7)"),
        (10**40, str(10**40)),
        (0.1, "0.1"),
        (-1e-300, "(-1e-300)"),
        (Decimal("12.3400"), "12.3400"),
        (Decimal("-1E+3"), "(-1000)"),
        ("it's", "'it''s'"),
        (dt.date(2022, 3, 1), "CAST('2022-03-01' AS DATE)"),
        (dt.datetime(2022, 3, 1, 12, 30), "CAST('2022-03-01 12:30:00' AS TIMESTAMP)"),
    ],
)
def test_each_type_binds_as_its_literal(value, literal):
    bound = bind("SELECT COUNT(*) FROM t WHERE a = ?", [value])
    assert _tree(bound) == _tree(f"SELECT COUNT(*) FROM t WHERE a = {literal}")


def test_placeholders_inside_strings_and_comments_are_text():
    sql = "SELECT COUNT(*) FROM t WHERE a = '?' AND b = ? -- ?"
    assert "b = 5" in bind(sql, [5]) and "'?'" in bind(sql, [5])
    with pytest.raises(dbapi.ProgrammingError, match="1 \\? placeholder"):
        bind(sql, [5, 6])


def test_no_parameters_leaves_the_text_untouched():
    sql = "SELECT  COUNT(*) FROM t WHERE a = '?'"
    assert bind(sql, None) is sql


@pytest.mark.parametrize(
    ("sql", "params", "error", "needle"),
    [
        ("SELECT COUNT(*) FROM t WHERE a = ?", [], dbapi.ProgrammingError, "0 parameter"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", "x", dbapi.ProgrammingError, "sequence"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", 5, dbapi.ProgrammingError, "sequence"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", {"a": 1}, dbapi.ProgrammingError, "mapping"),
        ("SELECT COUNT(*) FROM t WHERE a = :a", [1], dbapi.ProgrammingError, "mapping"),
        ("SELECT COUNT(*) FROM t WHERE a = :a", {"b": 1}, dbapi.ProgrammingError, "a"),
        ("SELECT 1; SELECT 2", [], dbapi.ProgrammingError, "one SQL statement"),
        ("SELECT COUNT(*) FROM t WHERE a = (", [1], dbapi.ProgrammingError, "parse"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", [float("nan")], dbapi.DataError, "finite"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", [Decimal("inf")], dbapi.DataError, "finite"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", [b"raw"], dbapi.NotSupportedError, "bytes"),
        ("SELECT COUNT(*) FROM t WHERE a = ?", [[1, 2]], dbapi.NotSupportedError, "list"),
        (
            "SELECT COUNT(*) FROM t WHERE a = ?",
            [dt.datetime(2022, 1, 1, tzinfo=dt.UTC)],
            dbapi.NotSupportedError,
            "time zone",
        ),
    ],
)
def test_bad_parameters_are_refused(sql, params, error, needle):
    with pytest.raises(error, match=re.escape(needle)):
        bind(sql, params)


def test_a_refused_value_is_never_quoted():
    secret = b"4111-1111-1111-1111"
    with pytest.raises(dbapi.NotSupportedError) as refused:
        bind("SELECT COUNT(*) FROM t WHERE a = ?", [secret])
    assert "4111" not in str(refused.value)


# -- type codes ---------------------------------------------------------------------
def test_type_codes_come_from_the_values():
    assert column_type([1, None, 2]) == "INTEGER" == dbapi.NUMBER
    assert column_type([Decimal("1.5"), 2]) == "DECIMAL"
    assert column_type([1, 2.5, Decimal(1)]) == "FLOAT"
    assert column_type(["a", None]) == "VARCHAR" == dbapi.STRING
    assert column_type([dt.date(2022, 1, 1)]) == "DATE" == dbapi.DATETIME
    assert column_type([dt.datetime(2022, 1, 1)]) == "TIMESTAMP" == dbapi.DATETIME
    assert column_type([True]) == "BOOLEAN" != dbapi.NUMBER
    assert column_type([None, None]) is None
    assert decimal_scale([Decimal("1.25"), Decimal("3.1"), 7]) == 2
    assert dbapi.STRING != dbapi.NUMBER and dbapi.BINARY == "BLOB"


def test_constructors():
    assert dbapi.Date(2022, 3, 1) == dt.date(2022, 3, 1)
    assert dbapi.Timestamp(2022, 3, 1, 1, 2, 3) == dt.datetime(2022, 3, 1, 1, 2, 3)
    assert dbapi.Time(1, 2, 3) == dt.time(1, 2, 3)
    assert dbapi.Binary(b"x") == b"x"
    ticks = dt.datetime(2022, 3, 1, 1, 2, 3).timestamp()
    assert dbapi.TimestampFromTicks(ticks) == dt.datetime(2022, 3, 1, 1, 2, 3)
    assert dbapi.DateFromTicks(ticks) == dt.date(2022, 3, 1)
    assert dbapi.TimeFromTicks(ticks) == dt.time(1, 2, 3)


# -- the cursor over a stand-in client (one layer) ----------------------------------
class _StandIn:
    """Answers any query with a fixed result and remembers the SQL it was sent."""

    def __init__(self, result: Result):
        self.result = result
        self.sent: list[str] = []
        self.closed = False

    def query(self, sql: str) -> Result:
        self.sent.append(sql)
        return self.result

    def close(self) -> None:
        self.closed = True


def _connection(rows, columns=("g", "n"), meta=None):
    client = _StandIn(Result(list(columns), [list(r) for r in rows], meta or {"suppressed": []}))
    return Connection(client), client  # type: ignore[arg-type]


def test_cursor_pages_through_the_result():
    conn, client = _connection([("a", i) for i in range(5)])
    cursor = conn.cursor()
    cursor.arraysize = 2
    cursor.execute("SELECT g, COUNT(*) FROM t WHERE g <> ? GROUP BY g", ["z"])
    assert client.sent == ["SELECT g, COUNT(*) FROM t WHERE g <> 'z' GROUP BY g"]
    assert cursor.fetchmany() == [("a", 0), ("a", 1)]
    assert list(cursor) == [("a", 2), ("a", 3), ("a", 4)]
    assert cursor.fetchmany(3) == []
    conn.close()
    assert client.closed and conn.closed


def test_all_null_column_has_no_type_code():
    conn, _ = _connection([("a", None)], meta={"suppressed": [{"group": {"g": "a"}}]})
    cursor = conn.execute("SELECT g, SUM(x) FROM t GROUP BY g")
    assert [d[1] for d in cursor.description] == ["VARCHAR", None]
    assert cursor.meta["suppressed"] == [{"group": {"g": "a"}}]


def test_fetching_before_execute_is_an_interface_error():
    conn, _ = _connection([])
    with pytest.raises(dbapi.InterfaceError):
        conn.cursor().fetchall()


def test_exact_sums_beyond_int64_survive_arrow():
    big = 2**70
    conn, _ = _connection([("a", big), ("b", None)])
    table = conn.execute("SELECT g, SUM(x) FROM t GROUP BY g").arrow()
    assert table.column("n").to_pylist() == [Decimal(big), None]


@pytest.mark.parametrize(
    "args",
    [{"coordinator": "nohost"}, {"coordinator": "h:1", "tls": ("a", "b")}, {"coordinator": 5}],
)
def test_bad_connect_arguments_are_interface_errors(args):
    with pytest.raises(dbapi.InterfaceError):
        dbapi.connect(**args)


# -- cheap import --------------------------------------------------------------------
def test_import_unseen_loads_neither_grpc_nor_tenseal():
    code = (
        "import sys, unseen, unseen.dbapi, unseen.sqlalchemy; unseen.connect; "
        "print(sorted(m for m in ('grpc', 'tenseal', 'pandas', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the SQLAlchemy dialect's URL ----------------------------------------------------
def test_sqlalchemy_url_options_mirror_the_cli_flags():
    from sqlalchemy.engine import make_url

    from unseen.sqlalchemy import UnseenDialect

    url = make_url(
        "unseen://10.0.0.5:7000?key=/k&voucher=/a.v&voucher=/b.v"
        "&tls_cert=/c.crt&tls_key=/c.key&tls_ca=/ca.crt&timeout=2.5"
    )
    args, kwargs = UnseenDialect().create_connect_args(url)
    assert args == ["10.0.0.5:7000"]
    assert kwargs == {
        "key": "/k",
        "vouchers": ["/a.v", "/b.v"],
        "tls": ("/c.crt", "/c.key", "/ca.crt"),
        "timeout": 2.5,
    }
    with pytest.raises(ValueError, match="passwd"):
        UnseenDialect().create_connect_args(make_url("unseen://h:1?passwd=x"))
    with pytest.raises(ValueError, match="HOST:PORT"):
        UnseenDialect().create_connect_args(make_url("unseen://h"))


def test_the_dialect_entry_point_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."sqlalchemy.dialects"]', 1)[1]
    match = re.search(r'^unseen = "([\w.]+):(\w+)"$', section, re.MULTILINE)
    assert match, "pyproject.toml: no sqlalchemy.dialects entry point named unseen"
    module = __import__(match.group(1), fromlist=[match.group(2)])
    assert getattr(module, match.group(2)).name == "unseen"


@given(
    st.one_of(
        st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
        ),
        st.text(),
        st.booleans(),
        st.dates(),
    )
)
def test_a_bound_value_reads_back_unchanged_in_duckdb(value):
    # A real SQL engine reads the literal back: the value, not merely some value.
    (back,) = duckdb.sql(bind("SELECT ?", [value])).fetchall()[0]
    if isinstance(value, float):
        assert float(back) == value  # DuckDB reads 0.1 as DECIMAL: the same number
    elif isinstance(value, Decimal):
        assert back == value  # an integral decimal reads back as an integer
    else:
        assert back == value and type(back) is type(value)


def test_paths_expand_the_home_directory(tmp_path, monkeypatch):
    from unseen.engine.crypto.keys import AnalystKey

    key = AnalystKey.generate()
    key.save(tmp_path / "k")
    monkeypatch.setenv("HOME", str(tmp_path))
    with dbapi.connect("127.0.0.1:1", key="~/k") as conn:
        assert conn.client.key.key_id == key.key_id
    with pytest.raises(dbapi.InterfaceError, match="voucher file"):
        dbapi.connect("127.0.0.1:1", key="~/k", vouchers="~/none.voucher")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM ?",
        "SELECT COUNT(*) FROM t AS ?",
        "SELECT t.? FROM t",
        "SELECT city, COUNT(*) FROM t GROUP BY ?",
        "SELECT city, COUNT(*) FROM t GROUP BY city ORDER BY ?",
    ],
)
def test_a_parameter_never_names_a_table_column_or_position(sql):
    # FROM 'loans' would read a file in DuckDB; GROUP BY 1 would mean the first column.
    with pytest.raises(dbapi.ProgrammingError, match="stands for a value"):
        bind(sql, [1])


def test_values_in_expressions_stay_allowed():
    bound = bind("SELECT ? AS x, COUNT(*) FROM t WHERE ? = a ORDER BY COUNT(*) + ?", [1, 2, 3])
    assert _tree(bound) == _tree("SELECT 1 AS x, COUNT(*) FROM t WHERE 2 = a ORDER BY COUNT(*) + 3")


def test_a_placeholder_the_parser_dropped_cannot_shift_the_others(monkeypatch):
    # Should a parser ever lose a "?", the tokenizer's count disagrees and nothing is bound.
    from unseen.dbapi import params

    real = params._parse
    monkeypatch.setattr(params, "_parse", lambda sql: real(sql.replace("a = ? AND ", "", 1)))
    with pytest.raises(dbapi.ProgrammingError, match="placeholder"):
        bind("SELECT COUNT(*) FROM t WHERE a = ? AND b = ?", [1])


def test_a_placeholder_without_its_offset_is_refused(monkeypatch):
    from unseen.dbapi import params

    monkeypatch.setattr(
        params,
        "_parse",
        lambda sql: sqlglot.parse_one(sql, read="duckdb"),  # no offsets
    )
    with pytest.raises(dbapi.ProgrammingError, match="placeholder"):
        bind("SELECT COUNT(*) FROM t WHERE a = ?", [1])
