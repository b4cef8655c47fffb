"""The coordinator: merges catalogs, fans plans out, adds ciphertexts. Holds no key.

It receives only public contexts (refused if they carry a secret key), plans,
masked ciphertexts and the indices of groups failing suppression. An
aggregate runs in two rounds (see docs/architecture.md): every holder hosting
the table reports its failing groups, then every holder answers with the
union zeroed and its pairwise masks added, so that only the sum over all of
them means anything. Composition is all-or-nothing: if any holder fails, the
query fails with that holder named — a partial sum is never returned.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import tenseal as ts

from engine import ckks, serde
from engine.catalog import Catalog, merge
from engine.errors import HolderError, PlanError, RemoteError, UnknownKeyError, UnseenError
from engine.keystore import KeyStore
from engine.layout import layout_for
from engine.masks import NONCE_BYTES, Participant
from engine.model import FeatureSpec
from engine.plan import AggregatePlan, Limits, check_plan
from engine.rpc import DEADLINES, create_channel, create_server, remote_error, servicer_errors
from engine.tls import ANALYST_SUBJECT_HEADER, TlsFiles, caller_identity
from engine.voucher import SignedVoucher
from protos.unseen.v1 import (
    catalog_pb2,
    coordinator_pb2_grpc,
    crypto_pb2,
    holder_pb2_grpc,
    query_pb2,
    score_pb2,
)

__all__ = ["Coordinator", "CoordinatorServicer", "HolderLink", "serve_coordinator"]

log = logging.getLogger(__name__)


@dataclass
class HolderLink:
    """A channel to one holder; ``name`` is learned from its catalog."""

    address: str
    name: str = ""
    tls: TlsFiles | None = None
    channel: grpc.Channel = field(init=False)
    stub: holder_pb2_grpc.HolderStub = field(init=False)

    def __post_init__(self) -> None:
        self.channel = create_channel(self.address, self.tls)
        self.stub = holder_pb2_grpc.HolderStub(self.channel)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


@dataclass
class AggregateAnswer:
    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...] = ()


@dataclass
class _HolderAnswer:
    vectors: list[ts.CKKSVector]
    suppressed: tuple[int, ...]
    receipts: tuple[str, ...]


@dataclass(frozen=True)
class CoordinatorModel:
    """A registered model: which holder computes which features, with their weights."""

    key_id: str
    model_id: str
    features: tuple[FeatureSpec, ...]
    exponents: tuple[int, ...]
    weights: tuple[bytes, ...]
    assignment: tuple[tuple[str, tuple[int, ...]], ...]  # holder address -> feature indices


@dataclass
class Coordinator:
    links: list[HolderLink]
    keys: KeyStore = field(default_factory=KeyStore)
    limits: Limits = field(default_factory=Limits)
    catalog_ttl: float = 5.0
    # Holders answering an aggregate, at least (holders' own policy: engine.participants).
    min_participants: int = 2
    _pool: futures.ThreadPoolExecutor = field(
        default_factory=lambda: futures.ThreadPoolExecutor(64, thread_name_prefix="fanout")
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _catalogs: list[tuple[HolderLink, Catalog]] = field(default_factory=list)
    _catalogs_at: float = 0.0
    _known: dict[str, Catalog] = field(default_factory=dict)  # last catalog per holder address
    max_models: int = 32
    max_entities: int = 5_000_000
    _models: OrderedDict[tuple[str, str], CoordinatorModel] = field(default_factory=OrderedDict)

    @classmethod
    def connect(
        cls, addresses: Sequence[str], tls: TlsFiles | None = None, **kwargs: object
    ) -> Coordinator:
        if not addresses:
            raise UnseenError("a coordinator needs at least one --holder")
        return cls([HolderLink(a, tls=tls) for a in addresses], **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for link in self.links:
            link.channel.close()

    # -- fan-out helper ------------------------------------------------------------
    def _each(self, links: Sequence[HolderLink], call, deadline: float) -> list:  # type: ignore[no-untyped-def]
        """Run ``call(link)`` on every link in parallel; the first failure names its holder."""
        pending = {self._pool.submit(call, link): link for link in links}
        results = {}
        errors: list[HolderError] = []
        done, not_done = futures.wait(pending, timeout=deadline + 1.0)
        for fut in not_done:
            fut.cancel()
            link = pending[fut]
            errors.append(HolderError(link.label, "DEADLINE_EXCEEDED", "did not answer in time"))
        for fut in done:
            link = pending[fut]
            try:
                results[link.address] = fut.result()
            except grpc.RpcError as exc:
                err = remote_error(exc, "holder")
                errors.append(HolderError(link.label, err.code, err.reason))
            except RemoteError as exc:
                errors.append(HolderError(link.label, exc.code, exc.reason))
            except UnseenError as exc:
                errors.append(HolderError(link.label, exc.grpc_code, str(exc)))
        if errors:
            errors.sort(key=lambda e: e.holder)
            first = errors[0]
            if len(errors) > 1:
                others = ", ".join(e.holder for e in errors[1:])
                raise HolderError(
                    first.holder, first.code, f"{first.detail} (also failed: {others})"
                )
            raise first
        return [results[link.address] for link in links]

    # -- catalog -------------------------------------------------------------------
    def holder_catalogs(
        self, refresh: bool = False, deadline: float | None = None
    ) -> list[tuple[HolderLink, Catalog]]:
        """The holders' catalogs, fetched in parallel (cached for ``catalog_ttl``).

        A holder that does not answer keeps its last known catalog, so a query
        on its tables fails naming it while every other table stays usable; a
        holder never reached is left out until it answers.
        """
        with self._lock:
            fresh = time.monotonic() - self._catalogs_at < self.catalog_ttl
            if self._catalogs and fresh and not refresh:
                return list(self._catalogs)
        # Catalogs are small: a holder that takes longer than this is treated as
        # down for this round, and most of the caller's budget is left for the work.
        budget = min(DEADLINES["catalog_fetch"], (deadline or DEADLINES["catalog"]) / 2)

        def fetch(link: HolderLink) -> Catalog:
            msg = link.stub.GetCatalog(catalog_pb2.GetCatalogRequest(), timeout=budget)
            catalog = serde.catalog_from_proto(msg)
            link.name = catalog.holder or link.address
            return catalog

        pending = {self._pool.submit(fetch, link): link for link in self.links}
        done, _ = futures.wait(pending, timeout=budget + 0.5)
        with self._lock:
            for fut, link in pending.items():
                if fut in done and fut.exception() is None:
                    self._known[link.address] = fut.result()
                else:
                    log.warning("holder %s did not answer its catalog request", link.label)
            known = [
                (link, self._known[link.address])
                for link in self.links
                if link.address in self._known
            ]
            names = [c.holder for _, c in known]
            duplicates = {n for n in names if names.count(n) > 1}
            if duplicates:
                raise UnseenError(f"two holders share the name {sorted(duplicates)[0]}")
            self._catalogs = known
            self._catalogs_at = time.monotonic()
            return list(known)

    def catalog(self, deadline: float | None = None) -> Catalog:
        """The merged catalog (refreshed when older than ``catalog_ttl``)."""
        return merge([c for _, c in self.holder_catalogs(deadline=deadline)])

    # -- keys ----------------------------------------------------------------------
    def register_key(self, public: bytes, deadline: float | None = None) -> str:
        """Vet the public context, keep it, and register it with every holder that answers.

        A holder that is down now gets the key later: it answers NOT_FOUND to
        its first request and the coordinator registers the key then.
        """
        kid = self.keys.register(public)
        self.holder_catalogs(deadline=deadline)  # learn holder names for messages
        budget = min(deadline or DEADLINES["register_key"], DEADLINES["register_key"])
        try:
            self._each(self.links, lambda link: self._register_at(link, public), budget)
        except HolderError as exc:
            log.warning("key %s not registered everywhere yet: %s", kid[:16], exc.code)
        log.info("registered key %s", kid[:16])
        return kid

    @staticmethod
    def _register_at(link: HolderLink, public: bytes) -> str:
        ack = link.stub.RegisterKey(serde.key_chunks(public), timeout=DEADLINES["register_key"])
        return ack.key_id

    # -- aggregate -----------------------------------------------------------------
    def aggregate(
        self,
        key_id: str,
        plan: AggregatePlan,
        deadline: float | None = None,
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> AggregateAnswer:
        """Run ``plan`` at every holder hosting its table in two rounds; add the answers.

        ``subject`` is the analyst's certificate name (mTLS), forwarded to the
        holders so that a voucher bound to it can be checked there.
        """
        ctx = self.keys.get(key_id)
        metadata = _forward(subject)
        hosted = self.holder_catalogs(deadline=deadline)
        merged = merge([c for _, c in hosted])
        table = merged.table(plan.table)
        if table is None:
            raise PlanError(merged.conflict(plan.table) or f"no holder serves a table {plan.table}")
        check_plan(plan, table, self.limits)
        layout = layout_for(plan, self.limits)
        hosts = _participating(hosted, plan.table, self.min_participants, _federation(vouchers))
        links = [link for link, _ in hosts]
        participants = _participants(hosts)
        budget = min(deadline or DEADLINES["aggregate"], DEADLINES["aggregate"])
        encoded = serde.plan_to_proto(plan)  # once: a long IN list takes ms to encode
        routed = _route_vouchers(vouchers)
        # Round 1: each holder reads its data once and names the groups failing its rules.
        query_id = secrets.token_hex(16)
        requests = {
            link.address: serde.aggregate_request(
                key_id, encoded, _vouchers_for(link, routed), request_id=query_id
            )
            for link in links
        }
        prepared = self._each(
            links,
            lambda link: self._prepare_at(link, requests[link.address], budget, metadata),
            budget,
        )
        suppressed = sorted({i for failing, _ in prepared for i in failing})
        # Round 2: all zero the union, add their pairwise masks (bound to this nonce,
        # the participants and the union) and encrypt.
        masked = serde.mask_round_request(
            key_id, query_id, os.urandom(NONCE_BYTES), participants, suppressed
        )
        answers = self._each(
            links,
            lambda link: self._collect(
                link, masked, ctx, layout.ciphertexts, plan.codec.slots, budget, metadata
            ),
            budget,
        )
        sums = [
            ckks.add_all([answer.vectors[i] for answer in answers])
            for i in range(layout.ciphertexts)
        ]
        log.info(
            "aggregate on %s over %d holders: %d ciphertexts, %d groups suppressed",
            plan.table,
            len(links),
            len(sums),
            len(suppressed),
        )
        return AggregateAnswer(
            [bytes(v.serialize()) for v in sums],
            tuple(suppressed),
            tuple(link.name for link in links),
            tuple(r for _, receipts in prepared for r in receipts),
        )

    def _prepare_at(
        self,
        link: HolderLink,
        request: query_pb2.AggregateRequest,
        deadline: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> tuple[frozenset[int], tuple[str, ...]]:
        """Round 1 at one holder: (failing groups, receipts)."""

        def call() -> tuple[frozenset[int], tuple[str, ...]]:
            reply = link.stub.PrepareAggregate(request, timeout=deadline, metadata=metadata)
            query_id, failing, receipts = serde.prepare_reply_from_proto(reply)
            if query_id != request.request_id:
                raise RemoteError("INTERNAL", "answered another query")
            return failing, receipts

        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        # The holder lost the key (restart or eviction): register it and retry once.
        self._register_at(link, self.keys.public_bytes(request.key_id))
        return call()

    @staticmethod
    def _collect(
        link: HolderLink,
        request: query_pb2.AggregateRequest,
        ctx: ts.Context,
        expected: int,
        slots: int,
        deadline: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> _HolderAnswer:
        stream = link.stub.Aggregate(request, timeout=deadline, metadata=metadata)
        first = next(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise RemoteError("INTERNAL", "answered without a header")
        count, suppressed, _, receipts = serde.header_from_proto(first.header)
        if count != expected:
            raise RemoteError("INTERNAL", f"sent {count} ciphertexts; the plan needs {expected}")
        vectors: list[ts.CKKSVector | None] = [None] * expected
        for reply in stream:
            if reply.WhichOneof("part") != "ciphertext":
                raise RemoteError("INTERNAL", "sent a second header")
            index = reply.ciphertext.index
            if index >= expected or vectors[index] is not None:
                raise RemoteError("INTERNAL", f"sent ciphertext {index} out of place")
            # Holders encrypt aggregates fresh: any other level is not theirs.
            vectors[index] = ckks.load_ciphertext(ctx, reply.ciphertext.data, slots, depth=0)
        if any(v is None for v in vectors):
            raise RemoteError("INTERNAL", "sent fewer ciphertexts than announced")
        return _HolderAnswer([v for v in vectors if v is not None], suppressed, receipts)

    # -- scoring -------------------------------------------------------------------
    def _assign(self, features: Sequence[FeatureSpec]) -> list[tuple[HolderLink, list[int]]]:
        """Which holders compute which features: every host of a feature's table."""
        hosted = self.holder_catalogs()
        merged = merge([c for _, c in hosted])
        out: dict[str, tuple[HolderLink, list[int]]] = {}
        for index, feature in enumerate(features):
            table = merged.table(feature.table)
            if table is None:
                raise PlanError(
                    merged.conflict(feature.table) or f"no holder serves a table {feature.table}"
                )
            hosts = [link for link, cat in hosted if cat.table(feature.table) is not None]
            additive = feature.aggregate in ("", "sum", "count")
            if len(hosts) > 1 and (not additive or feature.default != 0 or feature.transform):
                raise PlanError(
                    f"feature {feature.table}.{feature.column}: {len(hosts)} holders host "
                    f"{feature.table}, so the feature must be additive across them (a sum, a "
                    "count or a plain column, with default 0 and no transform)"
                )
            for link in hosts:
                out.setdefault(link.address, (link, []))[1].append(index)
        return list(out.values())

    def prepare_model(
        self,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Per feature, the largest magnitude exponent any hosting holder reports."""
        self.keys.get(key_id)
        metadata = _forward(subject)
        assignment = self._assign(features)
        indices_of = {link.address: indices for link, indices in assignment}
        routed = _route_vouchers(vouchers)

        def ask(link: HolderLink) -> tuple[list[int], list[str]]:
            indices = indices_of[link.address]
            reply = link.stub.PrepareModel(
                serde.prepare_parts(
                    key_id, [features[i] for i in indices], ids, _vouchers_for(link, routed)
                ),
                timeout=DEADLINES["prepare_model"],
                metadata=metadata,
            )
            if len(reply.exponents) != len(indices):
                raise RemoteError("INTERNAL", "answered the wrong number of exponents")
            return list(reply.exponents), list(reply.receipts)

        answers = self._each([link for link, _ in assignment], ask, DEADLINES["prepare_model"])
        exponents = [0] * len(features)
        receipts: list[str] = []
        for (_, indices), (reply, holder_receipts) in zip(assignment, answers, strict=True):
            receipts += holder_receipts
            for index, exponent in zip(indices, reply, strict=True):
                exponents[index] = max(exponents[index], exponent)
        return exponents, receipts

    def register_model(
        self,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str:
        """Keep the model and give each holder its features' encrypted weights only.

        The first registration of an id wins (see HolderNode.register_model).
        """
        if self.has_model(key_id, model_id):
            return model_id
        ctx = self.keys.get(key_id)
        for data in weights:
            ckks.load_ciphertext(ctx, data, ckks.PARAMS.slots, depth=0)
        assignment = self._assign(features)
        model = CoordinatorModel(
            key_id,
            model_id,
            features,
            exponents,
            weights,
            tuple((link.address, tuple(ix)) for link, ix in assignment),
        )
        self._each(
            [link for link, _ in assignment],
            lambda link: self._register_model_at(link, model),
            DEADLINES["register_key"],
        )
        with self._lock:
            self._models[(key_id, model_id)] = model
            self._models.move_to_end((key_id, model_id))
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        log.info(
            "registered a model of %d features with %d holders", len(features), len(assignment)
        )
        return model_id

    def _register_model_at(self, link: HolderLink, model: CoordinatorModel) -> str:
        indices = dict(model.assignment)[link.address]

        def parts() -> Iterator[score_pb2.ModelPart]:
            return serde.model_parts(
                model.key_id,
                model.model_id,
                [model.features[i] for i in indices],
                [model.exponents[i] for i in indices],
                [model.weights[i] for i in indices],
            )

        try:
            return str(link.stub.RegisterModel(parts(), timeout=DEADLINES["register_key"]).model_id)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        # The holder lost the analyst's key (restart, eviction): give it again first.
        self._register_at(link, self.keys.public_bytes(model.key_id))
        return str(link.stub.RegisterModel(parts(), timeout=DEADLINES["register_key"]).model_id)

    def require_model(self, model_id: str, key_id: str) -> None:
        """Refuse a score for an unknown model before reading its entities."""
        if not self.has_model(key_id, model_id):
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")

    def has_model(self, key_id: str, model_id: str) -> bool:
        with self._lock:
            return (key_id, model_id) in self._models and key_id in self.keys

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: list[str],
        deadline: float | None = None,
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> tuple[int, tuple[str, ...], list[str], Iterator[bytes]]:
        """Fan the entities out, then yield the sum of the holders' partials block by block.

        Returns the block count, the holders, their receipts (known once every
        holder has sent its header) and the iterator of summed blocks.
        """
        with self._lock:
            model = self._models.get((key_id, model_id))
        if model is None:
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")
        ctx = self.keys.get(key_id)
        slots = ckks.PARAMS.slots
        count = -(-len(ids) // slots)
        self.holder_catalogs()  # holder names for messages
        links = {link.address: link for link in self.links}
        hosts = [links[address] for address, _ in model.assignment]
        budget = min(deadline or DEADLINES["score"], DEADLINES["score"])
        routed = _route_vouchers(vouchers)
        streams = [
            _PartialStream(
                self,
                link,
                model,
                ids,
                count,
                budget,
                _vouchers_for(link, routed),
                _forward(subject),
            )
            for link in hosts
        ]
        for stream in streams:
            stream.start()
        try:
            receipts = [r for stream in streams for r in stream.header_receipts()]
        except BaseException:
            for stream in streams:
                stream.cancel()
            raise

        def sums() -> Iterator[bytes]:
            try:
                for index in range(count):
                    parts = [stream.get(index, ctx, slots) for stream in streams]
                    yield bytes(ckks.add_all(parts).serialize())
            finally:
                for stream in streams:
                    stream.cancel()

        return count, tuple(link.name or link.address for link in hosts), receipts, sums()


class _PartialStream:
    """One holder's Score call, read in a thread into a bounded queue."""

    def __init__(
        self,
        coordinator: Coordinator,
        link: HolderLink,
        model: CoordinatorModel,
        ids: list[str],
        count: int,
        deadline: float,
        vouchers: tuple[str, ...] = (),
        metadata: tuple[tuple[str, str], ...] = (),
    ):
        self.coordinator, self.link, self.model = coordinator, link, model
        self.ids, self.count, self.deadline = ids, count, deadline
        self.vouchers, self.metadata = vouchers, metadata
        # The header (with the holder's receipts) or the error that came instead.
        self.header: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        # Bounded: a fast holder waits (gRPC flow control) for a slow one.
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=8)
        self.call: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="score-stream")

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        if self.call is not None:
            self.call.cancel()

    def _open(self) -> Any:
        self.call = self.link.stub.Score(
            serde.score_parts(self.model.model_id, self.model.key_id, self.ids, self.vouchers),
            timeout=self.deadline,
            metadata=self.metadata,
        )
        return self.call

    def _fail(self, error: HolderError, header_sent: bool) -> None:
        if not header_sent:
            self.header.put(("error", error))
        self.queue.put(("error", error))

    def _run(self) -> None:
        header_sent = False
        try:
            try:
                replies = self._open()
                first = next(replies)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                # The holder lost the key or the model: register them and ask again.
                self.coordinator._register_model_at(self.link, self.model)
                replies = self._open()
                first = next(replies)
            if first.WhichOneof("part") != "header" or first.header.ciphertexts != self.count:
                raise RemoteError("INTERNAL", "answered with a wrong score header")
            self.header.put(("ok", list(first.header.receipts)))
            header_sent = True
            for reply in replies:
                self.queue.put(("ok", reply.ciphertext))
            self.queue.put(("end", None))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            err = remote_error(exc, "holder")
            self._fail(HolderError(self.link.label, err.code, err.reason), header_sent)
        except UnseenError as exc:
            self._fail(HolderError(self.link.label, exc.grpc_code, str(exc)), header_sent)

    def _take(self, source: queue.Queue[tuple[str, Any]]) -> tuple[str, Any]:
        """The next item the reader thread put, or the holder's error, within the deadline."""
        try:
            kind, item = source.get(timeout=self.deadline)
        except queue.Empty:
            raise HolderError(
                self.link.label, "DEADLINE_EXCEEDED", "did not answer in time"
            ) from None
        if kind == "error":
            raise item
        return kind, item

    def header_receipts(self) -> list[str]:
        """Wait for the holder's header; returns its receipts or raises its error."""
        _, item = self._take(self.header)
        return list(item)

    def get(self, index: int, ctx: ts.Context, slots: int) -> ts.CKKSVector:
        kind, item = self._take(self.queue)
        if kind != "ok":
            raise HolderError(self.link.label, "INTERNAL", "sent fewer score blocks than announced")
        if item.index != index:
            raise HolderError(
                self.link.label, "INTERNAL", f"sent block {item.index} where {index} was due"
            )
        # A partial score is one rescale deep (one ciphertext-plaintext product).
        return ckks.load_ciphertext(ctx, item.data, slots, depth=1)


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, coordinator: Coordinator):
        self.coordinator = coordinator

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.coordinator.catalog(_budget(context)))

    @servicer_errors
    def RegisterKey(
        self, request_iterator: Iterator[crypto_pb2.KeyChunk], context: grpc.ServicerContext
    ) -> crypto_pb2.KeyAck:
        data = serde.join_key_chunks(request_iterator, ckks.MAX_PUBLIC_CONTEXT_BYTES)
        kid = self.coordinator.register_key(data, _budget(context))
        return crypto_pb2.KeyAck(key_id=kid, size=len(data))

    @servicer_errors
    def HasKey(
        self, request: crypto_pb2.HasKeyRequest, context: grpc.ServicerContext
    ) -> crypto_pb2.HasKeyReply:
        return crypto_pb2.HasKeyReply(known=request.key_id in self.coordinator.keys)

    @servicer_errors
    def Aggregate(
        self, request: query_pb2.AggregateRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.AggregateReply]:
        plan = serde.plan_from_proto(request.plan)
        answer = self.coordinator.aggregate(
            request.key_id, plan, _budget(context), tuple(request.vouchers), _analyst(context)
        )
        yield serde.header_to_proto(
            len(answer.ciphertexts), answer.suppressed, answer.holders, answer.receipts
        )
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)

    @servicer_errors
    def PrepareModel(
        self, request_iterator: Iterator[score_pb2.PreparePart], context: grpc.ServicerContext
    ) -> score_pb2.PrepareModelReply:
        key_id, features, ids, vouchers = serde.prepare_from_parts(
            request_iterator, self.coordinator.max_entities, self.coordinator.keys.get
        )
        exponents, receipts = self.coordinator.prepare_model(
            key_id, features, ids, vouchers, _analyst(context)
        )
        return score_pb2.PrepareModelReply(exponents=exponents, receipts=receipts)

    @servicer_errors
    def RegisterModel(
        self, request_iterator: Iterator[score_pb2.ModelPart], context: grpc.ServicerContext
    ) -> score_pb2.ModelAck:
        key_id, model_id, features, exponents, weights = serde.model_from_parts(
            request_iterator, serde.MAX_MODEL_BYTES, self.coordinator.keys.get
        )
        self.coordinator.register_model(key_id, model_id, features, exponents, weights)
        return score_pb2.ModelAck(model_id=model_id)

    @servicer_errors
    def HasModel(
        self, request: score_pb2.HasModelRequest, context: grpc.ServicerContext
    ) -> score_pb2.HasModelReply:
        known = self.coordinator.has_model(request.key_id, request.model_id)
        return score_pb2.HasModelReply(known=known)

    @servicer_errors
    def Score(
        self, request_iterator: Iterator[score_pb2.ScorePart], context: grpc.ServicerContext
    ) -> Iterator[score_pb2.ScoreReply]:
        model_id, key_id, ids, vouchers = serde.score_request_from_parts(
            request_iterator, self.coordinator.max_entities, self.coordinator.require_model
        )
        count, holders, receipts, sums = self.coordinator.score(
            key_id, model_id, ids, _budget(context), vouchers, _analyst(context)
        )
        yield serde.score_reply_header(count, ckks.PARAMS.slots, holders, receipts)
        for index, data in enumerate(sums):
            yield serde.score_reply_ciphertext(index, data)


