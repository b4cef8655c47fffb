"""Typed peers: the one place that calls a holder or a coordinator over gRPC.

Domain code (the analyst's client, the coordinator's orchestration, the
supervisor's audit fetch) speaks dataclasses to a peer and never sees a stub,
a protobuf message or a ``grpc.RpcError``. A peer owns, for every call:

- the stub and the request messages (built by :mod:`unseen.engine.transport.serde`);
- the deadline (``DEADLINES`` per kind of call, capped by the caller's budget);
- the translation of a failed call into a :class:`~unseen.engine.errors.RemoteError`
  (:func:`translated`, the only ``except grpc.RpcError`` outside servicers);
- the shape of streamed replies (header first, ciphertexts in place).

"The peer lost the key or the model (NOT_FOUND): register it and retry once"
is :func:`retry_not_found`, used by every call that names a key or a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc

from unseen.engine.errors import RemoteError
from unseen.engine.privacy.masks import Participant
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan
from unseen.engine.training.psi import AlignAsk, PsiAnswer
from unseen.engine.training.train_job import TrainAnswer, TrainCall
from unseen.engine.transport import serde
from unseen.engine.transport.cancellation import interruptible
from unseen.engine.transport.rpc import DEADLINES, create_channel, remote_error
from unseen.engine.transport.tls import ANALYST_SUBJECT_HEADER, TlsFiles
from unseen.v1 import coordinator_pb2_grpc, holder_pb2_grpc

__all__ = [
    "AggregateAnswer",
    "CoordinatorPeer",
    "EncodedPlan",
    "HolderPeer",
    "ModelUpload",
    "PreparedRound",
    "ScoreStream",
    "encode_plan",
    "retry_not_found",
    "translated",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class PreparedRound:
    """A holder's round-1 reply: failing groups (each with its first rule), receipts,
    and the digest of the catalog it publishes now (``serde.catalog_digest``)."""

    failing: dict[int, str]
    receipts: tuple[str, ...]
    catalog_digest: str = ""


@dataclass(frozen=True)
class AggregateAnswer:
    """An Aggregate reply as it arrived: ciphertext bytes in index order and the header."""

    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # configured holders left out (allow_partial only)
    reasons: dict[int, str] = field(default_factory=dict)  # suppressed group -> why


@dataclass(frozen=True)
class ModelUpload:
    """One RegisterModel call: a model's features with their exponents and encrypted weights."""

    key_id: str
    model_id: str
    features: tuple[FeatureSpec, ...]
    exponents: tuple[int, ...]
    weights: tuple[bytes, ...]


@dataclass(frozen=True)
class EncodedPlan:
    """A plan encoded once for many peers (a long IN list takes milliseconds to encode)."""

    message: Any


def encode_plan(plan: AggregatePlan) -> EncodedPlan:
    return EncodedPlan(serde.plan_to_proto(plan))


@contextmanager
def translated(peer: str) -> Iterator[None]:
    """Turn a failed call into a :class:`RemoteError` whose reason names ``peer``."""
    try:
        yield
    except grpc.RpcError as exc:
        raise remote_error(exc, peer) from exc


def retry_not_found(call: Callable[[], _T], recover: Callable[[], object]) -> _T:
    """Run ``call``; if the peer answers NOT_FOUND (it lost a key or a model to a
    restart or an eviction), run ``recover`` (register it again) and retry once."""
    try:
        return call()
    except RemoteError as exc:
        if exc.code != "NOT_FOUND":
            raise
    recover()
    return call()


class ScoreStream(Protocol):
    """An open Score call: its header (block count, holders, receipts), then the blocks."""

    count: int
    holders: tuple[str, ...]
    receipts: tuple[str, ...]

    def blocks(self) -> Iterator[bytes]:
        """The ciphertext blocks in order; a failure raises a RemoteError."""
        ...

    def cancel(self) -> None: ...


class _ScoreCall:
    """A :class:`ScoreStream` over a gRPC Score call."""

    def __init__(self, call: Any, first: Any, peer: str):
        self._call, self._peer = call, peer
        if first.WhichOneof("part") != "header":
            raise RemoteError("INTERNAL", f"{peer} answered a score without a header")
        header = first.header
        self.count: int = header.ciphertexts
        self.holders: tuple[str, ...] = tuple(header.holders)
        self.receipts: tuple[str, ...] = tuple(header.receipts)

    def blocks(self) -> Iterator[bytes]:
        """The ciphertext blocks; a block out of order or a second header is an error."""
        with translated(self._peer):
            for index, reply in enumerate(self._call):
                if reply.WhichOneof("part") != "ciphertext" or reply.ciphertext.index != index:
                    raise RemoteError("INTERNAL", f"{self._peer} sent score blocks out of order")
                yield reply.ciphertext.data

    def cancel(self) -> None:
        self._call.cancel()


