"""Real warehouse servers for the tests: PostgreSQL and MariaDB from the machine's
packages, each started once per session in a private data directory on a free
loopback port, and one local Spark session.

On CI (``CI=true``) a missing server is a failure: ``.ci/run`` installs the
packages. On a developer machine without them the tests that need one skip,
saying which package to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

# pyspark's first import, done later from a fixture while server threads run, can fail
# with KeyError(<thread id>) in its import-time machinery (seen twice here). Import it
# once, now, at collection on the main thread; without pyspark the Spark tests skip.
with contextlib.suppress(ImportError):
    import pyspark.sql  # noqa: F401

Schema = Sequence[tuple[str, str]]  # (column, DuckDB type), as tests/shards.py

_READY_SECONDS = 60


def unavailable(what: str, install: str) -> None:
    """Skip on a developer machine, fail on CI, when a server cannot be had."""
    message = f"{what} is not available here ({install})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI must provide it (.ci/run installs it)", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _service_user(name: str) -> str | None:
    """The account a server runs as: ``name`` when we are root (servers refuse root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        unavailable(f"the {name} account", "install the package that creates it")
    return name


def _own(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _wait(check: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready: {log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- PostgreSQL --------------------------------------------------------------------------
@dataclass
class Postgres:
    """A running PostgreSQL: an admin connection and a read-only holder account."""

    port: int
    admin: str  # superuser, trusted on the private socket directory only
    socket_dir: Path
    passfile: Path  # the holder account's password, as libpq reads it

    def url(self, table: str) -> str:
        return (
            f"postgresql://holder@127.0.0.1:{self.port}/warehouse?table={table}"
            f"&passfile={self.passfile}"
        )

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.admin,
            dbname="warehouse",
            autocommit=True,
        )

    def load(self, schema: Schema, rows: Sequence[Sequence[Any]], table: str) -> None:
        with self.connect() as con:
            con.execute(_create(schema, table, "postgres"))
            with con.cursor() as cur:
                cur.executemany(_insert(schema, table, "postgres"), [list(r) for r in rows])
            con.execute(
                exp.Grant(
                    privileges=[exp.GrantPrivilege(this=exp.var("SELECT"))],
                    kind="TABLE",
                    securable=exp.table_(table, quoted=True),
                    principals=[exp.GrantPrincipal(this=exp.to_identifier("holder"))],
                ).sql("postgres")
            )


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in ([str(Path(found).resolve().parent)] if found else []) + candidates:
        if (Path(folder) / "postgres").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


@contextlib.contextmanager
def postgres_server(root: Path) -> Iterator[Postgres]:
    """Start PostgreSQL in ``root`` (initdb, then postgres on a free port)."""
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL", "apt-get install postgresql")
    user = _service_user("postgres")
    admin = user or pwd.getpwuid(os.getuid()).pw_name
    root.mkdir(parents=True, exist_ok=True)
    _own(root, user)
    data, sockets, log = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    _own(sockets, user)
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            admin,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=True,
        capture_output=True,
        user=user,
    )
    # Loopback clients must authenticate by password: the holder account uses one.
    with open(data / "pg_hba.conf", "w") as hba:
        hba.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    port = _free_port()
    with open(log, "wb") as out:
        _own(log, user)
        process = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
        )
    try:
        import psycopg

        def ready() -> bool:
            psycopg.connect(host=str(sockets), port=port, user=admin, dbname="postgres").close()
            return True

        _wait(ready, "PostgreSQL", process, log)
        password = secrets.token_urlsafe(16)
        with psycopg.connect(
            host=str(sockets), port=port, user=admin, dbname="postgres", autocommit=True
        ) as con:
            con.execute("CREATE DATABASE warehouse")
            con.execute(
                psycopg.sql.SQL("CREATE ROLE holder LOGIN PASSWORD {}").format(
                    psycopg.sql.Literal(password)
                )
            )
        passfile = root / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:warehouse:holder:{password}\n")
        passfile.chmod(0o600)
        yield Postgres(port, admin, sockets, passfile)
    finally:
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for the holders'
        # idle connections to close.
        _stop(process, signal.SIGINT)


# -- MariaDB -----------------------------------------------------------------------------
@dataclass
class MariaDB:
    """A running MariaDB: root on a private socket and a read-only holder account."""

    port: int
    socket_path: Path
    option_file: Path  # the holder account's password, in the client's own format

    def url(self, table: str) -> str:
        return (
            f"mysql://holder@127.0.0.1:{self.port}/warehouse?table={table}"
            f"&option_file={self.option_file}"
        )

    def connect(self) -> Any:
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", database="warehouse", autocommit=True
        )

    def load(self, schema: Schema, rows: Sequence[Sequence[Any]], table: str) -> None:
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(_create(schema, table, "mysql"))
                cur.executemany(_insert(schema, table, "mysql"), [list(r) for r in rows])
        finally:
            con.close()


