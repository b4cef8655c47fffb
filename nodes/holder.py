"""The holder node: a gRPC server over one department's own tables.

It publishes a catalog, registers analysts' public contexts, and answers
aggregate plans with ciphertexts only (see ``engine.local``). The servicer is
thin: decode, call :class:`HolderNode`, encode.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from engine import ckks, serde
from engine.catalog import Catalog, TableInfo
from engine.errors import PlanError, UnknownKeyError
from engine.hepool import ScoringPool
from engine.keystore import KeyStore
from engine.local import LocalAnswer, answer_aggregate
from engine.model import FeatureSpec
from engine.plan import AggregatePlan, Limits
from engine.policy import DEFAULT_K, quickstart_table
from engine.rpc import create_server, servicer_errors
from engine.scoring import HolderModel, check_features, feature_blocks, feature_exponents
from engine.source import TableSource, open_source
from protos.unseen.v1 import catalog_pb2, crypto_pb2, holder_pb2_grpc, query_pb2, score_pb2

__all__ = ["HolderNode", "HolderServicer", "serve_holder"]

log = logging.getLogger(__name__)


@dataclass
class HolderNode:
    name: str
    sources: dict[str, TableSource]
    tables: dict[str, TableInfo]
    keys: KeyStore = field(default_factory=KeyStore)
    limits: Limits = field(default_factory=Limits)
    vouchers_required: bool = False
    pool: ScoringPool = field(default_factory=ScoringPool)
    max_models: int = 16
    max_entities: int = 5_000_000
    _models: OrderedDict[str, HolderModel] = field(default_factory=OrderedDict)
    _models_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def quickstart(
        cls, name: str, tables: Mapping[str, Path], k: int = DEFAULT_K, workers: int = 0
    ) -> HolderNode:
        """A node serving ``tables`` with the permissive quick-start policy."""
        sources = {t: open_source(t, Path(p)) for t, p in tables.items()}
        infos = {t.lower(): quickstart_table(s, k) for t, s in sources.items()}
        log.warning(
            "holder %s runs in quick-start mode: every column may be filtered and "
            "aggregated with k=%d, and no voucher is required",
            name,
            k,
        )
        sources_by_name = {t.lower(): s for t, s in sources.items()}
        return cls(name, sources_by_name, infos, pool=ScoringPool(workers))

    def catalog(self) -> Catalog:
        return Catalog(self.name, tuple(self.tables.values()), self.vouchers_required)

    def aggregate(self, key_id: str, plan: AggregatePlan) -> LocalAnswer:
        table = self.tables.get(plan.table.lower())
        if table is None:
            raise PlanError(f"holder {self.name} serves no table {plan.table}")
        ctx = self.keys.get(key_id)
        return answer_aggregate(plan, self.sources[plan.table.lower()], table, ctx, self.limits)

    # -- scoring -------------------------------------------------------------------
    def prepare_model(self, features: tuple[FeatureSpec, ...]) -> list[int]:
        check_features(features, self.tables)
        return feature_exponents(features, self.sources, self.tables)

    def register_model(
        self,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str:
        check_features(features, self.tables)
        ctx = self.keys.get(key_id)
        slots = ckks.PARAMS.slots
        for data in weights:
            ckks.load_ciphertext(ctx, data, slots)  # refuse foreign or malformed weights
        model = HolderModel(model_id, key_id, features, exponents, weights)
        self.pool.register(model, self.keys.public_bytes(key_id), ctx)
        with self._models_lock:
            self._models[model_id] = model
            self._models.move_to_end(model_id)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        log.info("registered a model of %d features", len(features))
        return model_id

    def has_model(self, key_id: str, model_id: str) -> bool:
        with self._models_lock:
            model = self._models.get(model_id)
        return model is not None and model.key_id == key_id and key_id in self.keys

    def score(self, key_id: str, model_id: str, ids: list[str]) -> Iterator[bytes]:
        """Partial-score ciphertexts for ``ids`` in blocks of one ciphertext's slots."""
        with self._models_lock:
            model = self._models.get(model_id)
        if model is None or model.key_id != key_id:
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")
        self.keys.get(key_id)
        slots = ckks.PARAMS.slots
        blocks = feature_blocks(model.features, self.sources, self.tables, ids, slots)
        log.info("scoring %d entities with %d features", len(ids), len(model.features))
        return self.pool.partials(model, blocks, slots)


