"""The holders a coordinator was configured with: their peers, catalogs and fan-out.

The federation is what the operator configured. Every configured holder that
hosts a table, or whose catalog is unknown right now (down, overloaded,
restarting), takes part in every query on that table; if it cannot, the
query fails with UNAVAILABLE naming it. Only an analyst's explicit
``allow_partial`` leaves holders out, and the answer then names them.

Fan-out treats failures as input (as Flower's strategies do): :meth:`HolderSet.each`
returns the results *and* the failures, and the orchestration decides what a
missing holder means.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from unseen.engine.errors import HolderError, PlanError, RemoteError, UnseenError
from unseen.engine.privacy.masks import Participant
from unseen.engine.query.catalog import Catalog, TableInfo, merge
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan
from unseen.engine.training.psi import AlignAsk, PsiAnswer
from unseen.engine.transport.peers import (
    AggregateAnswer,
    EncodedPlan,
    ModelUpload,
    PreparedRound,
    ScoreStream,
)
from unseen.engine.transport.rpc import DEADLINES
from unseen.engine.transport.serde import catalog_digest

__all__ = ["FanOut", "HolderSet", "Hosts", "Peer", "combine"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Failures that mean "not reachable now" rather than "refused": an overloaded
# holder sheds calls with RESOURCE_EXHAUSTED, which for the federation as a
# whole is the holder being unavailable.
_UNREACHABLE = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})


class Peer(Protocol):
    """What orchestration needs of a holder: unseen.engine.transport.peers.HolderPeer, or a fake in
    unit tests.

    Every method raises :class:`~unseen.engine.errors.UnseenError` (a RemoteError for
    a failed call) and nothing else on purpose.
    """

    address: str
    name: str  # learned from the holder's catalog ("" until then)

    def catalog(self, budget: float | None = None) -> Catalog: ...

    def close(self) -> None: ...

    def register_key(self, public: bytes, budget: float | None = None) -> str: ...

    def prepare_aggregate(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[dict[int, str], tuple[str, ...]]: ...

    def prepare_round(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> PreparedRound: ...

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
    ) -> AggregateAnswer: ...

    def prepare_model(
        self,
        key_id: str,
        features: Sequence[FeatureSpec],
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]: ...

    def register_model(self, model: ModelUpload, budget: float | None = None) -> str: ...

    def align(
        self, ask: AlignAsk, *, budget: float | None = None, subject: str | None = None
    ) -> tuple[str, PsiAnswer, list[str]]: ...

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> ScoreStream: ...


def display(peer: Peer) -> str:
    """How messages name a holder: its catalog name and address once known."""
    return f"{peer.name} ({peer.address})" if peer.name else peer.address


def as_holder_error(peer: Peer, exc: UnseenError) -> HolderError:
    """Any failure at one holder, named after that holder."""
    if isinstance(exc, HolderError):
        return exc
    code = exc.code if isinstance(exc, RemoteError) else exc.grpc_code
    reason = exc.reason if isinstance(exc, RemoteError) else str(exc)
    reason = reason.removeprefix(f"holder {display(peer)} ")  # a peer's own label, once is enough
    if code == "RESOURCE_EXHAUSTED":
        code, reason = "UNAVAILABLE", f"is overloaded ({reason})"
    return HolderError(display(peer), code, reason)


def combine(failures: Sequence[HolderError]) -> HolderError:
    """One error naming every failed holder; the first (by name) gives the code."""
    ordered = sorted(failures, key=lambda e: e.holder)
    first = ordered[0]
    if len(ordered) == 1:
        return first
    others = ", ".join(e.holder for e in ordered[1:])
    return HolderError(first.holder, first.code, f"{first.detail} (also failed: {others})")


@dataclass
class FanOut(Generic[_T]):
    """What a parallel call to several holders gave: results and failures, by address."""

    results: dict[str, _T]
    failures: dict[str, HolderError]

    def require_all(self, peers: Sequence[Peer]) -> list[_T]:
        """The results in ``peers`` order, or one error naming every failed holder."""
        if self.failures:
            raise combine(list(self.failures.values()))
        return [self.results[peer.address] for peer in peers]


@dataclass(frozen=True)
class Hosts:
    """The holders a query on one table goes to, and the merged view of that table."""

    peers: tuple[Peer, ...]
    table: TableInfo
    missing: tuple[str, ...] = ()  # configured holders left out (allow_partial only)
    # Every holder that answered its catalog now, hosting the table or not (masks).
    fresh: tuple[tuple[Peer, Catalog], ...] = ()
    # The digest of each of those catalogs, by address (serde.catalog_digest).
    digests: dict[str, str] = field(default_factory=dict)
    # From the cached catalog round: the query must check every holder's digest
    # (round 1's replies; a catalog call to the others) before round 2.
    cached: bool = False


@dataclass
class _Round:
    """One fetch of every configured holder's catalog."""

    fresh: list[tuple[Peer, Catalog]]
    unknown: dict[str, HolderError]  # by address: holders that did not answer
    at: float
    digests: dict[str, str] = field(default_factory=dict)  # by address


