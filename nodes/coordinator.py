"""The coordinator: merges catalogs, fans plans out, adds ciphertexts. Holds no key.

It receives only public contexts (refused if they carry a secret key), plans
and ciphertexts. Composition is all-or-nothing: if any holder hosting the
table fails, the query fails with that holder named — a partial sum is never
returned. Groups a holder suppressed (0 < rows < k) are zeroed in the sum by
a plaintext 0/1 mask, so the analyst cannot decrypt a partial group either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import tenseal as ts

from engine import ckks, serde
from engine.catalog import Catalog, merge
from engine.errors import HolderError, PlanError, RemoteError, UnseenError
from engine.keystore import KeyStore
from engine.layout import layout_for
from engine.plan import AggregatePlan, Limits, check_plan
from engine.rpc import DEADLINES, create_channel, create_server, remote_error, servicer_errors
from protos.unseen.v1 import (
    catalog_pb2,
    coordinator_pb2_grpc,
    crypto_pb2,
    holder_pb2_grpc,
    query_pb2,
)

__all__ = ["Coordinator", "CoordinatorServicer", "HolderLink", "serve_coordinator"]

log = logging.getLogger(__name__)


@dataclass
class HolderLink:
    """A channel to one holder; ``name`` is learned from its catalog."""

    address: str
    name: str = ""
    channel: grpc.Channel | None = None
    stub: holder_pb2_grpc.HolderStub | None = None

    def __post_init__(self) -> None:
        self.channel = create_channel(self.address)
        self.stub = holder_pb2_grpc.HolderStub(self.channel)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


@dataclass
class AggregateAnswer:
    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]


@dataclass
class Coordinator:
    links: list[HolderLink]
    keys: KeyStore = field(default_factory=KeyStore)
    limits: Limits = field(default_factory=Limits)
    catalog_ttl: float = 5.0
    _pool: futures.ThreadPoolExecutor = field(
        default_factory=lambda: futures.ThreadPoolExecutor(64, thread_name_prefix="fanout")
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _catalogs: list[tuple[HolderLink, Catalog]] = field(default_factory=list)
    _catalogs_at: float = 0.0

    @classmethod
    def connect(cls, addresses: Sequence[str], **kwargs: object) -> Coordinator:
        if not addresses:
            raise UnseenError("a coordinator needs at least one --holder")
        return cls([HolderLink(a) for a in addresses], **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for link in self.links:
            if link.channel is not None:
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
                    first.holder, first.code, f"{first.reason} (also failed: {others})"
                )
            raise first
        return [results[link.address] for link in links]

    # -- catalog -------------------------------------------------------------------
    def holder_catalogs(self, refresh: bool = False) -> list[tuple[HolderLink, Catalog]]:
        with self._lock:
            fresh = time.monotonic() - self._catalogs_at < self.catalog_ttl
            if self._catalogs and fresh and not refresh:
                return list(self._catalogs)
        deadline = DEADLINES["catalog"]

        def fetch(link: HolderLink) -> Catalog:
            assert link.stub is not None
            msg = link.stub.GetCatalog(catalog_pb2.GetCatalogRequest(), timeout=deadline)
            catalog = serde.catalog_from_proto(msg)
            link.name = catalog.holder or link.address
            return catalog

        catalogs = self._each(self.links, fetch, deadline)
        names = [c.holder for c in catalogs]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise UnseenError(f"two holders share the name {sorted(duplicates)[0]}")
        with self._lock:
            self._catalogs = list(zip(self.links, catalogs, strict=True))
            self._catalogs_at = time.monotonic()
            return list(self._catalogs)

    def catalog(self) -> Catalog:
        return merge([c for _, c in self.holder_catalogs(refresh=True)])

    # -- keys ----------------------------------------------------------------------
    def register_key(self, public: bytes) -> str:
        """Vet the public context, keep it, and register it with every holder."""
        kid = self.keys.register(public)
        self.holder_catalogs()  # learn holder names for error messages
        self._each(
            self.links, lambda link: self._register_at(link, public), DEADLINES["register_key"]
        )
        log.info("registered key %s with %d holders", kid[:16], len(self.links))
        return kid

    @staticmethod
    def _register_at(link: HolderLink, public: bytes) -> str:
        assert link.stub is not None
        ack = link.stub.RegisterKey(serde.key_chunks(public), timeout=DEADLINES["register_key"])
        return ack.key_id

    # -- aggregate -----------------------------------------------------------------
    def aggregate(
        self, key_id: str, plan: AggregatePlan, deadline: float | None = None
    ) -> AggregateAnswer:
        ctx = self.keys.get(key_id)
        hosted = self.holder_catalogs()
        merged = merge([c for _, c in hosted])
        table = merged.table(plan.table)
        if table is None:
            raise PlanError(merged.conflict(plan.table) or f"no holder serves a table {plan.table}")
        check_plan(plan, table, self.limits)
        layout = layout_for(plan, self.limits)
        links = [link for link, cat in hosted if cat.table(plan.table) is not None]
        budget = min(deadline or DEADLINES["aggregate"], DEADLINES["aggregate"])
        request = serde.aggregate_request(key_id, plan)
        answers = self._each(
            links,
            lambda link: self._aggregate_at(
                link, request, ctx, layout.ciphertexts, plan.codec.slots, budget
            ),
            budget,
        )
        suppressed = sorted({i for _, s in answers for i in s})
        sums = [
            ckks.add_all([vectors[i] for vectors, _ in answers]) for i in range(layout.ciphertexts)
        ]
        if suppressed:
            sums = _mask(ctx, sums, suppressed, layout.record_width, plan.codec.slots)
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
        )

    def _aggregate_at(
        self,
        link: HolderLink,
        request: query_pb2.AggregateRequest,
        ctx: ts.Context,
        expected: int,
        slots: int,
        deadline: float,
    ) -> tuple[list[ts.CKKSVector], tuple[int, ...]]:
        try:
            return self._collect(link, request, ctx, expected, slots, deadline)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        # The holder lost the key (restart or eviction): register it and retry once.
        self._register_at(link, self.keys.public_bytes(request.key_id))
        return self._collect(link, request, ctx, expected, slots, deadline)

    @staticmethod
    def _collect(
        link: HolderLink,
        request: query_pb2.AggregateRequest,
        ctx: ts.Context,
        expected: int,
        slots: int,
        deadline: float,
    ) -> tuple[list[ts.CKKSVector], tuple[int, ...]]:
        assert link.stub is not None
        stream = link.stub.Aggregate(request, timeout=deadline)
        first = next(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise RemoteError("INTERNAL", "answered without a header")
        count, suppressed, _ = serde.header_from_proto(first.header)
        if count != expected:
            raise RemoteError("INTERNAL", f"sent {count} ciphertexts; the plan needs {expected}")
        vectors: list[ts.CKKSVector | None] = [None] * expected
        for reply in stream:
            if reply.WhichOneof("part") != "ciphertext":
                raise RemoteError("INTERNAL", "sent a second header")
            index = reply.ciphertext.index
            if index >= expected or vectors[index] is not None:
                raise RemoteError("INTERNAL", f"sent ciphertext {index} out of place")
            vectors[index] = ckks.load_ciphertext(ctx, reply.ciphertext.data, slots)
        if any(v is None for v in vectors):
            raise RemoteError("INTERNAL", "sent fewer ciphertexts than announced")
        return [v for v in vectors if v is not None], suppressed


def _mask(
    ctx: ts.Context, sums: list[ts.CKKSVector], suppressed: list[int], width: int, slots: int
) -> list[ts.CKKSVector]:
    """Zero the records of suppressed groups with a plaintext 0/1 multiplication."""
    flat = np.ones(len(sums) * slots)
    for group in suppressed:
        flat[group * width : (group + 1) * width] = 0.0
    out = []
    for i, vector in enumerate(sums):
        mask = flat[i * slots : (i + 1) * slots]
        if mask.all():
            out.append(vector)
        elif not mask.any():
            # SEAL refuses a product with an all-zero plaintext (a "transparent"
            # ciphertext); a fresh encryption of zeros says the same safely.
            out.append(ckks.encrypt(ctx, np.zeros(slots)))
        else:
            out.append(vector * mask.tolist())
    return out


class CoordinatorServicer(coordinator_pb2_grpc.CoordinatorServicer):
    def __init__(self, coordinator: Coordinator):
        self.coordinator = coordinator

    @servicer_errors
    def GetCatalog(
        self, request: catalog_pb2.GetCatalogRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.Catalog:
        return serde.catalog_to_proto(self.coordinator.catalog())

    @servicer_errors
    def RegisterKey(
        self, request_iterator: Iterator[crypto_pb2.KeyChunk], context: grpc.ServicerContext
    ) -> crypto_pb2.KeyAck:
        data = serde.join_key_chunks(request_iterator, ckks.MAX_PUBLIC_CONTEXT_BYTES)
        kid = self.coordinator.register_key(data)
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
        remaining = context.time_remaining()
        # Leave the composition step a margin inside the analyst's own deadline.
        budget = None if remaining is None else max(1.0, remaining * 0.9)
        answer = self.coordinator.aggregate(request.key_id, plan, budget)
        yield serde.header_to_proto(len(answer.ciphertexts), answer.suppressed, answer.holders)
        for index, data in enumerate(answer.ciphertexts):
            yield serde.ciphertext_reply(index, data)


def serve_coordinator(coordinator: Coordinator, listen: str) -> tuple[grpc.Server, int]:
    """Start serving ``coordinator`` on ``listen``; returns (server, port)."""
    servicer = CoordinatorServicer(coordinator)
    return create_server(
        listen,
        [lambda s: coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, s)],
        ["unseen.v1.Coordinator"],
    )
