"""Holders and a coordinator started and stopped by hand in this process, on loopback.

For tests that change the federation while it runs: a holder down from the
start, restarted on the same address with other tables, or with a tiny call
limit. (tests.conftest's federation fixture covers the steady case.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode
from unseen.nodes.servicers import serve_holder

__all__ = ["Running"]


class Running:
    """Holders and a coordinator started and stopped by hand, in this process."""

    def __init__(self) -> None:
        self.servers: list[Any] = []
        self.closers: list[Callable[[], None]] = []

    def holder(self, name: str, tables: dict, listen: str = "127.0.0.1:0", **kw: object) -> str:
        node = HolderNode.quickstart(name, tables)
        server, port = serve_holder(node, listen, **kw)  # type: ignore[arg-type]
        self.servers.append(server)
        self.closers.append(node.pool.close)
        return f"127.0.0.1:{port}"

    def coordinator(self, addresses: list[str], ttl: float = 5.0) -> str:
        coordinator = Coordinator.connect(addresses)
        coordinator.catalog_ttl = ttl
        server, port = serve_coordinator(coordinator, "127.0.0.1:0")
        self.servers.append(server)
        self.closers.append(coordinator.close)
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        for server in self.servers:
            server.stop(grace=None).wait()
        for close in self.closers:
            close()
