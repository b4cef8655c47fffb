"""The unseen application: command line, demo, local federations, and the DB-API driver.

``unseen.connect`` is :func:`unseen.dbapi.connect` (PEP 249). It is resolved
on first use, and the driver itself imports gRPC and TenSEAL only when it
connects, so ``import unseen`` stays cheap for the command line and tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unseen.dbapi import Connection, connect

__all__ = ["Connection", "connect"]


def __getattr__(name: str) -> Any:
    # PEP 562: load the driver on first use of its names.
    if name in __all__:
        from unseen import dbapi

        return getattr(dbapi, name)
    raise AttributeError(f"module 'unseen' has no attribute {name!r}")
