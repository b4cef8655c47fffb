"""The gRPC servicers of the holder and the coordinator: the servers' transport edge.

A servicer decodes a request (:mod:`unseen.engine.transport.serde`), calls one domain method
of :class:`~unseen.nodes.holder.HolderNode` or :class:`~unseen.nodes.coordinator.Coordinator`,
and encodes the reply; exceptions become statuses in one place
(:func:`unseen.engine.transport.rpc.servicer_errors`). The methods both services share —
RegisterKey, HasKey, PrepareModel, RegisterModel, HasModel — are written once
(:class:`_SharedMethods`); the two servicers differ only in whose analyst
identity a call carries (:func:`holder_subject`, :func:`analyst_subject`).

This module and ``engine/{serde,rpc,peers,tls}.py`` are the only ones that
touch generated protobuf or gRPC types (tests/unit/test_code_quality.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from unseen.engine.crypto import ckks
from unseen.engine.errors import PolicyError
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.model import FeatureSpec
from unseen.engine.transport import serde
from unseen.engine.transport.memory_budget import MemoryBudget
from unseen.engine.transport.peers import EncodedPlan
from unseen.engine.transport.rpc import create_server, servicer_errors
from unseen.engine.transport.telemetry import NodeMetrics
from unseen.engine.transport.tls import ANALYST_SUBJECT_HEADER, TlsFiles, caller, caller_identity
from unseen.v1 import (
    align_pb2,
    audit_pb2,
    catalog_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    crypto_pb2,
    holder_pb2,
    holder_pb2_grpc,
    mask_pb2,
    query_pb2,
    score_pb2,
    train_pb2,
)

if TYPE_CHECKING:
    from unseen.engine.crypto.keystore import KeyStore
    from unseen.nodes.city import CityHolder
    from unseen.nodes.coordinator import Coordinator
    from unseen.nodes.holder import HolderNode

__all__ = [
    "COORDINATOR_SERVICE",
    "HOLDER_SERVICE",
    "CityServicer",
    "CoordinatorServicer",
    "HolderServicer",
    "analyst_subject",
    "coordinator_only",
    "holder_subject",
    "serve_coordinator",
    "serve_holder",
]

# Taken from the descriptors, not spelled out: importing the *_pb2 modules that
# define the services is what puts their files in the descriptor pool that
# reflection answers from (the *_pb2_grpc modules import only the message files).
HOLDER_SERVICE = holder_pb2.DESCRIPTOR.services_by_name["Holder"].full_name
COORDINATOR_SERVICE = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name


class _Party(Protocol):
    """What both a holder node and the coordinator offer for keys and models."""

    keys: KeyStore
    max_entities: int
    entity_budget: MemoryBudget

    def register_key(self, public: bytes, deadline: float | None = None) -> str: ...

    def prepare_model(
        self,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: tuple[str, ...] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]: ...

    def register_model(
        self,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str: ...

    def has_model(self, key_id: str, model_id: str) -> bool: ...


def budget(context: grpc.ServicerContext) -> float | None:
    """What is left of the caller's deadline, less a margin for composing the answer."""
    remaining = context.time_remaining()
    return None if remaining is None else max(1.0, remaining * 0.9)


def analyst_subject(context: grpc.ServicerContext) -> str | None:
    """The analyst's certificate name, when the caller authenticated as an analyst."""
    name, role = caller_identity(context)
    return name if role == "analyst" else None


def holder_subject(context: grpc.ServicerContext) -> str | None:
    """The analyst's certificate name, as the coordinator (authenticated as such by its
    certificate; no one else gets this far, see :func:`coordinator_only`) forwards it.
    Without mTLS there is none, whatever the request's metadata claims."""
    if caller(context).role != "coordinator":
        return None
    forwarded = dict(context.invocation_metadata()).get(ANALYST_SUBJECT_HEADER)
    return str(forwarded) if forwarded else None


def coordinator_only(
    node: HolderNode, context: grpc.ServicerContext, kind: str, key_id: str = "", plan: bytes = b""
) -> None:
    """Let a holder's query RPC through only from the coordinator (when mTLS says who
    calls); a refusal is ledgered (:meth:`HolderNode.refuse_caller`).

    Without TLS (loopback quick-start) no caller can be told apart; the
    threat model states that limit.
    """
    who = caller(context)
    if who.authenticated and who.role != "coordinator":
        node.refuse_caller(kind, who.role, key_id, plan)