@dataclass
class HolderSet:
    """The configured holders. Holds peers only: no key, no data."""

    peers: list[Peer]
    catalog_ttl: float = 5.0
    workers: int = 64
    _pool: futures.ThreadPoolExecutor = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _round: _Round | None = None
    _known: dict[str, Catalog] = field(default_factory=dict)  # last catalog per address

    def __post_init__(self) -> None:
        if not self.peers:
            raise UnseenError("a coordinator needs at least one --holder")
        self._pool = futures.ThreadPoolExecutor(self.workers, thread_name_prefix="fanout")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for peer in self.peers:
            peer.close()

    def by_address(self, address: str) -> Peer:
        return next(p for p in self.peers if p.address == address)

    # -- fan-out -----------------------------------------------------------------
    def each(self, peers: Sequence[Peer], call: Callable[[Peer], _T], budget: float) -> FanOut[_T]:
        """Run ``call(peer)`` on every peer in parallel, within ``budget`` seconds.

        Each call runs in a copy of the caller's context, so the served call's scope
        (``unseen.engine.transport.cancellation``) reaches the workers: when the analyst's call
        ends,
        the peers cancel their calls to holders instead of letting them work on.
        """
        pending = {
            self._pool.submit(contextvars.copy_context().run, call, peer): peer for peer in peers
        }
        done, not_done = futures.wait(pending, timeout=budget + 1.0)
        results: dict[str, _T] = {}
        failures: dict[str, HolderError] = {}
        for fut in not_done:
            fut.cancel()
            peer = pending[fut]
            failures[peer.address] = HolderError(
                display(peer), "DEADLINE_EXCEEDED", "did not answer in time"
            )
        for fut in done:
            peer = pending[fut]
            try:
                results[peer.address] = fut.result()
            except UnseenError as exc:
                failures[peer.address] = as_holder_error(peer, exc)
        return FanOut(results, failures)

    # -- catalogs ----------------------------------------------------------------
    def _fetch(self, budget: float | None, refresh: bool) -> _Round:
        """Every configured holder's catalog; a cached round only if it is fresh and whole.

        A round in which some holder did not answer is never reused: the next
        request asks that holder again instead of carrying on without it.
        """
        with self._lock:
            last = self._round
            if (
                not refresh
                and last is not None
                and not last.unknown
                and time.monotonic() - last.at < self.catalog_ttl
            ):
                return last
        # Catalogs are small: a holder that takes longer than this is treated as
        # unavailable for this round, and most of the caller's budget is left for the work.
        wait = min(DEADLINES["catalog_fetch"], (budget or DEADLINES["catalog"]) / 2)
        outcome = self.each(self.peers, lambda peer: peer.catalog(wait), wait)
        unknown = {}
        for address, error in outcome.failures.items():
            log.warning(
                "holder %s did not answer its catalog request (%s)", error.holder, error.code
            )
            unknown[address] = HolderError(
                error.holder, error.code, f"{error.detail}; its catalog is unknown"
            )
        fresh = [
            (p, outcome.results[p.address]) for p in self.peers if p.address in outcome.results
        ]
        names = [c.holder for _, c in fresh]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise UnseenError(f"two holders share the name {sorted(duplicates)[0]}")
        digests = {p.address: catalog_digest(c) for p, c in fresh}
        current = _Round(fresh, unknown, time.monotonic(), digests)
        with self._lock:
            self._known.update({p.address: c for p, c in fresh})
            self._round = current
        return current

    def catalog(self, budget: float | None = None) -> Catalog:
        """The merged catalog analysts compile against.

        A holder that does not answer now contributes its last known catalog,
        so the analyst can still compile a query; the query itself then fails
        naming that holder (or, with ``allow_partial``, leaves it out).
        """
        current = self._fetch(budget, refresh=False)
        with self._lock:
            stale = [self._known[a] for a in current.unknown if a in self._known]
        return merge([c for _, c in current.fresh] + stale)

    def published(
        self, budget: float | None = None
    ) -> tuple[list[tuple[Peer, Catalog]], list[tuple[Catalog, HolderError]]]:
        """Catalogs fetched now, and the last known ones of holders silent now.

        What a city coordinator publishes upward (unseen.nodes.city): a silent
        holder's tables stay listed, so a query on them reaches the city and
        fails naming that holder rather than being answered without the city's
        rows. A holder never reached may host anything: the call fails naming it.
        """
        current = self._fetch(budget, refresh=True)
        with self._lock:
            known = dict(self._known)
        never = [e for a, e in current.unknown.items() if a not in known]
        if never:
            raise combine(never)
        return current.fresh, [(known[a], e) for a, e in current.unknown.items()]

    def names(self, budget: float | None = None) -> None:
        """Learn the holders' names (for messages) if a catalog round has not yet."""
        if any(not p.name for p in self.peers):
            self._fetch(budget, refresh=False)

    def _silent(self, current: _Round, tables: Sequence[str]) -> list[HolderError]:
        """The holders that did not answer now and may host one of ``tables``.

        A holder that did not answer is assumed to host what it last published;
        one never reached may host anything.
        """
        with self._lock:
            known = dict(self._known)
        return [
            error
            for address, error in current.unknown.items()
            if address not in known or any(known[address].table(t) is not None for t in tables)
        ]

    def whole(
        self, tables: Sequence[str], budget: float | None = None
    ) -> list[tuple[Peer, Catalog]]:
        """Fresh catalogs, or an error naming every silent holder that may host ``tables``."""
        current = self._fetch(budget, refresh=True)
        silent = self._silent(current, tables)
        if silent:
            raise combine(silent)
        return current.fresh

    def hosts(self, table: str, budget: float | None = None, allow_partial: bool = False) -> Hosts:
        """The holders a query on ``table`` must reach, from catalogs fetched now.

        Fetched now rather than cached: a holder restarted with a different
        catalog must not be left out of (or wrongly sent) a query. A holder
        that does not answer and may host the table fails the query, unless
        the analyst allowed a partial answer; then the answer names it.
        """
        current = self._fetch(budget, refresh=True)
        silent = self._silent(current, [table])
        if silent and not allow_partial:
            raise combine(silent)
        return self._hosts(current, table, tuple(sorted(e.holder for e in silent)), False)

    def cached_hosts(self, table: str) -> Hosts | None:
        """:meth:`hosts` from the last catalog round in which every holder answered,
        whatever its age, marked ``cached``; None without one (or if it knows no ``table``).

        The caller checks every holder's current digest (round 1's replies, and
        :meth:`unchanged` for the holders the query does not reach) before it
        relies on a catalog's mask key, and calls :meth:`hosts` if one differs.
        """
        with self._lock:
            last = self._round
        if last is None or last.unknown or len(last.digests) != len(self.peers):
            return None
        try:
            return self._hosts(last, table, (), True)
        except PlanError:
            return None

    def _hosts(self, current: _Round, table: str, missing: tuple[str, ...], cached: bool) -> Hosts:
        merged = merge([c for _, c in current.fresh])
        info = merged.table(table)
        if info is None:
            raise PlanError(merged.conflict(table) or f"no holder serves a table {table}")
        hosting = tuple(p for p, c in current.fresh if c.table(table) is not None)
        return Hosts(hosting, info, missing, tuple(current.fresh), dict(current.digests), cached)

    def forget(self) -> None:
        """Drop the cached catalog round: a holder in it did not answer just now."""
        with self._lock:
            self._round = None

    def unchanged(self, peers: Sequence[Peer], digests: dict[str, str], budget: float) -> bool:
        """Whether every one of ``peers`` answers its catalog now with the digest cached.

        For the holders a query does not reach: one that now hosts the table
        (or answers nothing) must not be left out on the strength of a cached
        catalog. Nothing is cached here; a False means "fetch them all again".
        """
        if not peers:
            return True
        wait = min(DEADLINES["catalog_fetch"], budget / 2)
        outcome = self.each(peers, lambda peer: catalog_digest(peer.catalog(wait)), wait)
        return not outcome.failures and all(
            outcome.results.get(p.address) == digests.get(p.address) for p in peers
        )
