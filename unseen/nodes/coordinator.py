"""The coordinator: merges catalogs, fans plans out, adds ciphertexts. Holds no key.

It receives only public contexts (refused if they carry a secret key), plans
and ciphertexts. This module is the facade the servicer calls; the work lives
by concern in :mod:`unseen.nodes.holders` (the configured holders, their catalogs and
fan-out), :mod:`unseen.nodes.aggregate` (one aggregate query) and
:mod:`unseen.nodes.scoring` (models and scores). Composition is all-or-nothing: if
any configured holder that may host the table fails, the query fails with that
holder named — a partial sum is returned only when the analyst asks for one,
and then names the holders left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import PlanError, UnseenError
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan, Limits
from unseen.engine.training.psi import AlignAsk, PsiAnswer
from unseen.engine.training.train_job import TrainAnswer, TrainCall
from unseen.engine.transport import serde
from unseen.engine.transport.memory_budget import MemoryBudget, entity_id_budget
from unseen.engine.transport.peers import HolderPeer
from unseen.engine.transport.rpc import DEADLINES
from unseen.engine.transport.tls import TlsFiles
from unseen.nodes import aggregate as aggregating
from unseen.nodes.aggregate import CombinedAnswer
from unseen.nodes.holders import HolderSet, Peer, as_holder_error
from unseen.nodes.scoring import ModelBook, ScoreAnswer
from unseen.nodes.training import CoordinatorJobs

__all__ = ["Coordinator", "serve_coordinator"]

log = logging.getLogger(__name__)


@dataclass
class Coordinator:
    """The coordinator's domain object: configured holders, public keys, models."""

    holders: HolderSet
    keys: KeyStore = field(default_factory=KeyStore)
    limits: Limits = field(default_factory=Limits)
    models: ModelBook = field(default_factory=ModelBook)
    max_entities: int = serde.MAX_ENTITIES
    # Entity ids held at once by all calls together, as at a holder
    # (unseen.engine.transport.memory_budget).
    entity_budget: MemoryBudget = field(default_factory=entity_id_budget)
    training: CoordinatorJobs = field(default_factory=CoordinatorJobs)  # issue 15

    @classmethod
    def connect(
        cls, addresses: Sequence[str], tls: TlsFiles | None = None, **kwargs: object
    ) -> Coordinator:
        """A coordinator of the holders at ``addresses`` (one peer each)."""
        return cls.of([HolderPeer(a, tls) for a in addresses], **kwargs)

    @classmethod
    def of(cls, peers: Sequence[Peer], **kwargs: object) -> Coordinator:
        """A coordinator of the given peers (real ones, or fakes in unit tests)."""
        return cls(HolderSet(list(peers)), **kwargs)  # type: ignore[arg-type]

    @property
    def catalog_ttl(self) -> float:
        return self.holders.catalog_ttl

    @catalog_ttl.setter
    def catalog_ttl(self, seconds: float) -> None:
        self.holders.catalog_ttl = seconds

    def close(self) -> None:
        self.holders.close()

    def catalog(self, deadline: float | None = None) -> Catalog:
        """The merged catalog (refreshed when older than ``catalog_ttl``)."""
        return self.holders.catalog(deadline)

    def register_key(self, public: bytes, deadline: float | None = None) -> str:
        """Vet the public context, keep it, and register it with every holder that answers.

        A holder that is down now gets the key later: it answers NOT_FOUND to
        its first request and the coordinator registers the key then.
        """
        kid = self.keys.register(public)
        self.holders.names(deadline)
        budget = min(deadline or DEADLINES["register_key"], DEADLINES["register_key"])
        peers = self.holders.peers
        outcome = self.holders.each(peers, lambda p: p.register_key(public, budget), budget)
        if outcome.failures:
            codes = sorted({e.code for e in outcome.failures.values()})
            log.warning("key %s not registered everywhere yet: %s", kid[:16], ", ".join(codes))
        log.info("registered key %s", kid[:16])
        return kid

    def aggregate(
        self,
        key_id: str,
        plan: AggregatePlan,
        deadline: float | None = None,
        vouchers: Sequence[str] = (),
        subject: str | None = None,
        allow_partial: bool = False,
    ) -> CombinedAnswer:
        """See :func:`unseen.nodes.aggregate.aggregate`."""
        return aggregating.aggregate(
            self.holders,
            self.keys,
            self.limits,
            key_id,
            plan,
            budget=deadline,
            vouchers=vouchers,
            subject=subject,
            allow_partial=allow_partial,
        )

    # -- scoring -------------------------------------------------------------------
    def prepare_model(
        self,
        key_id: str,
        features: tuple[FeatureSpec, ...],
        ids: list[str],
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        return self.models.prepare_model(
            self.holders, self.keys, key_id, features, ids, vouchers, subject
        )

    def register_model(
        self,
        key_id: str,
        model_id: str,
        features: tuple[FeatureSpec, ...],
        exponents: tuple[int, ...],
        weights: tuple[bytes, ...],
    ) -> str:
        return self.models.register_model(
            self.holders, self.keys, key_id, model_id, features, exponents, weights
        )

    def has_model(self, key_id: str, model_id: str) -> bool:
        return self.models.has_model(self.keys, key_id, model_id)

    def require_model(self, key_id: str, model_id: str) -> None:
        self.models.require_model(self.keys, key_id, model_id)

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: list[str],
        deadline: float | None = None,
        vouchers: Sequence[str] = (),
        subject: str | None = None,
    ) -> ScoreAnswer:
        return self.models.score(
            self.holders, self.keys, key_id, model_id, ids, deadline, vouchers, subject
        )

    # -- entity alignment (issue 15) --------------------------------------------------
    def align(
        self, ask: AlignAsk, deadline: float | None = None, subject: str | None = None
    ) -> tuple[str, PsiAnswer, list[str]]:
        """Relay one PSI round to the holder named in ``ask``.

        The coordinator sees only points blinded under keys it never holds (and
        the message sizes); it relays so that the analyst needs no route to holders.
        """
        self.holders.names(deadline)
        peer = next((p for p in self.holders.peers if p.name == ask.holder), None)
        if peer is None:
            raise PlanError(f"no configured holder is named {ask.holder!r}")
        budget = min(deadline or DEADLINES["align"], DEADLINES["align"])
        try:
            return peer.align(ask, budget=budget, subject=subject)
        except UnseenError as exc:
            raise as_holder_error(peer, exc) from exc

    def train(
        self, call: TrainCall, deadline: float | None = None, subject: str | None = None
    ) -> TrainAnswer:
        """One step of a training job: relay and add, holding no key (unseen.nodes.training)."""
        public = self.keys.public_bytes(call.key_id) if call.key_id in self.keys else None
        return self.training.handle(self.holders, public, call, subject)


def serve_coordinator(
    coordinator: Coordinator,
    listen: str,
    tls: TlsFiles | None = None,
    metrics: Any = None,
    city: Any = None,
) -> Any:
    """Start serving ``coordinator`` on ``listen``; returns (server, port).

    The gRPC servicer lives at the transport edge (:mod:`unseen.nodes.servicers`);
    this name stays here for the callers that start a coordinator.
    """
    from unseen.nodes.servicers import serve_coordinator as serve  # the edge imports us, not we it

    return serve(coordinator, listen, tls, metrics=metrics, city=city)
