"""Separate hosts (issue 14): holders, the coordinator and the analyst each in their own Linux
network namespace, joined by veth pairs on a bridge that lives in a namespace of its own, with
mutual TLS on every channel; queries across them equal DuckDB over the pooled rows,
plaintext is refused off loopback (to start a server, to connect a client, to reach a server),
and a monitor in its own namespace scrapes every node's metrics, which hold no data value.

Everything network-wise is inside this test's namespaces (tests/netns.py: unique names per
run, private addresses, nothing added to the host's own namespace), removed in the fixture's
teardown even when a test fails. Every process is ``ip netns exec NS python -m unseen ...``.
Needs root and ``ip`` (iproute2): skipped on a developer machine without them, failed on CI.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.netns import Network, TlsArgs, network, python_in, run_in, start_in, stop
from tests.shards import load_duckdb, write_shard

pytestmark = pytest.mark.slow  # starts 5-8 processes in namespaces (CI runs it)

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
    tls: TlsArgs
    data: dict[str, Path]
    reference: duckdb.DuckDBPyConnection
    coordinator: str
    root: Path

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


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    root = tmp_path_factory.mktemp("netns")
    processes: list[subprocess.Popen[str]] = []
    with network(ADDRESSES) as net:
        try:
            names = [a for h in HOLDERS for a in ("--holder", h)]
            addresses = [a for h in ADDRESSES for a in ("--host", net.address(h))]
            made = run_in(
                net.ns("analyst"),
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
            made = run_in(net.ns("analyst"), "keys", "new", "--out", str(root / "analyst-key"))
            assert made.returncode == 0, made.stderr
            reference = duckdb.connect()
            pooled: list[tuple[str, str, float]] = []
            data = {}
            for i, holder in enumerate(HOLDERS):
                rows = _rows(i)
                pooled += rows
                data[holder] = write_shard(root / f"{holder}.parquet", SCHEMA, rows)
            load_duckdb(reference, SCHEMA, pooled, "electricity")
            hosts = Hosts(net, TlsArgs(root / "pki"), data, reference, "", root)
            holder_addresses = []
            for holder in HOLDERS:
                process, address = start_in(
                    net.ns(holder),
                    root / f"{holder}.log",
                    "node",
                    "serve",
                    "--name",
                    holder,
                    "--listen",
                    f"{net.address(holder)}:7001",
                    "--workers",
                    "0",
                    "--table",
                    f"electricity={data[holder]}",
                    "--metrics",
                    f"{net.address(holder)}:9101",
                    *hosts.tls(holder),
                )
                processes.append(process)
                holder_addresses += ["--holder", address]
            process, hosts.coordinator = start_in(
                net.ns("coord"),
                root / "coordinator.log",
                "coordinator",
                "serve",
                "--listen",
                f"{net.address('coord')}:7000",
                "--metrics",
                f"{net.address('coord')}:9100",
                *holder_addresses,
                *hosts.tls("coord"),
            )
            processes.append(process)
            yield hosts
        finally:
            stop(processes)


def test_queries_across_namespaces_over_mtls_equal_duckdb_on_the_pooled_rows(hosts: Hosts):
    assert hosts.coordinator == f"{hosts.network.address('coord')}:7000"
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
            f"{hosts.network.address('h1')}:7009",
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
    raw = python_in(analyst_ns, "-c", probe, timeout=60)
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
        hosts.network.address("analyst"),
    )
    assert made.returncode == 0, made.stderr
    # Eve trusts the federation's CA but presents a certificate it did not sign.
    tls = TlsArgs(other)("eve", ca=hosts.tls.folder / "ca.crt")
    done = hosts.query(QUERIES[0], *tls, "--timeout", "20")
    assert done.returncode != 0
    # The handshake fails: the coordinator closes the socket before any call reaches it.
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert "unavailable" in done.stderr


def test_a_monitor_in_another_namespace_scrapes_every_node_and_reads_no_data(hosts: Hosts):
    done = hosts.query(QUERIES[0], *hosts.tls("alice"))
    assert done.returncode == 0, done.stderr
    scrape = (
        "import sys, urllib.request\n"
        "url = f'http://{sys.argv[1]}/metrics'\n"
        "print(urllib.request.urlopen(url, timeout=10).read().decode())\n"
    )
    targets = {"coord": 9100, **dict.fromkeys(HOLDERS, 9101)}
    for host, port in targets.items():
        target = f"{hosts.network.address(host)}:{port}"
        got = python_in(hosts.network.ns("analyst"), "-c", scrape, target)
        assert got.returncode == 0, got.stderr
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(got.stdout)
            for s in family.samples
        }
        assert samples[("unseen_requests_total", (("code", "OK"), ("rpc", "Aggregate")))] >= 1
        assert samples[("unseen_keys_cached", ())] >= 1
        for city in CITIES:
            assert city not in got.stdout
