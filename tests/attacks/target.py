"""A small federation of separate processes for the attacks to aim at, with its plaintext twin.

Holders ``h0`` (Parquet) and ``h1`` (SQLite) host table ``t`` (``id`` an identifier-like
entity column, ``g`` a groupable category, ``v`` a number) in quick-start mode; a coordinator
fronts them. Processes, not threads, so that each server's memory and CPU can be measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from tests.hostile import SERVICE_METHODS, addresses_of, method_path, server_pids
from tests.hostile.request import SU, US, UU
from tests.shards import Reference, write_shards
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.transport import serde
from unseen.federation import LocalFederation

SCHEMA = [("id", "VARCHAR"), ("g", "VARCHAR"), ("v", "BIGINT")]
SQL = "SELECT g, COUNT(*), SUM(v) FROM t GROUP BY g ORDER BY g"
# Round 1 of a masked aggregate is a holder's own RPC (the hostile generator's list of
# methods is shared by both services, so it stays there).
HOLDER_METHODS = {**SERVICE_METHODS, "PrepareAggregate": UU}


@dataclass
class Target:
    fed: LocalFederation
    reference: Reference
    key: AnalystKey

    @property
    def addresses(self) -> dict[str, str]:
        return addresses_of(self.fed)

    def pid(self, name: str) -> int:
        return server_pids(self.fed)[name]

    def rss(self, name: str) -> int:
        return int(psutil.Process(self.pid(name)).memory_info().rss)

    def cpu(self, name: str) -> float:
        times = psutil.Process(self.pid(name)).cpu_times()
        return float(times.user + times.system)

    def call(self, target: str, method: str, request: Any, deadline: float = 60) -> tuple[str, str]:
        """One raw call to ``target``; (status name, details)."""
        arity = HOLDER_METHODS[method]
        with grpc.insecure_channel(self.addresses[target]) as channel:
            path = method_path(target, method)
            try:
                if arity == UU:
                    channel.unary_unary(path)(request, timeout=deadline)
                elif arity == US:
                    list(channel.unary_stream(path)(request, timeout=deadline))
                elif arity == SU:
                    channel.stream_unary(path)(request, timeout=deadline)
                else:
                    list(channel.stream_stream(path)(request, timeout=deadline))
            except grpc.RpcError as exc:
                return exc.code().name, exc.details() or ""
        return "OK", ""

    def register_key(self, holder: str) -> None:
        chunks = [c.SerializeToString() for c in serde.key_chunks(self.key.public)]
        code, details = self.call(holder, "RegisterKey", iter(chunks))
        assert code == "OK", details

    def problems(self) -> list[str]:
        """An honest analyst's query through the coordinator, checked against DuckDB."""
        with Client(self.fed.address, key=AnalystKey.generate(), timeout=60) as client:
            return self.reference.check(client, SQL, 5)[2].problems


def rows(count: int, offset: int = 0) -> list[tuple[str, str, int]]:
    return [(f"91{i + offset:016d}", "abc"[i % 3], i % 97) for i in range(count)]


@contextlib.contextmanager
def start_target(root: Path) -> Iterator[Target]:
    holders, reference = write_shards(
        SCHEMA,
        {"h0": (root / "h0.parquet", rows(300)), "h1": (root / "h1.sqlite", rows(300, 300))},
    )
    fed = LocalFederation(holders, root / "logs")
    fed.start()
    try:
        yield Target(fed, reference, AnalystKey.generate())
    finally:
        fed.stop(timeout=5)
