"""Separate hosts for tests: Linux network namespaces on a private bridge, and processes in them.

A :class:`Network` is one test run's namespaces: a switch namespace holding a
bridge, and one namespace per host joined to it by a veth pair whose two ends
are created inside our namespaces (nothing is added to the host's own network
namespace). Names carry the test process id and a random suffix, so runs never
collide; :meth:`Network.teardown` kills what runs inside them and deletes them.
Processes start as ``ip netns exec NS python -m unseen ...`` with this
checkout first on the path. Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import unavailable

__all__ = ["Network", "TlsArgs", "network", "require_netns", "run_in", "start_in", "stop"]

SUBNET = "10.213.7"  # a /24 that exists only inside a test's namespaces
STARTUP_S = 120.0
CALL_S = 180.0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def require_netns() -> None:
    """Skip on a developer machine without root or ``ip``; fail on CI (.ci/run installs it)."""
    if shutil.which("ip") is None:
        unavailable("iproute2 (ip)", "apt-get install iproute2")
    if os.geteuid() != 0:
        unavailable("root (for ip netns)", "run the suite as root")


@dataclass
class Network:
    """The namespaces of one run: a switch (bridge) and one namespace per host."""

    prefix: str
    hosts: Mapping[str, int]  # host -> last octet of its address in SUBNET
    made: list[str] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.hosts[host]}"

    def build(self) -> None:
        switch = self.ns("sw")
        _ip("netns", "add", switch)
        self.made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for index, host in enumerate(self.hosts):
            ns = self.ns(host)
            _ip("netns", "add", ns)
            self.made.append(ns)
            port = f"p{index}"
            # Both ends are created inside our namespaces: nothing touches the host's own.
            veth = ("type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", switch, "link", "add", port, *veth)
            _ip("-n", switch, "link", "set", port, "master", "br0")
            _ip("-n", switch, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def teardown(self) -> None:
        for ns in reversed(self.made):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30
            ).stdout.split()
            for pid in pids:  # only processes inside our own namespace
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made.clear()


@contextlib.contextmanager
def network(hosts: Mapping[str, int]) -> Iterator[Network]:
    """Build the namespaces of ``hosts``; delete them on exit, whatever happened."""
    require_netns()
    net = Network(f"unseen-{os.getpid()}-{secrets.token_hex(3)}", dict(hosts))
    try:
        try:
            net.build()
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"cannot build network namespaces: {exc.stderr!r}") from exc
        yield net
    finally:
        net.teardown()


def env() -> dict[str, str]:
    """The children's environment: this checkout's code first on the path."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=f"{root}:{path}" if path else root, PYTHONUNBUFFERED="1")


def run_in(ns: str, *args: str, timeout: float = CALL_S) -> subprocess.CompletedProcess[str]:
    """``python -m unseen ARGS`` in namespace ``ns``, to completion."""
    return python_in(ns, "-m", "unseen", *args, timeout=timeout)


def python_in(ns: str, *args: str, timeout: float = CALL_S) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in namespace ``ns``, to completion."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )


def start_in(ns: str, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server in ``ns``; returns it and the address its first line announces."""
    with open(log, "w") as err:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "unseen", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env(),
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


def stop(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM every server, then wait (SIGKILL after 10 s)."""
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


@dataclass(frozen=True)
class TlsArgs:
    """The ``--tls-*`` flags of one party's files in a folder made by ``unseen certs``."""

    folder: Path

    def __call__(self, name: str, ca: Path | None = None) -> list[str]:
        return [
            "--tls-cert",
            str(self.folder / f"{name}.crt"),
            "--tls-key",
            str(self.folder / f"{name}.key"),
            "--tls-ca",
            str(ca or self.folder / "ca.crt"),
        ]
