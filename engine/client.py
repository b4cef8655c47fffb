"""The analyst's client: compile SQL, register the key once, decrypt, finish.

The only place the secret key is used. What it sends: the public context
(once per coordinator) and typed plans. What it receives: the combined
ciphertexts, the indices of suppressed groups and the names of the holders
whose answers are inside. Everything else — decryption, exact
recombination of limbs, AVG/VAR/STDDEV, HAVING, ORDER BY, LIMIT — happens
here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from engine import ckks, serde
from engine.catalog import Catalog
from engine.errors import PlanError, RemoteError
from engine.finish import finish
from engine.keys import AnalystKey, load_or_create
from engine.layout import layout_for, unpack
from engine.plan import AggregatePlan, SlotCodec
from engine.query import CompiledQuery
from engine.result import Result
from engine.rpc import DEADLINES, create_channel, remote_error
from engine.sql import compile_sql
from protos.unseen.v1 import catalog_pb2, coordinator_pb2_grpc, crypto_pb2

__all__ = ["Client"]


class Client:
    """A connection to a coordinator with the analyst's key.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        coordinator: str,
        key: AnalystKey | None = None,
        key_dir: Path | None = None,
        timeout: float | None = None,
    ):
        self.address = coordinator
        self.key = key if key is not None else load_or_create(key_dir)
        self.timeout = timeout
        self._channel = create_channel(coordinator)
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._registered = False

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _deadline(self, kind: str) -> float:
        return self.timeout if self.timeout is not None else DEADLINES[kind]

    def _call(self, method: Any, request: Any, kind: str) -> Any:
        try:
            return method(request, timeout=self._deadline(kind))
        except grpc.RpcError as exc:
            raise remote_error(exc, f"coordinator {self.address}") from exc

    # -- federation -------------------------------------------------------------
    def catalog(self) -> Catalog:
        msg = self._call(self._stub.GetCatalog, catalog_pb2.GetCatalogRequest(), "catalog")
        return serde.catalog_from_proto(msg)

    def register_key(self, force: bool = False) -> str:
        """Register the public context with the coordinator (and so every holder)."""
        if not force:
            known = self._call(
                self._stub.HasKey, crypto_pb2.HasKeyRequest(key_id=self.key.key_id), "has_key"
            )
            if known.known:
                self._registered = True
                return self.key.key_id
        ack = self._call(self._stub.RegisterKey, serde.key_chunks(self.key.public), "register_key")
        if ack.key_id != self.key.key_id:
            raise RemoteError("INTERNAL", "the coordinator named the key differently")
        self._registered = True
        return ack.key_id

    # -- queries ----------------------------------------------------------------
    def compile(self, sql: str, catalog: Catalog | None = None) -> CompiledQuery:
        codec = SlotCodec(slots=ckks.PARAMS.slots)
        return compile_sql(sql, catalog or self.catalog(), codec)

    def aggregate(
        self, plan: AggregatePlan
    ) -> tuple[list[bytes], tuple[int, ...], tuple[str, ...]]:
        """Send a plan; returns (ciphertexts, suppressed group indices, holder names)."""
        if not self._registered:
            self.register_key()
        request = serde.aggregate_request(self.key.key_id, plan)
        try:
            return self._stream(request)
        except RemoteError as exc:
            if exc.code != "NOT_FOUND":
                raise
        # The coordinator restarted or evicted the key: register and try once more.
        self.register_key(force=True)
        return self._stream(request)

    def _stream(self, request: Any) -> tuple[list[bytes], tuple[int, ...], tuple[str, ...]]:
        try:
            replies = self._stub.Aggregate(request, timeout=self._deadline("aggregate"))
            header = next(replies)
            count, suppressed, holders = serde.header_from_proto(header.header)
            ciphertexts: list[bytes] = [b""] * count
            for reply in replies:
                index = reply.ciphertext.index
                if index >= count:
                    raise RemoteError("INTERNAL", "the coordinator sent an unannounced ciphertext")
                ciphertexts[index] = reply.ciphertext.data
        except grpc.RpcError as exc:
            raise remote_error(exc, f"coordinator {self.address}") from exc
        if any(not c for c in ciphertexts):
            raise RemoteError("INTERNAL", "the coordinator sent fewer ciphertexts than announced")
        return ciphertexts, suppressed, holders

    def query(self, sql: str) -> Result:
        """Answer one SELECT over the federation; see docs/architecture.md."""
        started = time.perf_counter()
        catalog = self.catalog()
        compiled = self.compile(sql, catalog)
        plan = compiled.plan
        table = catalog.table(plan.table)
        layout = layout_for(plan)
        ciphertexts, suppressed, holders = self.aggregate(plan)
        if len(ciphertexts) != layout.ciphertexts:
            raise PlanError("the coordinator answered with the wrong number of ciphertexts")
        slots = np.concatenate([ckks.decrypt(self.key.secret, c) for c in ciphertexts])
        moments = unpack(plan, layout, slots)
        meta = {
            "holders": list(holders),
            "k": table.min_group_size if table is not None else None,
            "ciphertexts": len(ciphertexts),
            "bytes_received": sum(len(c) for c in ciphertexts),
            "key_id": self.key.key_id,
            "elapsed_ms": 0.0,
        }
        result = finish(compiled, moments, set(suppressed), meta)
        result.meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result
