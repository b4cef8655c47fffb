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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tenseal as ts

from engine import ckks, serde
from engine.catalog import Catalog
from engine.errors import PlanError, RemoteError
from engine.finish import finish
from engine.keys import AnalystKey, load_or_create
from engine.layout import layout_for, unpack
from engine.model import FeatureSpec, Model, check_feature, model_fingerprint
from engine.plan import AggregatePlan, SlotCodec
from engine.query import CompiledQuery
from engine.result import Result
from engine.rpc import DEADLINES, create_channel, remote_error
from engine.sql import compile_condition, compile_sql
from protos.unseen.v1 import catalog_pb2, coordinator_pb2_grpc, crypto_pb2, score_pb2

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
        self.model_bytes_sent = 0

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

    # -- scoring -------------------------------------------------------------------
    def feature_specs(self, model: Model, catalog: Catalog) -> tuple[FeatureSpec, ...]:
        """Check the model against the catalog and strip its weights for the holders."""
        specs = []
        for feature in model.features:
            key = model.key_of(feature)
            check_feature(feature, key, catalog)
            table = catalog.table(feature.table)
            assert table is not None
            column = table.column(feature.column)
            key_column = table.column(key)
            assert column is not None and key_column is not None
            condition = None
            if feature.filter is not None:
                condition = compile_condition(feature.filter, table, catalog)
            specs.append(
                FeatureSpec(
                    table=table.name,
                    column=column.name,
                    key=key_column.name,
                    aggregate=feature.aggregate,
                    filter=condition,
                    transform=feature.transform,
                    default=feature.default,
                )
            )
        return tuple(specs)

    def register_model(self, model: Model, catalog: Catalog | None = None) -> str:
        """Register the model's encrypted weights once; returns its id.

        Phase 1 asks the holders for a power-of-two bound ``2^e`` of each
        feature; phase 2 sends ``Enc(w * 2^e)`` (the holders use ``x / 2^e``),
        which keeps CKKS noise far below 1e-6 for features of any magnitude.
        """
        if not self._registered:
            self.register_key()
        catalog = catalog or self.catalog()
        specs = self.feature_specs(model, catalog)
        model_id = model_fingerprint(self.key.salt, self.key.key_id, model)
        known = self._call(
            self._stub.HasModel,
            score_pb2.HasModelRequest(key_id=self.key.key_id, model_id=model_id),
            "has_key",
        )
        if known.known:
            return model_id
        reply = self._call(
            self._stub.PrepareModel, serde.prepare_request(self.key.key_id, specs), "prepare_model"
        )
        exponents = list(reply.exponents)
        if len(exponents) != len(specs):
            raise RemoteError("INTERNAL", "the coordinator answered the wrong number of exponents")
        slots = ckks.PARAMS.slots
        weights = [
            bytes(ts.ckks_vector(self.key.secret, [f.weight * 2.0**e] * slots).serialize())
            for f, e in zip(model.features, exponents, strict=True)
        ]
        self.model_bytes_sent = sum(len(w) for w in weights)
        parts = serde.model_parts(self.key.key_id, model_id, specs, exponents, weights)
        ack = self._call(self._stub.RegisterModel, parts, "register_key")
        return str(ack.model_id)

    def score(self, model: Model, entities: list[str]) -> Result:
        """Score ``entities`` (in order) with ``model``; rows are ``[entity, score]``."""
        started = time.perf_counter()
        catalog = self.catalog()
        model_id = self.register_model(model, catalog)
        try:
            count, holders, blocks = self._score_stream(model_id, entities)
        except RemoteError as exc:
            if exc.code != "NOT_FOUND":
                raise
            # The coordinator lost the key or model (restart): register both again.
            self.register_key(force=True)
            model_id = self.register_model(model, catalog)
            count, holders, blocks = self._score_stream(model_id, entities)
        slots = ckks.PARAMS.slots
        rows: list[list[Any]] = []
        received = 0
        for index, data in enumerate(blocks):
            received += len(data)
            values = ckks.decrypt(self.key.secret, data)
            start = index * slots
            for offset, entity in enumerate(entities[start : start + slots]):
                linear = float(values[offset]) + model.intercept
                rows.append([entity, model.apply_link(linear)])
        if len(rows) != len(entities):
            raise RemoteError("INTERNAL", "the coordinator sent fewer score blocks than needed")
        meta = {
            "model_id": model_id,
            "holders": list(holders),
            "entities": len(entities),
            "ciphertexts": count,
            "bytes_received": received,
            "link": model.link,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return Result([model.entity, "score"], rows, meta)

    def _score_stream(
        self, model_id: str, entities: list[str]
    ) -> tuple[int, tuple[str, ...], Iterator[bytes]]:
        try:
            replies = self._stub.Score(
                serde.score_parts(model_id, self.key.key_id, entities),
                timeout=self._deadline("score"),
            )
            first = next(replies)
        except grpc.RpcError as exc:
            raise remote_error(exc, f"coordinator {self.address}") from exc
        header = first.header
        count = header.ciphertexts

        def blocks() -> Iterator[bytes]:
            try:
                for index, reply in enumerate(replies):
                    if reply.ciphertext.index != index:
                        raise RemoteError("INTERNAL", "the coordinator sent blocks out of order")
                    yield reply.ciphertext.data
            except grpc.RpcError as exc:
                raise remote_error(exc, f"coordinator {self.address}") from exc

        return count, tuple(header.holders), blocks()

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
