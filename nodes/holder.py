"""The holder node: a gRPC server over one department's own tables.

It publishes a catalog, registers analysts' public contexts, and answers
aggregate plans with ciphertexts only (see ``engine.local``). The servicer is
thin: decode, call :class:`HolderNode`, encode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from engine import ckks, serde
from engine.catalog import Catalog, TableInfo
from engine.errors import PlanError
from engine.keystore import KeyStore
from engine.local import LocalAnswer, answer_aggregate
from engine.plan import AggregatePlan, Limits
from engine.policy import DEFAULT_K, quickstart_table
from engine.rpc import create_server, servicer_errors
from engine.source import TableSource, open_source
from protos.unseen.v1 import catalog_pb2, crypto_pb2, holder_pb2_grpc, query_pb2

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

    @classmethod
    def quickstart(cls, name: str, tables: Mapping[str, Path], k: int = DEFAULT_K) -> HolderNode:
        """A node serving ``tables`` with the permissive quick-start policy."""
        sources = {t: open_source(t, Path(p)) for t, p in tables.items()}
        infos = {t.lower(): quickstart_table(s, k) for t, s in sources.items()}
        log.warning(
            "holder %s runs in quick-start mode: every column may be filtered and "
            "aggregated with k=%d, and no voucher is required",
            name,
            k,
        )
        return cls(name, {t.lower(): s for t, s in sources.items()}, infos)

    def catalog(self) -> Catalog:
        return Catalog(self.name, tuple(self.tables.values()), self.vouchers_required)

    def aggregate(self, key_id: str, plan: AggregatePlan) -> LocalAnswer:
        table = self.tables.get(plan.table.lower())
        if table is None:
            raise PlanError(f"holder {self.name} serves no table {plan.table}")
        ctx = self.keys.get(key_id)
        return answer_aggregate(plan, self.sources[plan.table.lower()], table, ctx, self.limits)


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


def serve_holder(node: HolderNode, listen: str) -> tuple[grpc.Server, int]:
    """Start serving ``node`` on ``listen``; returns (server, port)."""
    servicer = HolderServicer(node)
    return create_server(
        listen,
        [lambda s: holder_pb2_grpc.add_HolderServicer_to_server(servicer, s)],
        ["unseen.v1.Holder"],
    )
