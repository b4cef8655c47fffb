"""The analyst's client: compile, register the key and models once, decrypt, finish.

The only place the secret key is used. What it sends: the public context
(once per coordinator), typed plans, encrypted weights, entity ids and the
analyst's vouchers. What it receives: combined ciphertexts, the indices of
suppressed groups, the names of the holders whose answers are inside, and
the holders' signed ledger receipts (kept in ``Result.meta["receipts"]`` for
a supervisor). Everything else — decryption, exact recombination of limbs,
AVG/VAR/STDDEV, HAVING, ORDER BY, LIMIT, intercepts and links — happens here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from engine.masks import reduce_slots
from engine.model import FeatureSpec, Model, check_feature, model_fingerprint
from engine.plan import AggregatePlan, SlotCodec
from engine.query import CompiledQuery
from engine.result import Result
from engine.rpc import DEADLINES, create_channel, remote_error
from engine.sql import compile_condition, compile_sql
from engine.tls import TlsFiles
from protos.unseen.v1 import catalog_pb2, coordinator_pb2_grpc, crypto_pb2, score_pb2

__all__ = ["AggregateReply", "Client"]


@dataclass(frozen=True)
class AggregateReply:
    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...]


class Client:
    """A connection to a coordinator with the analyst's key (and vouchers).

    Use as a context manager, or call :meth:`close`. ``vouchers`` are signed
    voucher lines; every request carries all of them and each holder uses
    the ones issued for it.
    """

    def __init__(
        self,
        coordinator: str,
        key: AnalystKey | None = None,
        key_dir: Path | None = None,
        timeout: float | None = None,
        vouchers: Sequence[str] = (),
        tls: TlsFiles | None = None,
    ):
        self.address = coordinator
        self.key = key if key is not None else load_or_create(key_dir)
        self.timeout = timeout
        self.vouchers = list(vouchers)
        self._channel = create_channel(coordinator, tls)
        self._stub = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._registered = False
        self.model_bytes_sent = 0
        # A query compiles against a catalog at most this old (one round trip saved).
        self.catalog_ttl = 5.0
        self._catalog: tuple[float, Catalog] | None = None

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

    def _retry_unknown(self, call: Any) -> Any:
        """Run ``call``; if the coordinator lost the key (restart), register and retry once."""
        if not self._registered:
            self.register_key()
        try:
            return call()
        except RemoteError as exc:
            if exc.code != "NOT_FOUND":
                raise
        self.register_key(force=True)
        return call()

    # -- federation -------------------------------------------------------------
    def catalog(self, refresh: bool = True) -> Catalog:
        """The federation's merged catalog; ``refresh=False`` accepts one a few seconds old."""
        if not refresh and self._catalog is not None:
            fetched_at, catalog = self._catalog
            if time.monotonic() - fetched_at < self.catalog_ttl:
                return catalog
        msg = self._call(self._stub.GetCatalog, catalog_pb2.GetCatalogRequest(), "catalog")
        catalog = serde.catalog_from_proto(msg)
        self._catalog = (time.monotonic(), catalog)
        return catalog

    def _compile_fresh(self, sql: str) -> tuple[Catalog, CompiledQuery]:
        """Compile against a recent catalog; if that fails, against a fresh one."""
        cached = self._catalog
        catalog = self.catalog(refresh=False)
        try:
            return catalog, self.compile(sql, catalog)
        except PlanError:
            if cached is None or cached[1] is not catalog:
                raise  # the catalog was just fetched: a fresh one would say the same
            fresh = self.catalog()
            return fresh, self.compile(sql, fresh)

    def register_key(self, force: bool = False) -> str:
        """Register the public context with the coordinator (and so every holder)."""
        if not force:
            request = crypto_pb2.HasKeyRequest(key_id=self.key.key_id)
            if self._call(self._stub.HasKey, request, "has_key").known:
                self._registered = True
                return self.key.key_id
        ack = self._call(self._stub.RegisterKey, serde.key_chunks(self.key.public), "register_key")
        if ack.key_id != self.key.key_id:
            raise RemoteError("INTERNAL", "the coordinator named the key differently")
        self._registered = True
        return str(ack.key_id)

    # -- aggregates -------------------------------------------------------------
    def compile(self, sql: str, catalog: Catalog | None = None) -> CompiledQuery:
        codec = SlotCodec(slots=ckks.PARAMS.slots)
        return compile_sql(sql, catalog or self.catalog(), codec)

    def aggregate(self, plan: AggregatePlan) -> AggregateReply:
        """Send a plan; returns the combined ciphertexts and what came with them."""
        request = serde.aggregate_request(self.key.key_id, plan, self.vouchers)
        return self._retry_unknown(lambda: self._aggregate_stream(request))  # type: ignore[no-any-return]

    def _aggregate_stream(self, request: Any) -> AggregateReply:
        try:
            replies = self._stub.Aggregate(request, timeout=self._deadline("aggregate"))
            header = next(replies)
            count, suppressed, holders, receipts = serde.header_from_proto(header.header)
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
        return AggregateReply(ciphertexts, suppressed, holders, receipts)

    def query(self, sql: str) -> Result:
        """Answer one SELECT over the federation; see docs/architecture.md."""
        started = time.perf_counter()
        catalog, compiled = self._compile_fresh(sql)
        plan = compiled.plan
        table = catalog.table(plan.table)
        layout = layout_for(plan)
        reply = self.aggregate(plan)
        if len(reply.ciphertexts) != layout.ciphertexts:
            raise PlanError("the coordinator answered with the wrong number of ciphertexts")
        slots = np.concatenate([ckks.decrypt(self.key.secret, c) for c in reply.ciphertexts])
        # Holders' pairwise masks cancel modulo 2^MASK_BITS in the sum of all answers.
        moments = unpack(plan, layout, reduce_slots(slots))
        meta = {
            "holders": list(reply.holders),
            "k": table.min_group_size if table is not None else None,
            "ciphertexts": len(reply.ciphertexts),
            "bytes_received": sum(len(c) for c in reply.ciphertexts),
            "key_id": self.key.key_id,
            "receipts": [json.loads(r) for r in reply.receipts],
            "elapsed_ms": 0.0,
        }
        result = finish(compiled, moments, set(reply.suppressed), meta)
        result.meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    # -- scoring ----------------------------------------------------------------
    def feature_specs(self, model: Model, catalog: Catalog) -> tuple[FeatureSpec, ...]:
        """Check the model against the catalog and strip its weights for the holders."""
        specs = []
        for feature in model.features:
            table, column, key_column = check_feature(feature, model.key_of(feature), catalog)
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

    def register_model(
        self, model: Model, entities: Sequence[str], catalog: Catalog | None = None
    ) -> tuple[str, list[str]]:
        """Register the model's encrypted weights once; returns its id and any receipts.

        Phase 1 asks the holders for a power-of-two bound ``2^e`` of each
        feature over ``entities``; phase 2 sends ``Enc(w * 2^e)`` (the holders
        use ``x / 2^e``), which keeps CKKS noise far below 1e-6 for features of
        any magnitude. A model already registered (same fingerprint) is reused.
        """
        if not self._registered:
            self.register_key()
        catalog = catalog or self.catalog()
        specs = self.feature_specs(model, catalog)
        model_id = model_fingerprint(self.key.salt, self.key.key_id, model)
        request = score_pb2.HasModelRequest(key_id=self.key.key_id, model_id=model_id)
        if self._call(self._stub.HasModel, request, "has_key").known:
            return model_id, []
        parts = serde.prepare_parts(self.key.key_id, specs, list(entities), self.vouchers)
        reply = self._call(self._stub.PrepareModel, parts, "prepare_model")
        exponents = list(reply.exponents)
        if len(exponents) != len(specs):
            raise RemoteError("INTERNAL", "the coordinator answered the wrong number of exponents")
        slots = ckks.PARAMS.slots
        weights = [
            bytes(ts.ckks_vector(self.key.secret, [f.weight * 2.0**e] * slots).serialize())
            for f, e in zip(model.features, exponents, strict=True)
        ]
        self.model_bytes_sent = sum(len(w) for w in weights)
        upload = serde.model_parts(self.key.key_id, model_id, specs, exponents, weights)
        ack = self._call(self._stub.RegisterModel, upload, "register_key")
        return str(ack.model_id), list(reply.receipts)

    def score(self, model: Model, entities: Sequence[str]) -> Result:
        """Score ``entities`` (in order) with ``model``; rows are ``[entity, score]``."""
        started = time.perf_counter()
        catalog = self.catalog()
        ids = list(entities)

        def run() -> tuple[str, list[str], int, tuple[str, ...], list[str], Iterator[bytes]]:
            model_id, prepared = self.register_model(model, ids, catalog)
            return (model_id, prepared, *self._score_stream(model_id, ids))

        model_id, prepared, count, holders, receipts, blocks = self._retry_unknown(run)
        slots = ckks.PARAMS.slots
        rows: list[list[Any]] = []
        received = 0
        for index, data in enumerate(blocks):
            received += len(data)
            chunk = ids[index * slots : (index + 1) * slots]
            linear = (ckks.decrypt(self.key.secret, data)[: len(chunk)] + model.intercept).tolist()
            rows.extend(
                [entity, model.apply_link(x)] for entity, x in zip(chunk, linear, strict=True)
            )
        if len(rows) != len(ids):
            raise RemoteError("INTERNAL", "the coordinator sent fewer score blocks than needed")
        meta = {
            "model_id": model_id,
            "holders": list(holders),
            "entities": len(ids),
            "ciphertexts": count,
            "bytes_received": received,
            "link": model.link,
            "receipts": [json.loads(r) for r in [*prepared, *receipts]],
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return Result([model.entity, "score"], rows, meta)

    def _score_stream(
        self, model_id: str, entities: list[str]
    ) -> tuple[int, tuple[str, ...], list[str], Iterator[bytes]]:
        parts = serde.score_parts(model_id, self.key.key_id, entities, self.vouchers)
        try:
            replies = self._stub.Score(parts, timeout=self._deadline("score"))
            first = next(replies)
        except grpc.RpcError as exc:
            raise remote_error(exc, f"coordinator {self.address}") from exc
        header = first.header

        def blocks() -> Iterator[bytes]:
            try:
                for index, reply in enumerate(replies):
                    if reply.ciphertext.index != index:
                        raise RemoteError("INTERNAL", "the coordinator sent blocks out of order")
                    yield reply.ciphertext.data
            except grpc.RpcError as exc:
                raise remote_error(exc, f"coordinator {self.address}") from exc

        return header.ciphertexts, tuple(header.holders), list(header.receipts), blocks()