class _SharedMethods:
    """RegisterKey, HasKey, PrepareModel, RegisterModel and HasModel, for either service."""

    party: _Party
    subject: Callable[[grpc.ServicerContext], str | None]

    def admit(self, context: grpc.ServicerContext, kind: str) -> None:
        """Refuse a caller that may not make a ``kind`` request (the holder's check)."""

    @servicer_errors
    def RegisterKey(
        self, request_iterator: Iterator[crypto_pb2.KeyChunk], context: grpc.ServicerContext
    ) -> crypto_pb2.KeyAck:
        data = serde.join_key_chunks(request_iterator, ckks.MAX_PUBLIC_CONTEXT_BYTES)
        kid = self.party.register_key(data, budget(context))
        return serde.key_ack(kid, len(data))

    @servicer_errors
    def HasKey(
        self, request: crypto_pb2.HasKeyRequest, context: grpc.ServicerContext
    ) -> crypto_pb2.HasKeyReply:
        return serde.has_key_reply(request.key_id in self.party.keys)

    @servicer_errors
    def PrepareModel(
        self, request_iterator: Iterator[score_pb2.PreparePart], context: grpc.ServicerContext
    ) -> score_pb2.PrepareModelReply:
        self.admit(context, "prepare")
        with self.party.entity_budget.account() as charge:
            key_id, features, ids, vouchers = serde.prepare_from_parts(
                request_iterator, self.party.max_entities, self.party.keys.get, charge
            )
            exponents, receipts = self.party.prepare_model(
                key_id, features, ids, vouchers, self.subject(context)
            )
        return serde.prepare_reply(exponents, receipts)

    @servicer_errors
    def RegisterModel(
        self, request_iterator: Iterator[score_pb2.ModelPart], context: grpc.ServicerContext
    ) -> score_pb2.ModelAck:
        self.admit(context, "register_model")
        key_id, model_id, features, exponents, weights = serde.model_from_parts(
            request_iterator, serde.MAX_MODEL_BYTES, self.party.keys.get
        )
        self.party.register_model(key_id, model_id, features, exponents, weights)
        return serde.model_ack(model_id)

    @servicer_errors
    def HasModel(
        self, request: score_pb2.HasModelRequest, context: grpc.ServicerContext
    ) -> score_pb2.HasModelReply:
        return serde.has_model_reply(self.party.has_model(request.key_id, request.model_id))


