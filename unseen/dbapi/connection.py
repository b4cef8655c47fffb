"""The DB-API connection: one analyst key, its vouchers and a channel to a coordinator.

Opening a connection mirrors ``unseen query``'s flags: the coordinator's
``HOST:PORT``, the key directory (``key=``; the default key, created on first
use, when absent), voucher files (``vouchers=``), mTLS files (``tls=``) and a
deadline per call in seconds (``timeout=``). The client library (gRPC,
TenSEAL) is imported here, on the first ``connect``, so that
``import unseen`` stays cheap.

There are no transactions: every statement is a read of the federation, so
``commit`` and ``rollback`` succeed and do nothing (SQLAlchemy and pandas
call them on every connection they return).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unseen.dbapi.cursor import Cursor
from unseen.dbapi.errors import InterfaceError, translated

if TYPE_CHECKING:
    from unseen.engine.client import Client
    from unseen.engine.crypto.keys import AnalystKey
    from unseen.engine.query.catalog import Catalog
    from unseen.engine.transport.tls import TlsFiles

__all__ = ["Connection", "connect"]

PathLike = str | os.PathLike[str]


class Connection:
    """A PEP 249 connection to an unseen coordinator (see :func:`connect`)."""

    def __init__(self, client: Client):
        self._client: Client | None = client

    @property
    def client(self) -> Client:
        """The underlying :class:`unseen.engine.client.Client` (for ``score`` and the catalog)."""
        self.check_open()
        assert self._client is not None
        return self._client

    @property
    def closed(self) -> bool:
        return self._client is None

    def check_open(self) -> None:
        if self._client is None:
            raise InterfaceError("the connection is closed")

    def cursor(self) -> Cursor:
        self.check_open()
        return Cursor(self)

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        """A new cursor that has run ``operation`` (DuckDB's ``conn.execute(sql).df()``)."""
        return self.cursor().execute(operation, parameters)

    def catalog(self) -> Catalog:
        """The federation's merged catalog: tables, columns, their uses and published domains."""
        with translated():
            return self.client.catalog(refresh=False)

    def commit(self) -> None:
        """Nothing to commit: the federation is only ever read."""
        self.check_open()

    def rollback(self) -> None:
        """Nothing to roll back: the federation is only ever read."""
        self.check_open()

    def close(self) -> None:
        """Close the channel; later calls raise :class:`InterfaceError`. Idempotent."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tls_files(tls: Any) -> TlsFiles | None:
    from unseen.engine.transport.tls import TlsFiles

    if tls is None or isinstance(tls, TlsFiles):
        return tls
    if isinstance(tls, Mapping):
        missing = sorted({"cert", "key", "ca"} - set(tls))
        if missing:
            raise InterfaceError(f"tls= needs cert, key and ca files; missing {', '.join(missing)}")
        return TlsFiles(*(Path(tls[name]).expanduser() for name in ("cert", "key", "ca")))
    if isinstance(tls, Sequence) and not isinstance(tls, (str, bytes)) and len(tls) == 3:
        return TlsFiles(*(Path(path).expanduser() for path in tls))
    raise InterfaceError("tls= is a TlsFiles, a mapping of cert/key/ca or a (cert, key, ca) tuple")


def connect(
    coordinator: str,
    key: PathLike | AnalystKey | None = None,
    vouchers: Sequence[PathLike] | PathLike = (),
    tls: Any = None,
    timeout: float | None = None,
) -> Connection:
    """Connect to the coordinator at ``HOST:PORT``, as ``unseen query`` would.

    Args:
        coordinator: the coordinator's ``HOST:PORT``.
        key: the analyst's key directory (``unseen keys new --out DIR``; ``~`` expands) or a loaded
            ``AnalystKey``; None uses the default key, created on first use (mode 0600).
        vouchers: signed voucher files (a file may hold several, one per line).
        tls: mTLS files: ``TlsFiles``, ``{"cert": ..., "key": ..., "ca": ...}`` or
            ``(cert, key, ca)``; None is plaintext, which only loopback addresses allow.
        timeout: seconds allowed per call; None uses each call's default deadline.

    Raises:
        InterfaceError: a bad argument, an unreadable key, voucher or TLS file.
    """
    if not isinstance(coordinator, str) or not coordinator.rpartition(":")[2].isdigit():
        raise InterfaceError("connect() needs the coordinator as 'HOST:PORT'")
    paths = [vouchers] if isinstance(vouchers, (str, os.PathLike)) else list(vouchers)
    with translated():
        from unseen.engine.client import Client
        from unseen.engine.crypto.keys import AnalystKey
        from unseen.governance import read_vouchers

        lines = read_vouchers([Path(p).expanduser() for p in paths])
        files = _tls_files(tls)
        if isinstance(key, AnalystKey):
            client = Client(coordinator, key=key, timeout=timeout, vouchers=lines, tls=files)
        else:
            directory = None if key is None else Path(key).expanduser()
            client = Client(
                coordinator, key_dir=directory, timeout=timeout, vouchers=lines, tls=files
            )
    return Connection(client)
