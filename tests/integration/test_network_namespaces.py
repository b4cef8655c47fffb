"""Separate hosts (issue 14): holders, the coordinator and the analyst each in their own Linux
network namespace, joined by veth pairs on a bridge that lives in a namespace of its own, with
mutual TLS on every channel; queries across them equal DuckDB over the pooled rows, and
plaintext is refused off loopback (to start a server, to connect a client, to reach a server).

Everything network-wise is inside this test's namespaces (unique names per run, private
addresses, nothing added to the host's own namespace), and removed in the fixture's teardown
even when a test fails. Every process is ``ip netns exec NS python -m unseen ...``. Needs root
and ``ip`` (iproute2): skipped on a developer machine without them, failed on CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from tests.servers import unavailable
from tests.shards import load_duckdb, write_shard

SUBNET = "10.213.7"  # a /24 that exists only inside this test's namespaces
ADDRESSES = {"coord": 10, "h1": 11, "h2": 12, "h3": 13, "analyst": 20}
HOLDERS = ("h1", "h2", "h3")
SCHEMA = [("city", "VARCHAR"), ("industry", "VARCHAR"), ("kwh", "DOUBLE")]
CITIES = ("Hangzhou", "Ningbo", "Wenzhou", "Jiaxing")
INDUSTRIES = ("chemicals", "textiles")
QUERIES = (
    "SELECT city, COUNT(*) AS reports, SUM(kwh) AS total_kwh, AVG(kwh) AS mean_kwh, "
    "STDDEV_SAMP(kwh) AS sd_kwh FROM electricity GROUP BY city ORDER BY city",
    "SELECT city, industry, COUNT(*) AS reports, SUM(kwh) AS total_kwh FROM electricity "
    "WHERE kwh > 200 GROUP BY city, industry ORDER BY city, industry",
    "SELECT COUNT(*) AS reports, SUM(kwh) AS total_kwh FROM electricity "
    "WHERE industry = 'textiles'",
)
STARTUP_S = 120.0
CALL_S = 180.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _address(host: str) -> str:
    return f"{SUBNET}.{ADDRESSES[host]}"


@dataclass
class Network:
    """The namespaces of one run: a switch (bridge) and one namespace per host."""

    prefix: str
    made: list[str] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def build(self, hosts: Sequence[str]) -> None:
        switch = self.ns("sw")
        _ip("netns", "add", switch)
        self.made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for host in hosts:
            ns = self.ns(host)
            _ip("netns", "add", ns)
            self.made.append(ns)
            port = f"p-{host}"
            # Both ends are created inside our namespaces: nothing touches the host's own.
            veth = ("type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", switch, "link", "add", port, *veth)
            _ip("-n", switch, "link", "set", port, "master", "br0")
            _ip("-n", switch, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{_address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def teardown(self) -> None:
        for ns in reversed(self.made):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()
            for pid in pids:  # only processes inside our own namespace
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made.clear()


def _env() -> dict[str, str]:
    # The child runs this checkout's code (the worktree first on the path).
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=f"{root}:{path}" if path else root, PYTHONUNBUFFERED="1")


def run_in(ns: str, *args: str, timeout: float = CALL_S) -> subprocess.CompletedProcess[str]:
    """``python -m unseen ARGS`` in namespace ``ns``, to completion."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "unseen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def start_in(ns: str, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server in ``ns``; returns it and the address its first line announces."""
    with open(log, "w") as err:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "unseen", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_env(),
        )
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if "listening on" in line:
                return process, line.rsplit(" ", 1)[-1].strip()
        if process.poll() is not None:
            break
    process.kill()
    process.wait()
    raise AssertionError(f"{args[:2]} in {ns} did not start: {log.read_text()[-2000:]}")


def _rows(holder: int) -> list[tuple[str, str, float]]:
    return [
        (city, industry, round(50 + ((i * 7919 + holder * 131 + c * 17) % 997) * 0.73, 2))
        for c, city in enumerate(CITIES)
        for industry in INDUSTRIES
        for i in range(12 + holder)
    ]


@dataclass
class Hosts:
    network: Network
    pki: Path
    data: dict[str, Path]
    reference: duckdb.DuckDBPyConnection
    coordinator: str
    processes: list[subprocess.Popen[str]]
    root: Path

    def tls(self, name: str, pki: Path | None = None) -> list[str]:
        folder = pki or self.pki
        return [
            "--tls-cert",
            str(folder / f"{name}.crt"),
            "--tls-key",
            str(folder / f"{name}.key"),
            "--tls-ca",
            str(folder / "ca.crt"),
        ]

    def query(self, sql: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_in(
            self.network.ns("analyst"),
            "query",
            "--coordinator",
            self.coordinator,
            "--key",
            str(self.root / "analyst-key"),
            "--format",
            "json",
            *extra,
            sql,
        )


def _root_and_ip() -> None:
    if shutil.which("ip") is None:
        unavailable("iproute2 (ip)", "apt-get install iproute2")
    if os.geteuid() != 0:
        unavailable("root (for ip netns)", "run the suite as root")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    _root_and_ip()
    root = tmp_path_factory.mktemp("netns")
    network = Network(f"unseen-{os.getpid()}-{secrets.token_hex(3)}")
    processes: list[subprocess.Popen[str]] = []
    try:
        try:
            network.build(list(ADDRESSES))
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"cannot build network namespaces: {exc.stderr!r}", pytrace=False)
        names = [a for h in HOLDERS for a in ("--holder", h)]
        addresses = [a for h in ADDRESSES for a in ("--host", _address(h))]
        made = run_in(
            network.ns("analyst"),
            "certs",
            "--out",
            str(root / "pki"),
            *names,
            "--coordinator",
            "coord",
            "--analyst",
            "alice",
            *addresses,
        )
        assert made.returncode == 0, made.stderr
        made = run_in(network.ns("analyst"), "keys", "new", "--out", str(root / "analyst-key"))
        assert made.returncode == 0, made.stderr
        reference = duckdb.connect()
        pooled: list[tuple[str, str, float]] = []
        data = {}
        for i, holder in enumerate(HOLDERS):
            rows = _rows(i)
            pooled += rows
            data[holder] = write_shard(root / f"{holder}.parquet", SCHEMA, rows)
        load_duckdb(reference, SCHEMA, pooled, "electricity")
        hosts = Hosts(network, root / "pki", data, reference, "", processes, root)
        holder_addresses = []
        for holder in HOLDERS:
            process, address = start_in(
                network.ns(holder),
                root / f"{holder}.log",
                "node",
                "serve",
                "--name",
                holder,
                "--listen",
                f"{_address(holder)}:7001",
                "--workers",
                "0",
                "--table",
                f"electricity={data[holder]}",
                *hosts.tls(holder),
            )
            processes.append(process)
            holder_addresses += ["--holder", address]
        process, hosts.coordinator = start_in(
            network.ns("coord"),
            root / "coordinator.log",
            "coordinator",
            "serve",
            "--listen",
            f"{_address('coord')}:7000",
            *holder_addresses,
            *hosts.tls("coord"),
        )
        processes.append(process)
        yield hosts
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        network.teardown()


def test_queries_across_namespaces_over_mtls_equal_duckdb_on_the_pooled_rows(hosts: Hosts):
    assert hosts.coordinator == f"{_address('coord')}:7000"
    for sql in QUERIES:
        done = hosts.query(sql, *hosts.tls("alice"))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        expected = hosts.reference.execute(sql).fetchall()
        assert len(result["rows"]) == len(expected) > 0
        for row, truth in zip(result["rows"], expected, strict=True):
            for ours, theirs in zip(row, truth, strict=True):
                if isinstance(theirs, str):
                    assert ours == theirs
                else:
                    assert ours == pytest.approx(theirs, rel=1e-6), sql


def test_plaintext_is_refused_off_loopback(hosts: Hosts):
    holder_ns, analyst_ns = hosts.network.ns("h1"), hosts.network.ns("analyst")
    # A server will not listen in plaintext on a namespace address, even with --insecure.
    for extra in ((), ("--insecure",)):
        done = run_in(
            holder_ns,
            "node",
            "serve",
            "--name",
            "h1-plain",
            "--listen",
            f"{_address('h1')}:7009",
            "--table",
            f"electricity={hosts.data['h1']}",
            *extra,
            timeout=60,
        )
        assert done.returncode != 0
        assert "loopback" in done.stderr and "Traceback" not in done.stderr
    # A client will not send a query in plaintext to the coordinator's address.
    done = hosts.query(QUERIES[0], "--insecure")
    assert done.returncode != 0
    assert "refusing a plaintext channel" in done.stderr and "Traceback" not in done.stderr
    # The coordinator's port does not answer a plaintext gRPC call (raw channel, no checks).
    probe = (
        "import grpc; from grpc_health.v1 import health_pb2, health_pb2_grpc\n"
        f"channel = grpc.insecure_channel('{hosts.coordinator}')\n"
        "try:\n"
        "    stub = health_pb2_grpc.HealthStub(channel)\n"
        "    stub.Check(health_pb2.HealthCheckRequest(), timeout=5)\n"
        "    print('ANSWERED')\n"
        "except grpc.RpcError as exc:\n"
        "    print(exc.code().name)\n"
    )
    raw = subprocess.run(
        ["ip", "netns", "exec", analyst_ns, sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert raw.stdout.strip() == "UNAVAILABLE", raw.stderr


def test_an_analyst_certified_by_another_ca_is_refused(hosts: Hosts):
    other = hosts.root / "other-pki"
    made = run_in(
        hosts.network.ns("analyst"),
        "certs",
        "--out",
        str(other),
        "--analyst",
        "eve",
        "--host",
        _address("analyst"),
    )
    assert made.returncode == 0, made.stderr
    # Eve trusts the federation's CA but presents a certificate it did not sign.
    tls = hosts.tls("eve", other)
    tls[-1] = str(hosts.pki / "ca.crt")
    done = hosts.query(QUERIES[0], *tls, "--timeout", "20")
    assert done.returncode != 0
    # The handshake fails: the coordinator closes the socket before any call reaches it.
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert "unavailable" in done.stderr