class _Peer:
    """What a holder and a coordinator both answer (the services share these methods).

    ``timeout`` replaces the default deadline of every call (the analyst's
    ``--timeout``); ``budget`` arguments cap a single call by what is left of
    the caller's own deadline.
    """

    def __init__(self, address: str, stub: Any, channel: Any, timeout: float | None):
        self.address = address
        self.timeout = timeout
        self._stub = stub
        self._channel = channel

    @property
    def label(self) -> str:
        return self.address

    def close(self) -> None:
        self._channel.close()

    def _deadline(self, kind: str, budget: float | None = None) -> float:
        base = self.timeout if self.timeout is not None else DEADLINES[kind]
        return base if budget is None else max(0.001, min(base, budget))

    def catalog(self, budget: float | None = None) -> Catalog:
        with translated(self.label):
            msg = self._stub.GetCatalog(
                serde.catalog_request(), timeout=self._deadline("catalog", budget)
            )
        return serde.catalog_from_proto(msg)

    def register_key(self, public: bytes, budget: float | None = None) -> str:
        """Send a public context; returns the key id the peer computed."""
        with translated(self.label):
            ack = self._stub.RegisterKey(
                serde.key_chunks(public), timeout=self._deadline("register_key", budget)
            )
        return str(ack.key_id)

    def has_key(self, key_id: str) -> bool:
        with translated(self.label):
            reply = self._stub.HasKey(
                serde.has_key_request(key_id), timeout=self._deadline("has_key")
            )
        return bool(reply.known)

    def has_model(self, key_id: str, model_id: str) -> bool:
        with translated(self.label):
            reply = self._stub.HasModel(
                serde.has_model_request(key_id, model_id),
                timeout=self._deadline("has_key"),
            )
        return bool(reply.known)

    def aggregate(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
        allow_partial: bool = False,
    ) -> AggregateAnswer:
        """Send a plan; returns the ciphertexts (bytes, not yet loaded) and the header."""
        encoded = plan.message if isinstance(plan, EncodedPlan) else plan
        request = serde.aggregate_request(key_id, encoded, vouchers, allow_partial)
        with translated(self.label):
            replies = self._stub.Aggregate(
                request, timeout=self._deadline("aggregate", budget), metadata=_forward(subject)
            )
            return _aggregate_reply(replies, self.label)

    def prepare_model(
        self,
        key_id: str,
        features: Sequence[FeatureSpec],
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Per feature, the exponent of a power-of-two bound; and the ledger receipts."""
        with translated(self.label):
            reply = self._stub.PrepareModel(
                serde.prepare_parts(key_id, features, ids, vouchers),
                timeout=self._deadline("prepare_model", budget),
                metadata=_forward(subject),
            )
        if len(reply.exponents) != len(features):
            raise RemoteError("INTERNAL", f"{self.label} answered the wrong number of exponents")
        return list(reply.exponents), list(reply.receipts)

    def register_model(self, model: ModelUpload, budget: float | None = None) -> str:
        with translated(self.label):
            ack = self._stub.RegisterModel(
                serde.model_parts(
                    model.key_id, model.model_id, model.features, model.exponents, model.weights
                ),
                timeout=self._deadline("register_key", budget),
            )
        return str(ack.model_id)

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> ScoreStream:
        """Open a Score call and read its header (an error status arrives here)."""
        with translated(self.label):
            call = self._stub.Score(
                serde.score_parts(key_id, model_id, ids, vouchers),
                timeout=self._deadline("score", budget),
                metadata=_forward(subject),
            )
            try:
                first = next(call)
            except StopIteration:
                raise RemoteError("INTERNAL", f"{self.label} ended a score at once") from None
        return _ScoreCall(call, first, self.label)

    # -- entity alignment (issue 15) ---------------------------------------------------
    def align(
        self, ask: AlignAsk, *, budget: float | None = None, subject: str | None = None
    ) -> tuple[str, PsiAnswer, list[str]]:
        """One PSI round with the holder ``ask.holder``: (its name, its answer, receipts)."""
        with translated(self.label):
            reply = self._stub.Align(
                serde.align_to_proto(ask),
                timeout=self._deadline("align", budget),
                metadata=_forward(subject),
            )
        return serde.align_reply_from_proto(reply)

    # -- joint training (issue 15) -----------------------------------------------------
    def train(
        self, call: TrainCall, *, budget: float | None = None, subject: str | None = None
    ) -> TrainAnswer:
        """One step of a training job."""
        with translated(self.label):
            reply = self._stub.Train(
                serde.train_call_to_proto(call),
                timeout=self._deadline("train", budget),
                metadata=_forward(subject),
            )
        return serde.train_answer_from_proto(reply)


def _aggregate_reply(replies: Iterator[Any], label: str) -> AggregateAnswer:
    """Read an Aggregate reply stream: the header, then the ciphertexts in place."""
    first = next(replies, None)
    if first is None or first.WhichOneof("part") != "header":
        raise RemoteError("INTERNAL", f"{label} answered without a header")
    count, suppressed, holders, receipts = serde.header_from_proto(first.header)
    ciphertexts: list[bytes | None] = [None] * count
    for reply in replies:
        if reply.WhichOneof("part") != "ciphertext":
            raise RemoteError("INTERNAL", f"{label} sent a second header")
        index = reply.ciphertext.index
        if index >= count or ciphertexts[index] is not None:
            raise RemoteError("INTERNAL", f"{label} sent ciphertext {index} out of place")
        ciphertexts[index] = reply.ciphertext.data
    if any(c is None for c in ciphertexts):
        raise RemoteError("INTERNAL", f"{label} sent fewer ciphertexts than announced")
    return AggregateAnswer(
        [c for c in ciphertexts if c is not None],
        suppressed,
        holders,
        receipts,
        serde.missing_from_header(first.header),
        serde.suppression_reasons(first.header),
    )


class HolderPeer(_Peer):
    """A holder as the coordinator and a supervisor see it.

    ``name`` is learned from the holder's catalog; until then the address
    stands for it in messages.
    """

    def __init__(self, address: str, tls: TlsFiles | None = None, timeout: float | None = None):
        channel = create_channel(address, tls)
        super().__init__(address, holder_pb2_grpc.HolderStub(channel), channel, timeout)
        self.name = ""

    @property
    def label(self) -> str:
        return f"holder {self.name} ({self.address})" if self.name else f"holder {self.address}"

    def catalog(self, budget: float | None = None) -> Catalog:
        catalog = super().catalog(budget)
        self.name = catalog.holder or self.address
        return catalog

    def prepare_aggregate(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[dict[int, str], tuple[str, ...]]:
        """Round 1 of a masked aggregate: (the holder's failing groups, each with the
        first rule it fails; its receipts). :meth:`prepare_round` also gives the
        holder's catalog digest."""
        prepared = self.prepare_round(
            key_id, plan, query_id, vouchers, budget=budget, subject=subject
        )
        return prepared.failing, prepared.receipts

    def prepare_round(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> PreparedRound:
        """Round 1 of a masked aggregate, with the digest of the holder's current catalog."""
        encoded = plan.message if isinstance(plan, EncodedPlan) else plan
        request = serde.aggregate_request(key_id, encoded, vouchers, request_id=query_id)
        with translated(self.label):
            call = self._stub.PrepareAggregate.future(
                request, timeout=self._deadline("aggregate", budget), metadata=_forward(subject)
            )
            # Inside a served call (the coordinator's fan-out) the holder's work stops
            # when the analyst's call ends: nobody will read its answer.
            with interruptible(call.cancel):
                reply = call.result()
        answered, failing, receipts = serde.failing_groups_from_reply(reply)
        if answered != query_id:
            raise RemoteError("INTERNAL", f"{self.label} answered another query")
        return PreparedRound(failing, receipts, serde.reply_catalog_digest(reply))

    def masked_aggregate(
        self,
        key_id: str,
        query_id: str,
        nonce: bytes,
        participants: Sequence[Participant],
        suppressed: Sequence[int],
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> AggregateAnswer:
        """Round 2: the holder's masked ciphertexts for round 1's plan."""
        request = serde.mask_round_request(key_id, query_id, nonce, participants, suppressed)
        with translated(self.label):
            replies = self._stub.Aggregate(
                request, timeout=self._deadline("aggregate", budget), metadata=_forward(subject)
            )
            with interruptible(replies.cancel):  # as in round 1
                return _aggregate_reply(replies, self.label)

    def read_ledger(
        self, supervisor_key_id: str, start: int, end: int, issued_at: str, signature: bytes
    ) -> tuple[str, str]:
        """One signed page request; returns (the range as JSON, the signed checkpoint)."""
        with translated(self.label):
            reply = self._stub.ReadLedger(
                serde.ledger_request(supervisor_key_id, start, end, issued_at, signature),
                timeout=self._deadline("catalog"),
            )
        return str(reply.range), str(reply.checkpoint)


class CoordinatorPeer(_Peer):
    """The coordinator as the analyst's client sees it."""

    def __init__(self, address: str, tls: TlsFiles | None = None, timeout: float | None = None):
        channel = create_channel(address, tls)
        super().__init__(address, coordinator_pb2_grpc.CoordinatorStub(channel), channel, timeout)

    @property
    def label(self) -> str:
        return f"coordinator {self.address}"


def _forward(subject: str | None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata telling holders which analyst certificate made the request."""
    return ((ANALYST_SUBJECT_HEADER, subject),) if subject else ()