def _participating(
    hosted: Sequence[tuple[HolderLink, Catalog]],
    table: str,
    least: int,
    federation: frozenset[str] = frozenset(),
) -> list[tuple[HolderLink, Catalog]]:
    """Every holder hosting ``table``, every holder a voucher names as the federation,
    and, while they are fewer than ``least``, other holders (in name order). The
    ones without the table take part with masks only, so that even a table one
    holder hosts is answered masked."""
    hosts = [(link, cat) for link, cat in hosted if cat.table(table) is not None]
    others = sorted(
        ((link, cat) for link, cat in hosted if cat.table(table) is None),
        key=lambda pair: (pair[1].holder not in federation, pair[1].holder),
    )
    named = sum(1 for _, cat in others if cat.holder in federation)
    return hosts + others[: max(named, least - len(hosts))]


def _federation(vouchers: Sequence[str]) -> frozenset[str]:
    """The holders the vouchers name as their federation (they all must take part)."""
    names: set[str] = set()
    for text in vouchers:
        try:
            names |= SignedVoucher.decode(text).voucher.federation or frozenset()
        except UnseenError:
            continue
    return frozenset(names)


def _participants(hosts: Sequence[tuple[HolderLink, Catalog]]) -> list[Participant]:
    """The holders answering a query with the mask keys their catalogs publish."""
    out = []
    for link, catalog in hosts:
        if catalog.mask_key is None:
            raise HolderError(link.label, "FAILED_PRECONDITION", "publishes no mask key")
        out.append(catalog.mask_key)
    return out