class HolderServicer(holder_pb2_grpc.HolderServicer):
    def __init__(self, node: HolderNode):
        self.node = node

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.node.catalog())

    @servicer_errors
    def RegisterKey(
        self, request_iterator: Iterator[crypto_pb2.KeyChunk], context: grpc.ServicerContext
    ) -> crypto_pb2.KeyAck:
        data = serde.join_key_chunks(request_iterator, ckks.MAX_PUBLIC_CONTEXT_BYTES)
        kid = self.node.keys.register(data)
        log.info("registered key %s", kid[:16])
        return crypto_pb2.KeyAck(key_id=kid, size=len(data))

    @servicer_errors
    def HasKey(
        self, request: crypto_pb2.HasKeyRequest, context: grpc.ServicerContext
    ) -> crypto_pb2.HasKeyReply:
        return crypto_pb2.HasKeyReply(known=request.key_id in self.node.keys)

    @servicer_errors
    def Aggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.AggregateReply]:
        plan = serde.plan_from_proto(request.plan)
        answer = self.node.aggregate(request.key_id, plan)
        yield serde.header_to_proto(len(answer.ciphertexts), answer.suppressed, [self.node.name])
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def PrepareModel(
        self, request: score_pb2.PrepareModelRequest, context: grpc.ServicerContext
    ) -> score_pb2.PrepareModelReply:
        features = tuple(serde.feature_from_proto(f) for f in request.features)
        return score_pb2.PrepareModelReply(exponents=self.node.prepare_model(features))

    @servicer_errors
    def RegisterModel(
        self, request_iterator: Iterator[score_pb2.ModelPart], context: grpc.ServicerContext
    ) -> score_pb2.ModelAck:
        key_id, model_id, features, exponents, weights = serde.model_from_parts(
            request_iterator, MAX_MODEL_BYTES
        )
        self.node.register_model(key_id, model_id, features, exponents, weights)
        return score_pb2.ModelAck(model_id=model_id)

    @servicer_errors
    def HasModel(
        self, request: score_pb2.HasModelRequest, context: grpc.ServicerContext
    ) -> score_pb2.HasModelReply:
        return score_pb2.HasModelReply(known=self.node.has_model(request.key_id, request.model_id))

    @servicer_errors
    def Score(
        self, request_iterator: Iterator[score_pb2.ScorePart], context: grpc.ServicerContext
    ) -> Iterator[score_pb2.ScoreReply]:
        model_id, key_id, ids = serde.score_request_from_parts(
            request_iterator, self.node.max_entities
        )
        slots = ckks.PARAMS.slots
        count = -(-len(ids) // slots)
        partials = self.node.score(key_id, model_id, ids)
        yield serde.score_reply_header(count, slots, [self.node.name])
        for index, data in enumerate(partials):
            yield serde.score_reply_ciphertext(index, data)


# Encrypted weights are ~0.4 MB each; 512 features is a generous ceiling.
MAX_MODEL_BYTES = 512 * (1 << 20)


def serve_holder(node: HolderNode, listen: str) -> tuple[grpc.Server, int]:
    """Start serving ``node`` on ``listen``; returns (server, port)."""
    servicer = HolderServicer(node)
    return create_server(
        listen,
        [lambda s: holder_pb2_grpc.add_HolderServicer_to_server(servicer, s)],
        ["unseen.v1.Holder"],
    )
