"""A measured local federation: holders and a coordinator as processes, plus their probes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from unseen.bench.processes import ProcessProbe, total_cpu_seconds
from unseen.bench.traffic import Traffic, TrafficMeter
from unseen.engine.client import Client
from unseen.engine.crypto.keys import AnalystKey
from unseen.federation import LocalFederation

__all__ = ["Cluster", "Measured"]

T = TypeVar("T")


@dataclass
class Measured:
    """One call's wall time, result and per-server traffic (None without ``ss``)."""

    seconds: float
    result: Any
    traffic: dict[str, Traffic] | None
    cpu_s: float | None = None  # CPU of every federation process and the analyst


@dataclass
class Cluster:
    """``holders`` (name -> {table: file}) served by child processes on loopback.

    Holders run with ``--workers 0`` (the default on two cores: worker processes
    do not pay there) so each holder is exactly one process to measure.
    """

    holders: Mapping[str, Mapping[str, Path]]
    log_dir: Path
    key: AnalystKey
    startup_s: float = 0.0
    federation: LocalFederation | None = None
    client: Client | None = None
    _probe: ProcessProbe | None = field(default=None, repr=False)

    def __enter__(self) -> Cluster:
        self.federation = LocalFederation(
            self.holders, self.log_dir, holder_args=["--workers", "0"], startup_timeout=600
        )
        started = time.perf_counter()
        self.federation.start()
        self.startup_s = time.perf_counter() - started
        self.client = Client(self.federation.address, key=self.key)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.federation is not None:
            self.federation.stop()

    @property
    def address(self) -> str:
        assert self.federation is not None
        return self.federation.address

    @property
    def servers(self) -> dict[str, str]:
        """Listening address of every holder and of the coordinator."""
        assert self.federation is not None and self.federation.coordinator is not None
        out = {node.name: node.address for node in self.federation.nodes}
        out["coordinator"] = self.federation.coordinator.address
        return out

    @property
    def pids(self) -> dict[str, int]:
        assert self.federation is not None and self.federation.coordinator is not None
        out = {node.name: node.process.pid for node in self.federation.nodes}
        out["coordinator"] = self.federation.coordinator.process.pid
        out["analyst"] = os.getpid()
        return out

    def measure(self, call: Callable[[], T]) -> Measured:
        """Run ``call`` once, timed, with the traffic of every server around it."""
        meter = TrafficMeter(self.servers)
        pids = list(self.pids.values())
        meter.start()
        cpu_before = total_cpu_seconds(pids)
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
        cpu_after = total_cpu_seconds(pids)
        cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        return Measured(seconds, result, meter.stop(), cpu)

    def probe_start(self) -> None:
        """Reset every process's peak RSS and note its CPU time (one cell begins)."""
        self._probe = ProcessProbe(self.pids)
        self._probe.start()

    def probe_stop(self) -> dict[str, Any]:
        """Per process peak RSS and CPU since :meth:`probe_start`."""
        assert self._probe is not None
        return self._probe.stop()

    def interference(self) -> dict[str, float | None]:
        """CPU used by other programs during the last probed cell (see ProcessProbe)."""
        return self._probe.others if self._probe is not None else {}