def _budget(context: grpc.ServicerContext) -> float | None:
    """What is left of the caller's deadline, less a margin for composing the answer."""
    remaining = context.time_remaining()
    return None if remaining is None else max(1.0, remaining * 0.9)


def _route_vouchers(vouchers: Sequence[str]) -> tuple[tuple[str | None, str], ...]:
    """Each voucher with the holder it was issued for (None if it does not decode).

    Decoded once per request, not once per holder: a voucher with an entity
    list takes milliseconds to parse.
    """
    routed = []
    for text in vouchers:
        try:
            holder: str | None = SignedVoucher.decode(text).voucher.holder
        except UnseenError:
            holder = None
        routed.append((holder, text))
    return tuple(routed)


def _vouchers_for(link: HolderLink, routed: Sequence[tuple[str | None, str]]) -> tuple[str, ...]:
    """The vouchers a holder may see: those issued for it (and undecodable ones,
    which it refuses and logs). Others' scopes and entity lists stay with them."""
    return tuple(text for holder, text in routed if holder is None or holder == link.name)


def _forward(subject: str | None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata telling holders which analyst certificate made the request."""
    return ((ANALYST_SUBJECT_HEADER, subject),) if subject else ()


def _analyst(context: grpc.ServicerContext) -> str | None:
    """The analyst's certificate name, when the caller authenticated as an analyst."""
    name, role = caller_identity(context)
    return name if role == "analyst" else None


def serve_coordinator(
    coordinator: Coordinator, listen: str, tls: TlsFiles | None = None
) -> tuple[grpc.Server, int]:
    """Start serving ``coordinator`` on ``listen``; returns (server, port)."""
    servicer = CoordinatorServicer(coordinator)
    return create_server(
        listen,
        [lambda s: coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, s)],
        ["unseen.v1.Coordinator"],
        tls=tls,
    )
