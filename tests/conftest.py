"""Shared fixtures: an analyst key per session, in-process federations on port 0, and the
command line run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, settings

from tests.servers import mariadb, postgres, spark  # noqa: F401  (session fixtures)
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile(
    "full", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=2000
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def key() -> AnalystKey:
    return AnalystKey.generate()


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never touch the developer's real ~/.config/unseen from a test.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@dataclass
class Federation:
    """Holders and a coordinator running in this process on loopback port 0."""

    address: str
    holders: dict[str, HolderNode]
    holder_servers: dict[str, grpc.Server]
    holder_addresses: dict[str, str]
    coordinator: Coordinator
    coordinator_server: grpc.Server
    clients: list[Client] = field(default_factory=list)

    def client(self, key: AnalystKey, **kwargs: object) -> Client:
        client = Client(self.address, key=key, **kwargs)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def stop_holder(self, name: str) -> None:
        self.holder_servers[name].stop(grace=None).wait()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.coordinator_server.stop(grace=None).wait()
        self.coordinator.close()
        for server in self.holder_servers.values():
            server.stop(grace=None).wait()
        for node in self.holders.values():
            node.pool.close()  # worker processes and the model spool
            for source in node.sources.values():
                source.close()  # warehouse connections


def start_federation(
    holders: Mapping[str, Mapping[str, Path | str]], k: int = 5, workers: int = 0
) -> Federation:
    nodes, servers, addresses = {}, {}, {}
    for name, tables in holders.items():
        node = HolderNode.quickstart(name, tables, k=k, workers=workers)
        server, port = serve_holder(node, "127.0.0.1:0")
        nodes[name], servers[name], addresses[name] = node, server, f"127.0.0.1:{port}"
    coordinator = Coordinator.connect(list(addresses.values()))
    server, port = serve_coordinator(coordinator, "127.0.0.1:0")
    return Federation(f"127.0.0.1:{port}", nodes, servers, addresses, coordinator, server)


@pytest.fixture
def federation_factory() -> Iterator:
    started: list[Federation] = []

    def make(
        holders: Mapping[str, Mapping[str, Path | str]], k: int = 5, workers: int = 0
    ) -> Federation:
        fed = start_federation(holders, k, workers)
        started.append(fed)
        return fed

    yield make
    for fed in started:
        fed.close()


def unseen(
    *args: object, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m unseen ARGS`` in a child process; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "unseen", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
