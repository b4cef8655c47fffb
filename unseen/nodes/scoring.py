"""The coordinator's scoring: assign features to holders, register models, add partials.

A model's features are assigned to every holder hosting their tables, from
catalogs fetched now (a feature must not silently lose a host). Each holder
receives only its own features' encrypted weights. A score opens one stream
per assigned holder, read in a thread into a bounded queue, and yields the sum
of the holders' partial-score blocks in order. A holder that lost the key or
the model (NOT_FOUND) gets it again once (:func:`unseen.engine.transport.peers.retry_not_found`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import HolderError, PlanError, UnknownKeyError, UnseenError
from unseen.engine.query.catalog import merge
from unseen.engine.query.model import FeatureSpec
from unseen.engine.transport.peers import ModelUpload, ScoreStream, retry_not_found
from unseen.engine.transport.rpc import DEADLINES
from unseen.nodes.holders import HolderSet, Peer, as_holder_error, display
from unseen.nodes.vouchers import Routed, route_vouchers, vouchers_for

__all__ = ["CoordinatorModel", "ModelBook", "ScoreAnswer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoordinatorModel:
    """A registered model: which holder computes which features, with their weights."""

    key_id: str
    model_id: str
    features: tuple[FeatureSpec, ...]
    exponents: tuple[int, ...]
    weights: tuple[bytes, ...]
    assignment: tuple[tuple[str, tuple[int, ...]], ...]  # holder address -> feature indices

    def upload_for(self, address: str) -> ModelUpload:
        """What one holder receives: its own features' encrypted weights only."""
        indices = dict(self.assignment)[address]
        return ModelUpload(
            self.key_id,
            self.model_id,
            tuple(self.features[i] for i in indices),
            tuple(self.exponents[i] for i in indices),
            tuple(self.weights[i] for i in indices),
        )


@dataclass(frozen=True)
class ScoreAnswer:
    """A score in progress: block count, holders, receipts, and the summed blocks."""

    count: int
    holders: tuple[str, ...]
    receipts: list[str]
    blocks: Iterator[bytes]


def _assign(holders: HolderSet, features: Sequence[FeatureSpec]) -> list[tuple[Peer, list[int]]]:
    """Which holders compute which features: every host of a feature's table."""
    hosted = holders.whole(sorted({f.table for f in features}))
    merged = merge([c for _, c in hosted])
    out: dict[str, tuple[Peer, list[int]]] = {}
    for index, feature in enumerate(features):
        if merged.table(feature.table) is None:
            raise PlanError(
                merged.conflict(feature.table) or f"no holder serves a table {feature.table}"
            )
        hosts = [peer for peer, cat in hosted if cat.table(feature.table) is not None]
        additive = feature.aggregate in ("", "sum", "count")
        if len(hosts) > 1 and (not additive or feature.default != 0 or feature.transform):
            raise PlanError(
                f"feature {feature.table}.{feature.column}: {len(hosts)} holders host "
                f"{feature.table}, so the feature must be additive across them (a sum, a "
                "count or a plain column, with default 0 and no transform)"
            )
        for peer in hosts:
            out.setdefault(peer.address, (peer, []))[1].append(index)
    return list(out.values())


