"""The holder node: a gRPC server over one department's own tables.

It publishes a catalog, registers analysts' public contexts and models, and
answers aggregate plans and score requests with ciphertexts only. Every use
of data passes the node's governance (vouchers, ledger, receipts; see
``engine.governance``). The servicer is thin: decode, call
:class:`HolderNode`, encode.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from engine import ckks, serde
from engine.catalog import Catalog, TableInfo
from engine.config import NodeConfig, load_tables
from engine.errors import PlanError, PolicyError, UnknownKeyError
from engine.governance import Governance, aggregate_entities, digest, score_reads
from engine.hepool import ScoringPool
from engine.keystore import KeyStore
from engine.local import LocalAnswer, answer_aggregate
from engine.model import FeatureSpec
from engine.plan import AggregatePlan, Limits
from engine.policy import DEFAULT_K, quickstart_table
from engine.rpc import create_server, servicer_errors
from engine.scoring import HolderModel, check_features, feature_blocks, feature_exponents
from engine.source import TableSource, open_source
from engine.stewardship import Stewardship
from engine.tls import ANALYST_SUBJECT_HEADER, TlsFiles, caller_identity
from engine.voucher import AccessRequest, entity_ids, plan_reads
from protos.unseen.v1 import (
    audit_pb2,
    catalog_pb2,
    crypto_pb2,
    holder_pb2_grpc,
    query_pb2,
    score_pb2,
)

__all__ = ["HolderNode", "HolderServicer", "serve_holder"]

log = logging.getLogger(__name__)


@dataclass
class HolderNode:
    name: str
    sources: dict[str, TableSource]
    tables: dict[str, TableInfo]
    keys: KeyStore = field(default_factory=KeyStore)
    limits: Limits = field(default_factory=Limits)
    governance: Governance | None = None
    pool: ScoringPool = field(default_factory=ScoringPool)
    max_models: int = 16
    max_entities: int = 5_000_000
    steward: Stewardship | None = None
    _models: OrderedDict[str, HolderModel] = field(default_factory=OrderedDict)
    _models_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.governance is None:
            self.governance = Governance(self.name)

    @property
    def gov(self) -> Governance:
        assert self.governance is not None
        return self.governance

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

    @classmethod
    def from_config(
        cls, config: NodeConfig, tables: Mapping[str, Path] | None = None, workers: int = 0
    ) -> HolderNode:
        """A node as its config file describes it (policies, vouchers, ledger)."""
        if not config.name:
            raise PlanError("the node has no name: set [node] name or --name")
        sources, infos = load_tables(config, tables)
        steward, infos = Stewardship.from_config(
            config, infos, {k: list(s.schema()) for k, s in sources.items()}
        )
        gov = config.governance
        governance = Governance(
            config.name,
            gov.voucher_policy(),
            gov.open_ledger(config.name),
            gov.supervisors,
            steward=steward.check,
        )
        steward.log_registrations(governance.ledger)
        if not gov.require_vouchers:
            log.warning("holder %s does not require vouchers (config)", config.name)
        return cls(
            config.name,
            sources,
            infos,
            governance=governance,
            pool=ScoringPool(workers),
            steward=steward,
        )

    def catalog(self) -> Catalog:
        return Catalog(self.name, tuple(self.tables.values()), self.gov.required)

    def _refuse_unserved(self, tables: list[str], request: AccessRequest) -> None:
        """A table held back for its registration: refused with the reason, and ledgered."""
        for name in tables:
            reason = self.steward.unserved.get(name.lower()) if self.steward else None
            if reason is not None:
                raise self.gov.refuse(request, PolicyError(reason))

    def _table(self, name: str) -> TableInfo:
        table = self.tables.get(name.lower())
        if table is None:
            raise PlanError(f"holder {self.name} serves no table {name}")
        return table

    # -- aggregates ----------------------------------------------------------------
    def aggregate(
        self,
        key_id: str,
        plan: AggregatePlan,
        vouchers: tuple[str, ...] = (),
        plan_bytes: bytes = b"",
        subject: str | None = None,
    ) -> tuple[LocalAnswer, list[str]]:
        self.keys.get(key_id)  # unknown keys fail before anything is logged
        self._refuse_unserved(
            [plan.table],
            AccessRequest(
                analyst=key_id,
                holder=self.name,
                kind="aggregate",
                plan_digest=digest(plan_bytes),
                reads=plan_reads(plan),
                subject=subject,
            ),
        )
        table = self._table(plan.table)
        ctx = self.keys.get(key_id)
        request = AccessRequest(
            analyst=key_id,
            holder=self.name,
            kind="aggregate",
            plan_digest=digest(plan_bytes),
            reads=plan_reads(plan),
            entities=aggregate_entities(plan, table),
            subject=subject,
        )
        source = self.sources[plan.table.lower()]
        return self.gov.run(
            request,
            vouchers,
            lambda: answer_aggregate(
                plan,
                source,
                table,
                ctx,
                self.limits,
                lambda vectors: self.pool.encrypt(
                    key_id, self.keys.public_bytes(key_id), ctx, vectors
                ),
            ),
            lambda answer: list(answer.ciphertexts),
        )

    # -- scoring -------------------------------------------------------------------
    def _score_request(
        self,
        kind: str,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        extra: str,
        subject: str | None,
    ) -> AccessRequest:
        canonical = json.dumps(
            {
                "features": [
                    f"{f.table}.{f.column}:{f.key}:{f.aggregate}:{f.transform}" for f in features
                ],
                "model": extra,
                "entities": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            },
            sort_keys=True,
        ).encode()
        return AccessRequest(
            analyst=key_id,
            holder=self.name,
            kind=kind,
            plan_digest=digest(canonical),
            reads=score_reads(features),
            entities=entity_ids(ids),
            subject=subject,
        )

    def prepare_model(
        self,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: tuple[str, ...] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Power-of-two bounds of the features over the requested entities."""
        request = self._score_request("prepare", key_id, features, ids, "", subject)
        self._refuse_unserved([f.table for f in features], request)
        for feature in features:
            self._table(feature.table)

        def answer() -> list[int]:
            check_features(features, self.tables)
            return feature_exponents(features, self.sources, self.tables, ids)

        return self.gov.run(request, vouchers, answer, lambda e: json.dumps(e).encode())

    def register_model(
        self,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str:
        """Keep a model's encrypted weights. The first registration of an id wins:
        ids are keyed fingerprints of the whole model, so nobody without the
        analyst's salt can swap the weights behind an id the analyst uses."""
        if self.has_model(key_id, model_id):
            return model_id
        check_features(features, self.tables)
        ctx = self.keys.get(key_id)
        model = HolderModel(model_id, key_id, features, exponents, weights)
        # The pool refuses weights that are not fresh ciphertexts under this key.
        self.pool.register(model, self.keys.public_bytes(key_id), ctx)
        with self._models_lock:
            self._models[model_id] = model
            self._models.move_to_end(model_id)
            evicted = []
            while len(self._models) > self.max_models:
                evicted.append(self._models.popitem(last=False)[0])
        for old in evicted:
            self.pool.unregister(old)
        log.info("registered a model of %d features", len(features))
        return model_id

    def require_model(self, model_id: str, key_id: str) -> None:
        """Refuse a score for an unknown model before reading its entities (NOT_FOUND
        makes the coordinator register it again)."""
        if not self.has_model(key_id, model_id):
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")

    def has_model(self, key_id: str, model_id: str) -> bool:
        with self._models_lock:
            model = self._models.get(model_id)
        return model is not None and model.key_id == key_id and key_id in self.keys

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: list[str],
        vouchers: tuple[str, ...] = (),
        subject: str | None = None,
    ) -> tuple[Iterator[bytes], list[str]]:
        """Partial-score ciphertexts for ``ids`` in blocks, and the ledger receipts.

        Without a ledger the blocks stream as they are computed. With one, the
        whole answer is computed first, because the ledger entry (and the
        quota it consumes) must commit before any of the answer may leave.
        """
        with self._models_lock:
            model = self._models.get(model_id)
        if model is None or model.key_id != key_id:
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")
        self.keys.get(key_id)
        request = self._score_request("score", key_id, model.features, ids, model_id, subject)
        slots = ckks.PARAMS.slots
        log.info("scoring %d entities with %d features", len(ids), len(model.features))

        def stream() -> Iterator[bytes]:
            blocks = feature_blocks(model.features, self.sources, self.tables, ids, slots)
            return self.pool.partials(model, blocks, slots)

        if self.gov.ledger is None:
            # Nothing to log: the checks run now, the blocks as they are read.
            return self.gov.run(request, vouchers, stream, lambda _: b"")
        blocks, receipts = self.gov.run(request, vouchers, lambda: list(stream()), list)
        return iter(blocks), receipts

    # -- supervision ---------------------------------------------------------------
    def read_ledger(self, request: dict[str, object], signature: bytes) -> tuple[str, str]:
        return self.gov.read_ledger(request, signature, dt.datetime.now(dt.timezone.utc))


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
        answer, receipts = self.node.aggregate(
            request.key_id,
            plan,
            tuple(request.vouchers),
            request.plan.SerializeToString(),
            _subject(context),
        )
        yield serde.header_to_proto(
            len(answer.ciphertexts), answer.suppressed, [self.node.name], receipts
        )
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def PrepareModel(
        self, request_iterator: Iterator[score_pb2.PreparePart], context: grpc.ServicerContext
    ) -> score_pb2.PrepareModelReply:
        key_id, features, ids, vouchers = serde.prepare_from_parts(
            request_iterator, self.node.max_entities, self.node.keys.get
        )
        exponents, receipts = self.node.prepare_model(
            key_id, features, ids, vouchers, _subject(context)
        )
        return score_pb2.PrepareModelReply(exponents=exponents, receipts=receipts)

    @servicer_errors
    def RegisterModel(
        self, request_iterator: Iterator[score_pb2.ModelPart], context: grpc.ServicerContext
    ) -> score_pb2.ModelAck:
        key_id, model_id, features, exponents, weights = serde.model_from_parts(
            request_iterator, serde.MAX_MODEL_BYTES, self.node.keys.get
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
        model_id, key_id, ids, vouchers = serde.score_request_from_parts(
            request_iterator, self.node.max_entities, self.node.require_model
        )
        slots = ckks.PARAMS.slots
        count = -(-len(ids) // slots)
        partials, receipts = self.node.score(key_id, model_id, ids, vouchers, _subject(context))
        yield serde.score_reply_header(count, slots, [self.node.name], receipts)
        for index, data in enumerate(partials):
            yield serde.score_reply_ciphertext(index, data)

    @servicer_errors
    def ReadLedger(
        self, request: audit_pb2.ReadLedgerRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ReadLedgerReply:
        fields = {
            "holder": self.node.name,
            "start": request.start,
            "end": request.end,
            "issued_at": request.issued_at,
            "supervisor": request.supervisor_key_id,
        }
        ledger_range, checkpoint = self.node.read_ledger(fields, request.signature)
        return audit_pb2.ReadLedgerReply(range=ledger_range, checkpoint=checkpoint)


def _subject(context: grpc.ServicerContext) -> str | None:
    """The analyst's certificate name: its own when it calls directly, or the one a
    coordinator (authenticated as such by its certificate) forwards. Without mTLS
    there is none, whatever the request's metadata claims."""
    name, role = caller_identity(context)
    if role == "analyst":
        return name
    if role == "coordinator":
        forwarded = dict(context.invocation_metadata()).get(ANALYST_SUBJECT_HEADER)
        return str(forwarded) if forwarded else None
    return None


def serve_holder(
    node: HolderNode, listen: str, tls: TlsFiles | None = None
) -> tuple[grpc.Server, int]:
    """Start serving ``node`` on ``listen``; returns (server, port)."""
    servicer = HolderServicer(node)
    return create_server(
        listen,
        [lambda s: holder_pb2_grpc.add_HolderServicer_to_server(servicer, s)],
        ["unseen.v1.Holder"],
        tls=tls,
    )
