"""The holder node: a gRPC server over one department's own tables.

It publishes a catalog, registers analysts' public contexts and models, and
answers aggregate plans and score requests with ciphertexts only. Every use
of data passes the node's governance (vouchers, ledger, receipts; see
``unseen.engine.governance.access``). The servicer (:mod:`unseen.nodes.servicers`) is thin:
decode, call :class:`HolderNode`, encode.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from unseen.engine.config import NodeConfig, load_tables
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.crypto.workers import ScoringPool
from unseen.engine.data.aggregate import (
    LocalAnswer,
    PreparedAnswer,
    answer_masked,
    mask_only,
    prepare_aggregate,
)
from unseen.engine.data.pending import PendingAggregate, PendingAggregates
from unseen.engine.data.scaling import FeatureScaling
from unseen.engine.data.scoring import HolderModel, check_batch, check_features, feature_blocks
from unseen.engine.data.source import TableSource, open_source
from unseen.engine.data.warehouses.location import Location
from unseen.engine.errors import PlanError, PolicyError, UnknownKeyError
from unseen.engine.governance.access import Governance, aggregate_entities, digest, score_reads
from unseen.engine.governance.approval import feature_digest
from unseen.engine.governance.policy import DEFAULT_K, quickstart_table
from unseen.engine.governance.stewardship import Stewardship
from unseen.engine.governance.voucher import AccessRequest, entity_ids, plan_reads
from unseen.engine.privacy.dp_charge import charge_query
from unseen.engine.privacy.masks import MaskKey, Participant, pair_masks, query_context
from unseen.engine.privacy.participants import (
    DEFAULT_MIN_HOLDERS,
    certify_mask_key,
    check_participants,
)
from unseen.engine.query.catalog import Catalog, TableInfo
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan, Limits
from unseen.engine.training.psi import AlignAsk, PsiAnswer
from unseen.engine.training.train_job import TrainAnswer, TrainCall
from unseen.engine.transport import cancellation, serde
from unseen.engine.transport.memory_budget import MemoryBudget, entity_id_budget
from unseen.engine.transport.tls import TlsFiles
from unseen.nodes.alignment import answer_alignment
from unseen.nodes.training import HolderJobs

__all__ = ["HolderNode", "serve_holder"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


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
    max_entities: int = serde.MAX_ENTITIES
    scaling: FeatureScaling = field(default_factory=FeatureScaling)
    # Entity ids held at once by all calls together (unseen.engine.transport.memory_budget).
    entity_budget: MemoryBudget = field(default_factory=entity_id_budget)
    # Masked aggregates (unseen.engine.privacy.masks): this node's mask key, generated at start-up,
    # and the participant policy it applies before answering round 2.
    mask_key: MaskKey = field(default_factory=MaskKey.generate)
    min_holders: int = DEFAULT_MIN_HOLDERS
    pending: PendingAggregates = field(default_factory=PendingAggregates)
    _mask_identity: Participant | None = None
    _trusted_ca: bytes | None = None
    steward: Stewardship | None = None
    _models: OrderedDict[str, HolderModel] = field(default_factory=OrderedDict)
    _models_lock: threading.Lock = field(default_factory=threading.Lock)
    training: HolderJobs = field(default_factory=HolderJobs)  # joint training (issue 15)

    def __post_init__(self) -> None:
        if self.governance is None:
            self.governance = Governance(self.name)
        self._mask_identity = Participant(self.name, self.mask_key.public)

    def certify_mask_key(self, tls: TlsFiles) -> None:
        """Governed mode: sign the mask key with this node's TLS certificate key, and
        accept round-2 participants only with mask keys certified by the same CA."""
        cert, key, ca = tls.read()
        self._mask_identity = certify_mask_key(self.name, self.mask_key.public, cert, key)
        self._trusted_ca = ca

    @property
    def mask_identity(self) -> Participant:
        """The mask key this node publishes in its catalog (signed in governed mode)."""
        assert self._mask_identity is not None
        return self._mask_identity

    @property
    def gov(self) -> Governance:
        assert self.governance is not None
        return self.governance

    @classmethod
    def quickstart(
        cls, name: str, tables: Mapping[str, Location], k: int = DEFAULT_K, workers: int = 0
    ) -> HolderNode:
        """A node serving ``tables`` with the permissive quick-start policy."""
        sources = {t: open_source(t, p) for t, p in tables.items()}
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
        cls, config: NodeConfig, tables: Mapping[str, Location] | None = None, workers: int = 0
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
            min_holders=config.min_holders,
            steward=steward,
        )

    def catalog(self) -> Catalog:
        return Catalog(
            self.name, tuple(self.tables.values()), self.gov.required, mask_key=self.mask_identity
        )

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
    def prepare_aggregate(
        self,
        key_id: str,
        plan: AggregatePlan,
        query_id: str,
        vouchers: tuple[str, ...] = (),
        plan_bytes: bytes = b"",
        subject: str | None = None,
    ) -> tuple[dict[int, str], list[str]]:
        """Round 1: read the data once (charged and ledgered), keep the moments for
        round 2, answer the groups failing this holder's suppression rules, each
        with the first rule it fails (``unseen.engine.privacy.suppression``).

        A holder that does not serve the table takes part with masks only (a
        table hosted by one holder still needs a peer to mask its answer): it
        reads nothing, so nothing is charged or logged.
        """
        # Unknown keys, or keys without a BFV part, fail before anything is logged.
        ctx = self.keys.aggregate_context(key_id)
        # A table held back for its registration is refused (and ledgered), not
        # mistaken for one this holder does not serve.
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
        table = self.tables.get(plan.table.lower())
        receipts: list[str] = []
        federation = None
        if table is None:
            prepared = mask_only(plan, ctx, self.limits)
        else:
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
            federation = self._voucher_federation(request, vouchers)
            charges: list[str] = []

            def answer() -> PreparedAnswer:
                if table.dp is not None:  # dp: charge the budget before reading anything
                    charges.append(charge_query(self.gov, request, vouchers, plan, table.dp))
                return prepare_aggregate(plan, source, table, ctx, self.limits)

            prepared, receipts = self.gov.run(
                request,
                vouchers,
                answer,
                # What left the holder in round 1, tied to the query its masks bind to.
                lambda prepared: json.dumps(
                    {"query": query_id, "failing": sorted(prepared.failing)}
                ).encode(),
            )
            receipts = charges + receipts
        entry = PendingAggregate(
            key_id, plan, digest(plan_bytes), prepared, time.monotonic(), federation
        )
        self.pending.put(query_id, entry)
        return {i: prepared.reasons.get(i, "") for i in prepared.failing}, receipts

    def _voucher_federation(
        self, request: AccessRequest, vouchers: tuple[str, ...]
    ) -> frozenset[str] | None:
        """The holders the voucher admitting ``request`` names as its federation.

        The same choice :meth:`Governance.run` makes next; a voucher it refuses
        is refused there, with the reason logged, so errors are left to it.
        """
        try:
            signed = self.gov.choose(request, vouchers)
        except PolicyError:
            return None
        return None if signed is None else signed.voucher.federation

    def aggregate(
        self,
        key_id: str,
        query_id: str,
        nonce: bytes,
        participants: tuple[Participant, ...],
        suppressed: frozenset[int],
    ) -> LocalAnswer:
        """Round 2: check the participants, zero the suppressed groups, mask, encrypt.

        No data is read here: the moments are round 1's, taken once.
        """
        ctx = self.keys.aggregate_context(key_id)
        entry = self.pending.take(query_id, key_id, nonce)
        check_participants(
            self.mask_identity,
            participants,
            self.min_holders,
            self._trusted_ca,
            entry.federation,
        )
        context = query_context(entry.plan_digest, query_id, participants, suppressed)

        def masks(length: int) -> np.ndarray:
            return pair_masks(self.mask_key, self.name, participants, nonce, context, length)

        return answer_masked(
            entry.plan,
            entry.prepared,
            suppressed,
            masks,
            ctx,
            self.limits,
            lambda vectors: self.pool.encrypt(
                key_id, self.keys.aggregate_public(key_id), ctx, vectors
            ),
        )

    # -- entity alignment (issue 15) --------------------------------------------------
    def align(self, ask: AlignAsk, subject: str | None = None) -> tuple[PsiAnswer, list[str]]:
        """Answer a PSI request over the entity column ``ask.table.ask.column``."""
        table = self._table(ask.table)
        source = self.sources[ask.table.lower()]
        return answer_alignment(self.gov, source, table, ask, subject)

    def train(
        self, call: TrainCall, subject: str | None = None, role: str | None = None
    ) -> TrainAnswer:
        """One step of a vertical logistic regression job (see unseen.nodes.training)."""
        return self.training.handle(self, call, subject, role)

    # -- scoring -------------------------------------------------------------------
    def _score_request(
        self,
        kind: str,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        extra: str,
        subject: str | None,
        model: frozenset[str] | None = None,
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
            model=model,
        )

    def prepare_model(
        self,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: tuple[str, ...] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Power-of-two bounds of the features over the whole table, never over ``ids``.

        The ids are checked against the vouchers (entity scope) and the step is
        charged like any request, but the answer does not depend on them.
        """
        request = self._score_request("prepare", key_id, features, ids, "", subject)
        self._refuse_unserved([f.table for f in features], request)
        for feature in features:
            self._table(feature.table)

        def answer() -> list[int]:
            check_features(features, self.tables)
            return self.scaling.exponents(features, self.sources, self.tables)

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
        digests = tuple(
            feature_digest(serde.feature_bytes(f), e, w)
            for f, e, w in zip(features, exponents, weights, strict=True)
        )
        model = HolderModel(model_id, key_id, features, exponents, weights, digests)
        # The pool refuses weights that are not fresh ciphertexts under this key.
        self.pool.register(model, self.keys.ckks_public(key_id), ctx)
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

    def register_key(self, public: bytes, deadline: float | None = None) -> str:
        """Vet and keep an analyst's public context; returns its key id."""
        kid = self.keys.register(public)
        log.info("registered key %s", kid[:16])
        return kid

    def require_model(self, key_id: str, model_id: str) -> None:
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
        request = self._score_request(
            "score", key_id, model.features, ids, model_id, subject, frozenset(model.digests)
        )
        slots = ckks.PARAMS.slots
        log.info("scoring %d entities with %d features", len(ids), len(model.features))

        def stream() -> Iterator[bytes]:
            check_batch(model.features, self.tables, ids)
            blocks = feature_blocks(model.features, self.sources, self.tables, ids, slots)
            return self.pool.partials(model, _until_cancelled(blocks), slots)

        if self.gov.ledger is None:
            # Nothing to log: the checks run now, the blocks as they are read.
            return self.gov.run(request, vouchers, stream, lambda _: b"")
        blocks, receipts = self.gov.run(request, vouchers, lambda: list(stream()), list)
        return iter(blocks), receipts

    # -- callers -------------------------------------------------------------------
    def refuse_caller(
        self, kind: str, role: str | None, key_id: str = "", plan: bytes = b""
    ) -> None:
        """Refuse (and log) a query RPC from a peer not certified as the coordinator.

        With mTLS on, only the coordinator may ask a holder for data: an
        analyst calling directly would decrypt this holder's own subtotals,
        which the federation's answer never shows. The refusal is ledgered
        like any other, before anything is read.
        """
        refusal = PolicyError(
            f"holder {self.name} answers {kind} requests only to the coordinator; "
            f"the caller's certificate says {role or 'no single role'}"
        )
        request = AccessRequest(
            analyst=key_id,
            holder=self.name,
            kind=kind,
            plan_digest=digest(plan) if plan else "",
            reads={},
            entities=None,
        )
        raise self.gov.refuse(request, refusal)

    # -- supervision ---------------------------------------------------------------
    def read_ledger(self, request: dict[str, object], signature: bytes) -> tuple[str, str]:
        return self.gov.read_ledger(request, signature, dt.datetime.now(dt.UTC))


def _until_cancelled(blocks: Iterator[_T]) -> Iterator[_T]:
    """The blocks of a score, read only while its caller still waits for them."""
    for block in blocks:
        cancellation.checkpoint()
        yield block


def serve_holder(
    node: HolderNode, listen: str, tls: TlsFiles | None = None, metrics: Any = None
) -> Any:
    """Start serving ``node`` on ``listen``; returns (server, port).

    The gRPC servicer lives at the transport edge (:mod:`unseen.nodes.servicers`);
    this name stays here for the callers that start a holder.
    """
    from unseen.nodes.servicers import serve_holder as serve  # the edge imports us, not we it

    return serve(node, listen, tls, metrics=metrics)