@contextlib.contextmanager
def mariadb_server(root: Path) -> Iterator[MariaDB]:
    """Start MariaDB in ``root`` (mariadb-install-db, then mariadbd on a free port)."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    daemon = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/libexec")
    if install is None or daemon is None:
        unavailable("MariaDB", "apt-get install mariadb-server")
    user = _service_user("mysql")
    root.mkdir(parents=True, exist_ok=True)
    _own(root, user)
    data, sock, log = root / "data", root / "mariadb.sock", root / "mariadb.log"
    as_user = ["--user=" + user] if user else []
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *as_user,
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                daemon,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                f"--log-error={log}",
                f"--pid-file={root / 'mariadb.pid'}",
                *as_user,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        import pymysql

        def ready() -> bool:
            pymysql.connect(unix_socket=str(sock), user="root").close()
            return True

        _wait(ready, "MariaDB", process, log)
        password = secrets.token_urlsafe(16)
        con = pymysql.connect(unix_socket=str(sock), user="root", autocommit=True)
        try:
            with con.cursor() as cur:
                cur.execute("CREATE DATABASE warehouse")
                cur.execute("CREATE USER 'holder'@'127.0.0.1' IDENTIFIED BY %s", (password,))
                cur.execute(
                    "GRANT SELECT, CREATE TEMPORARY TABLES ON warehouse.* TO 'holder'@'127.0.0.1'"
                )
        finally:
            con.close()
        option_file = root / "holder.cnf"
        option_file.write_text(f"[client]\npassword={password}\n")
        option_file.chmod(0o600)
        yield MariaDB(port, sock, option_file)
    finally:
        _stop(process)


# -- Spark -------------------------------------------------------------------------------
@contextlib.contextmanager
def spark_session(root: Path) -> Iterator[Any]:
    """One local Spark session (one core) whose catalog tables live under ``root``."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        unavailable("Java for Spark", "apt-get install openjdk-17-jre-headless")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        unavailable("pyspark", "pip install -e '.[test]'")
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("unseen-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        # Tables of a few hundred rows: compiling code per query costs more than it saves.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.warehouse.dir", str(root / "spark-warehouse"))
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def load_spark(spark: Any, schema: Schema, rows: Sequence[Sequence[Any]], table: str) -> None:
    """Save ``rows`` as a catalog table of the Spark session."""
    ddl = ", ".join(
        f"{exp.to_identifier(n, quoted=True).sql('spark')} "
        f"{exp.DataType.build(t, dialect='duckdb').sql('spark')}"
        for n, t in schema
    )
    frame = spark.createDataFrame([tuple(r) for r in rows], ddl)
    frame.write.mode("overwrite").saveAsTable(table)


# -- DDL for the servers -----------------------------------------------------------------
def _create(schema: Schema, table: str, dialect: str) -> str:
    defs = []
    for name, kind in schema:
        built = exp.DataType.build(kind, dialect="duckdb")
        if dialect == "mysql" and kind == "VARCHAR":
            # MySQL needs a length; binary collation compares text as DuckDB does.
            built = exp.DataType.build("VARCHAR(255)")
        column = exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=built)
        if dialect == "mysql" and kind == "VARCHAR":
            column.append(
                "constraints",
                exp.ColumnConstraint(kind=exp.CollateColumnConstraint(this=exp.var("utf8mb4_bin"))),
            )
        defs.append(column)
    return exp.Create(
        this=exp.Schema(this=exp.table_(table, quoted=True), expressions=defs), kind="TABLE"
    ).sql(dialect)


def _insert(schema: Schema, table: str, dialect: str) -> str:
    return exp.insert(
        exp.values([tuple(exp.var("%s") for _ in schema)]),
        exp.table_(table, quoted=True),
        # pyformat drivers read every "%" of the text: a name's own "%" is doubled.
        columns=[exp.to_identifier(n.replace("%", "%%"), quoted=True) for n, _ in schema],
    ).sql(dialect)


# -- session fixtures (registered by tests/conftest.py) ----------------------------------
@contextlib.contextmanager
def _server_root(prefix: str) -> Iterator[Path]:
    """A folder the server's own account can reach (pytest's tmp folders are 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root / "server"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with _server_root("unseen-postgres-") as root, postgres_server(root) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    with _server_root("unseen-mariadb-") as root, mariadb_server(root) as server:
        yield server


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with spark_session(tmp_path_factory.mktemp("spark")) as session:
        yield session