@dataclass
class ModelBook:
    """The models registered with the coordinator (bounded, oldest evicted first)."""

    max_models: int = 32
    _models: OrderedDict[tuple[str, str], CoordinatorModel] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key_id: str, model_id: str) -> CoordinatorModel | None:
        with self._lock:
            return self._models.get((key_id, model_id))

    def has_model(self, keys: KeyStore, key_id: str, model_id: str) -> bool:
        with self._lock:
            return (key_id, model_id) in self._models and key_id in keys

    def require_model(self, keys: KeyStore, key_id: str, model_id: str) -> None:
        """Refuse a score for an unknown model before reading its entities."""
        if not self.has_model(keys, key_id, model_id):
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")

    def prepare_model(
        self,
        holders: HolderSet,
        keys: KeyStore,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Per feature, the largest magnitude exponent any hosting holder reports."""
        keys.get(key_id)
        assignment = _assign(holders, features)
        indices_of = {peer.address: indices for peer, indices in assignment}
        routed = route_vouchers(vouchers)
        budget = DEADLINES["prepare_model"]

        def ask(peer: Peer) -> tuple[list[int], list[str]]:
            indices = indices_of[peer.address]
            return peer.prepare_model(
                key_id,
                [features[i] for i in indices],
                ids,
                vouchers_for(peer.name, routed),
                budget=budget,
                subject=subject,
            )

        peers = [peer for peer, _ in assignment]
        answers = holders.each(peers, ask, budget).require_all(peers)
        exponents = [0] * len(features)
        receipts: list[str] = []
        for (_, indices), (reply, holder_receipts) in zip(assignment, answers, strict=True):
            receipts += holder_receipts
            for index, exponent in zip(indices, reply, strict=True):
                exponents[index] = max(exponents[index], exponent)
        return exponents, receipts

    def register_model(
        self,
        holders: HolderSet,
        keys: KeyStore,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str:
        """Keep the model and give each holder its features' encrypted weights only.

        The first registration of an id wins (see HolderNode.register_model).
        """
        if self.has_model(keys, key_id, model_id):
            return model_id
        ctx = keys.get(key_id)
        for data in weights:
            ckks.load_ciphertext(ctx, data, ckks.PARAMS.slots, depth=0)
        assignment = _assign(holders, features)
        model = CoordinatorModel(
            key_id,
            model_id,
            features,
            exponents,
            weights,
            tuple((peer.address, tuple(ix)) for peer, ix in assignment),
        )
        peers = [peer for peer, _ in assignment]
        holders.each(
            peers, lambda peer: _register_at(peer, model, keys), DEADLINES["register_key"]
        ).require_all(peers)
        with self._lock:
            self._models[(key_id, model_id)] = model
            self._models.move_to_end((key_id, model_id))
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        log.info(
            "registered a model of %d features with %d holders", len(features), len(assignment)
        )
        return model_id

    def score(
        self,
        holders: HolderSet,
        keys: KeyStore,
        key_id: str,
        model_id: str,
        ids: list[str],
        budget: float | None = None,
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> ScoreAnswer:
        """Fan the entities out, then yield the sum of the holders' partials block by block.

        The receipts are known once every holder has sent its header.
        """
        model = self.get(key_id, model_id)
        if model is None:
            raise UnknownKeyError(f"model {model_id[:16]}... is not registered here")
        ctx = keys.get(key_id)
        slots = ckks.PARAMS.slots
        count = -(-len(ids) // slots)
        holders.names()
        hosts: list[Peer] = [holders.by_address(address) for address, _ in model.assignment]
        budget = min(budget or DEADLINES["score"], DEADLINES["score"])
        routed = route_vouchers(vouchers)
        streams = [
            _PartialStream(peer, model, keys, ids, count, budget, routed, subject) for peer in hosts
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

        return ScoreAnswer(
            count, tuple(peer.name or peer.address for peer in hosts), receipts, sums()
        )


def _register_at(peer: Peer, model: CoordinatorModel, keys: KeyStore) -> str:
    """Give one holder its part of the model; if it lost the analyst's key, the key first."""
    return retry_not_found(
        lambda: peer.register_model(model.upload_for(peer.address)),
        lambda: peer.register_key(keys.public_bytes(model.key_id)),
    )


class _PartialStream:
    """One holder's Score call, read in a thread into a bounded queue."""

    def __init__(
        self,
        peer: Peer,
        model: CoordinatorModel,
        keys: KeyStore,
        ids: list[str],
        count: int,
        deadline: float,
        routed: Routed,
        subject: str | None,
    ):
        self.peer, self.model, self.keys = peer, model, keys
        self.ids, self.count, self.deadline = ids, count, deadline
        self.routed, self.subject = routed, subject
        # The header (with the holder's receipts) or the error that came instead.
        self.header: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        # Bounded: a fast holder waits (gRPC flow control) for a slow one.
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=8)
        self.stream: ScoreStream | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="score-stream")

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self.cancelled = True
        if self.stream is not None:
            self.stream.cancel()

    def _open(self) -> ScoreStream:
        self.stream = self.peer.score(
            self.model.key_id,
            self.model.model_id,
            self.ids,
            vouchers_for(self.peer.name, self.routed),
            budget=self.deadline,
            subject=self.subject,
        )
        return self.stream

    def _run(self) -> None:
        header_sent = False
        try:
            # The holder lost the key or the model: register them and ask again.
            stream = retry_not_found(
                self._open, lambda: _register_at(self.peer, self.model, self.keys)
            )
            if stream.count != self.count:
                raise HolderError(display(self.peer), "INTERNAL", "answered a wrong score header")
            self.header.put(("ok", list(stream.receipts)))
            header_sent = True
            for index, data in enumerate(stream.blocks()):
                self.queue.put(("ok", (index, data)))
            self.queue.put(("end", None))
        except UnseenError as exc:
            if self.cancelled or getattr(exc, "code", None) == "CANCELLED":
                return
            error = as_holder_error(self.peer, exc)
            if not header_sent:
                self.header.put(("error", error))
            self.queue.put(("error", error))

    def _take(self, source: queue.Queue[tuple[str, Any]]) -> tuple[str, Any]:
        """The next item the reader thread put, or the holder's error, within the deadline."""
        try:
            kind, item = source.get(timeout=self.deadline)
        except queue.Empty:
            raise HolderError(
                display(self.peer), "DEADLINE_EXCEEDED", "did not answer in time"
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
            raise HolderError(
                display(self.peer), "INTERNAL", "sent fewer score blocks than announced"
            )
        got, data = item
        if got != index:
            raise HolderError(
                display(self.peer), "INTERNAL", f"sent block {got} where {index} was due"
            )
        # A partial score is one rescale deep (one ciphertext-plaintext product).
        try:
            return ckks.load_ciphertext(ctx, data, slots, depth=1)
        except UnseenError as exc:
            raise as_holder_error(self.peer, exc) from exc