class HolderServicer(_SharedMethods, holder_pb2_grpc.HolderServicer):
    subject = staticmethod(holder_subject)

    def __init__(self, node: HolderNode):
        self.node = node
        self.party = node
        self._digest: tuple[Catalog, str] | None = None  # the last catalog digested

    def _catalog_digest(self) -> str:
        """The digest of the catalog the node publishes now (recomputed when it changes)."""
        catalog = self.node.catalog()
        last = self._digest
        if last is None or last[0] != catalog:
            last = (catalog, serde.catalog_digest(catalog))
            self._digest = last
        return last[1]

    def admit(self, context: grpc.ServicerContext, kind: str) -> None:
        coordinator_only(self.node, context, kind)

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.node.catalog())

    @servicer_errors
    def PrepareAggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> mask_pb2.PrepareAggregateReply:
        # Round 1 reads the data: only the coordinator may ask (an analyst with the
        # secret key would decrypt this holder's own answer).
        coordinator_only(
            self.node,
            context,
            "aggregate",
            request.key_id,
            request.plan.SerializeToString(deterministic=True),
        )
        plan = serde.plan_from_proto(request.plan)
        failing, receipts = self.node.prepare_aggregate(
            request.key_id,
            plan,
            request.request_id,
            tuple(request.vouchers),
            # Deterministic: every participant digests the plan into its masks the same way.
            request.plan.SerializeToString(deterministic=True),
            holder_subject(context),
        )
        # The coordinator answers from a cached catalog; this tells it whether that
        # copy (mask key included) is still the one this holder publishes.
        return serde.failing_groups_reply(
            request.request_id, failing, receipts, self._catalog_digest()
        )

    @servicer_errors
    def Aggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.AggregateReply]:
        coordinator_only(self.node, context, "aggregate", request.key_id)
        nonce, participants, suppressed = serde.mask_round_from_proto(request)
        answer = self.node.aggregate(
            request.key_id, request.request_id, nonce, participants, suppressed
        )
        yield serde.header_to_proto(len(answer.ciphertexts), answer.suppressed, [self.node.name])
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def Score(
        self, request_iterator: Iterator[score_pb2.ScorePart], context: grpc.ServicerContext
    ) -> Iterator[score_pb2.ScoreReply]:
        coordinator_only(self.node, context, "score")
        with self.node.entity_budget.account() as charge:
            key_id, model_id, ids, vouchers = serde.score_request_from_parts(
                request_iterator, self.node.max_entities, self.node.require_model, charge
            )
            slots = ckks.PARAMS.slots
            count = -(-len(ids) // slots)
            partials, receipts = self.node.score(
                key_id, model_id, ids, vouchers, holder_subject(context)
            )
            yield serde.score_reply_header(count, slots, [self.node.name], receipts)
            for index, data in enumerate(partials):
                yield serde.score_reply_ciphertext(index, data)

    # -- entity alignment (issue 15) --------------------------------------------------
    @servicer_errors
    def Align(
        self, request: align_pb2.AlignRequest, context: grpc.ServicerContext
    ) -> align_pb2.AlignReply:
        answer, receipts = self.node.align(serde.align_from_proto(request), holder_subject(context))
        return serde.align_reply(self.node.name, answer, receipts)

    @servicer_errors
    def Train(
        self, request: train_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> train_pb2.TrainReply:
        call = serde.train_call_from_proto(request)
        _, role = caller_identity(context)
        answer = self.node.train(call, holder_subject(context), role)
        return serde.train_answer_to_proto(answer)

    @servicer_errors
    def ReadLedger(
        self, request: audit_pb2.ReadLedgerRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ReadLedgerReply:
        fields = {"holder": self.node.name, **serde.ledger_request_fields(request)}
        ledger_range, checkpoint = self.node.read_ledger(fields, request.signature)
        return serde.ledger_reply(ledger_range, checkpoint)


class CoordinatorServicer(_SharedMethods, coordinator_pb2_grpc.CoordinatorServicer):
    subject = staticmethod(analyst_subject)

    def __init__(self, coordinator: Coordinator):
        self.coordinator = coordinator
        self.party = coordinator

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.coordinator.catalog(budget(context)))

    @servicer_errors
    def Aggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.AggregateReply]:
        plan = serde.plan_from_proto(request.plan)
        answer = self.coordinator.aggregate(
            request.key_id,
            plan,
            budget(context),
            tuple(request.vouchers),
            analyst_subject(context),
            allow_partial=request.allow_partial,
        )
        yield serde.header_to_proto(
            len(answer.ciphertexts),
            answer.suppressed,
            answer.holders,
            answer.receipts,
            answer.missing,
            answer.reasons,
        )
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def Score(
        self, request_iterator: Iterator[score_pb2.ScorePart], context: grpc.ServicerContext
    ) -> Iterator[score_pb2.ScoreReply]:
        key_id, model_id, ids, vouchers = serde.score_request_from_parts(
            request_iterator, self.coordinator.max_entities, self.coordinator.require_model
        )
        answer = self.coordinator.score(
            key_id, model_id, ids, budget(context), vouchers, analyst_subject(context)
        )
        yield serde.score_reply_header(
            answer.count, ckks.PARAMS.slots, answer.holders, answer.receipts
        )
        for index, data in enumerate(answer.blocks):
            yield serde.score_reply_ciphertext(index, data)

    # -- entity alignment (issue 15) --------------------------------------------------
    @servicer_errors
    def Align(
        self, request: align_pb2.AlignRequest, context: grpc.ServicerContext
    ) -> align_pb2.AlignReply:
        holder, answer, receipts = self.coordinator.align(
            serde.align_from_proto(request), budget(context), analyst_subject(context)
        )
        return serde.align_reply(holder, answer, receipts)

    @servicer_errors
    def Train(
        self, request: train_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> train_pb2.TrainReply:
        call = serde.train_call_from_proto(request)
        answer = self.coordinator.train(call, budget(context), analyst_subject(context))
        return serde.train_answer_to_proto(answer)


# -- hierarchy (issue 14.1): a city coordinator's holder face ---------------------


def _from_coordinator(context: grpc.ServicerContext) -> None:
    """Under mTLS, only a peer certified as a coordinator (the province) may ask a city."""
    who = caller(context)
    if who.authenticated and who.role != "coordinator":
        raise PolicyError("a city coordinator answers the holder service only to a coordinator")


class CityServicer(_SharedMethods, holder_pb2_grpc.HolderServicer):
    """The holder service a city coordinator answers its provincial coordinator with.

    GetCatalog, RegisterKey, HasKey, PrepareAggregate, Aggregate and ReadLedger
    are relayed (:class:`~unseen.nodes.city.CityHolder`); the scoring, model,
    alignment and training RPCs answer UNIMPLEMENTED.
    """

    subject = staticmethod(holder_subject)

    def __init__(self, city: CityHolder):
        self.city = city
        self.party = city.coordinator

    def _unimplemented(self, context: grpc.ServicerContext) -> Any:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"city coordinator {self.city.name} relays only aggregates to the province; "
            "score, train and align at the city's own coordinator",
        )

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.city.catalog(budget(context)))

    @servicer_errors
    def PrepareAggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> mask_pb2.PrepareAggregateReply:
        _from_coordinator(context)
        plan = serde.plan_from_proto(request.plan)
        failing, receipts = self.city.prepare_aggregate(
            request.key_id,
            plan,
            EncodedPlan(request.plan),  # forwarded as received: the leaves digest these bytes
            request.request_id,
            tuple(request.vouchers),
            request.plan.SerializeToString(deterministic=True),
            holder_subject(context),
            budget(context),
        )
        # The city's catalog as this round saw its holders (their mask keys included).
        published = self.city.round_catalog(request.request_id)
        return serde.failing_groups_reply(
            request.request_id,
            failing,
            receipts,
            "" if published is None else serde.catalog_digest(published),
        )

    @servicer_errors
    def Aggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.AggregateReply]:
        _from_coordinator(context)
        nonce, participants, suppressed = serde.mask_round_from_proto(request)
        ciphertexts = self.city.aggregate(
            request.key_id,
            request.request_id,
            nonce,
            participants,
            suppressed,
            holder_subject(context),
            budget(context),
        )
        yield serde.header_to_proto(len(ciphertexts), sorted(suppressed), [self.city.name])
        for index, data in enumerate(ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def ReadLedger(
        self, request: audit_pb2.ReadLedgerRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ReadLedgerReply:
        fields = {"holder": self.city.name, **serde.ledger_request_fields(request)}
        ledger_range, checkpoint = self.city.read_ledger(fields, request.signature)
        return serde.ledger_reply(ledger_range, checkpoint)

    def PrepareModel(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def RegisterModel(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Score(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Align(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)

    def Train(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._unimplemented(context)


def serve_holder(
    node: HolderNode,
    listen: str,
    tls: TlsFiles | None = None,
    max_concurrent: int = 64,
    metrics: NodeMetrics | None = None,
) -> tuple[Any, int]:
    """Start serving ``node`` on ``listen``; returns (server, port).

    Beyond ``max_concurrent`` calls in flight the node sheds new ones with
    RESOURCE_EXHAUSTED (see :func:`unseen.engine.transport.rpc.create_server`). With ``metrics``
    every call is recorded and the node's caches are gauged. With TLS files
    the node signs its mask key with its certificate's key (governed mode).
    """
    if tls is not None:
        node.certify_mask_key(tls)
    servicer = HolderServicer(node)
    interceptors = []
    if metrics is not None:
        metrics.gauge("unseen_keys_cached", "Public contexts registered", lambda: len(node.keys))
        metrics.gauge(
            "unseen_models_cached", "Scoring models registered", lambda: len(node._models)
        )
        node.gov.on_left = metrics.voucher_left  # quota and rho left, as the ledger charges
        interceptors.append(metrics.interceptor())
    return create_server(
        listen,
        [lambda s: holder_pb2_grpc.add_HolderServicer_to_server(servicer, s)],
        [HOLDER_SERVICE],
        tls=tls,
        max_concurrent=max_concurrent,
        interceptors=interceptors,
    )


def serve_coordinator(
    coordinator: Coordinator,
    listen: str,
    tls: TlsFiles | None = None,
    metrics: NodeMetrics | None = None,
    city: CityHolder | None = None,
) -> tuple[Any, int]:
    """Start serving ``coordinator`` on ``listen``; returns (server, port).

    With ``metrics`` every call is recorded and the key and model caches are gauged. With
    ``city`` the same server also answers the holder service to a provincial
    coordinator (``--as-holder``, :mod:`unseen.nodes.city`).
    """
    servicer = CoordinatorServicer(coordinator)
    adders = [lambda s: coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, s)]
    services = [COORDINATOR_SERVICE]
    if city is not None:
        city_servicer = CityServicer(city)
        adders.append(lambda s: holder_pb2_grpc.add_HolderServicer_to_server(city_servicer, s))
        services.append(HOLDER_SERVICE)
    interceptors = []
    if metrics is not None:
        metrics.gauge(
            "unseen_keys_cached", "Public contexts registered", lambda: len(coordinator.keys)
        )
        metrics.gauge(
            "unseen_models_cached",
            "Scoring models registered",
            lambda: len(coordinator.models._models),
        )
        interceptors.append(metrics.interceptor())
    return create_server(listen, adders, services, tls=tls, interceptors=interceptors)
