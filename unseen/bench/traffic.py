"""Bytes on the wire per server, read from the kernel's TCP counters.

``ss -tin`` reports, for every established TCP connection, the payload bytes
sent and received (``tcp_info``: gRPC frames, protobuf and all, as they
crossed loopback). Summing the connections whose local port is a server's
listening port gives what that server sent and received; two snapshots
around a call give the call's traffic. Connections persist (gRPC channels),
so a connection missing from the first snapshot simply started at zero.
Without ``ss`` the caller falls back to the sizes of the ciphertexts the
analyst received, and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Traffic", "TrafficMeter"]

_SENT = re.compile(r"\bbytes_sent:(\d+)")
_RECEIVED = re.compile(r"\bbytes_received:(\d+)")
Connection = tuple[str, str]


@dataclass(frozen=True)
class Traffic:
    """Bytes one server sent and received over an interval."""

    sent: int
    received: int


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class TrafficMeter:
    """Per-server traffic between :meth:`start` and :meth:`stop`.

    ``servers`` maps a name to its ``HOST:PORT`` listening address.
    """

    def __init__(self, servers: Mapping[str, str]):
        self.servers = {name: _port(address) for name, address in servers.items()}
        self.available = shutil.which("ss") is not None
        self._before: dict[Connection, tuple[int, int]] = {}

    def _snapshot(self) -> dict[Connection, tuple[int, int]]:
        done = subprocess.run(
            ["ss", "-tinH", "state", "established"],  # noqa: S607 - iproute2 on PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        counters: dict[Connection, tuple[int, int]] = {}
        current: Connection | None = None
        for line in done.stdout.splitlines():
            if not line[:1].isspace():
                fields = line.split()
                # Recv-Q Send-Q Local Peer (the state column is left out by the filter).
                current = (fields[-2], fields[-1]) if len(fields) >= 4 else None
                continue
            if current is None:
                continue
            sent, received = _SENT.search(line), _RECEIVED.search(line)
            counters[current] = (
                int(sent.group(1)) if sent else 0,
                int(received.group(1)) if received else 0,
            )
            current = None
        return counters

    def start(self) -> None:
        if self.available:
            self._before = self._snapshot()

    def stop(self) -> dict[str, Traffic] | None:
        """Traffic per server since :meth:`start`; None when ``ss`` is not available."""
        if not self.available:
            return None
        after = self._snapshot()
        totals = {name: [0, 0] for name in self.servers}
        by_port = {port: name for name, port in self.servers.items()}
        for connection, (sent, received) in after.items():
            name = by_port.get(_port(connection[0]))
            if name is None:
                continue
            old_sent, old_received = self._before.get(connection, (0, 0))
            totals[name][0] += max(0, sent - old_sent)
            totals[name][1] += max(0, received - old_received)
        return {name: Traffic(sent, received) for name, (sent, received) in totals.items()}
