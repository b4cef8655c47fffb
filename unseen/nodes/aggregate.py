"""The coordinator's aggregate: two rounds at the holders, then add the masked answers.

One query, in order:

1. :meth:`HolderSet.hosts` decides who must take part: every configured
   holder hosting the table (or whose catalog is unknown). Without the
   analyst's ``allow_partial``, a holder that cannot be reached fails the
   query here. :func:`participating` adds the holders a voucher names as the
   federation and, while fewer than two take part, holders without the table
   that contribute masks only (a table one holder hosts is still masked).
2. Round 1: each participant runs the plan once (charged and ledgered where
   it reads data) and names the groups failing its suppression rules
   (:func:`unseen.engine.privacy.suppression.failing_groups`); the one NOT_FOUND → register
   the key → retry of :func:`unseen.engine.transport.peers.retry_not_found` applies here.
3. Round 2: every participant gets the same query id, a fresh nonce, the
   participants with their mask keys and the union of failing groups; it
   zeroes the union, adds its pairwise masks (:mod:`unseen.engine.privacy.masks`) and
   encrypts under the analyst's BFV key. Its ciphertexts are loaded under that
   key, so garbage bytes fail naming the holder.
4. All answered, or the query fails naming every holder that did not: never
   a partial sum. The coordinator adds the ciphertexts; it has nothing to
   zero (suppression happened before encryption) and no answer it sees
   alone means anything (each is uniformly random modulo BFV's prime ``t``).
   Loading, adding and serialising go through :mod:`unseen.engine.crypto.bfv`
   only, so this module does not depend on the scheme's API.

The coordinator holds no secret key and no mask key.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import tenseal as ts

from unseen.engine.crypto import bfv
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import HolderError, PlanError, PolicyError, RemoteError, UnseenError
from unseen.engine.privacy.masks import NONCE_BYTES, Participant
from unseen.engine.privacy.participants import DEFAULT_MIN_HOLDERS
from unseen.engine.privacy.suppression import first_reasons
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.layout import layout_for
from unseen.engine.query.plan import AggregatePlan, Limits, check_plan
from unseen.engine.transport.peers import (
    AggregateAnswer,
    PreparedRound,
    encode_plan,
    retry_not_found,
)
from unseen.engine.transport.rpc import DEADLINES
from unseen.nodes.holders import HolderSet, Hosts, Peer, display
from unseen.nodes.vouchers import federation_of, route_vouchers, vouchers_for

__all__ = [
    "CombinedAnswer",
    "MaskedRound",
    "aggregate",
    "load_answer",
    "masked_sum",
    "participating",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CombinedAnswer:
    """The federation's answer: summed ciphertexts and what the analyst may know about them."""

    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # configured holders left out (allow_partial only)
    reasons: tuple[
        str, ...
    ] = ()  # per suppressed group, unseen.engine.privacy.suppression's first reason


def participating(
    hosts: Sequence[Peer],
    fresh: Sequence[tuple[Peer, Catalog]],
    federation: frozenset[str] = frozenset(),
    least: int = DEFAULT_MIN_HOLDERS,
) -> list[tuple[Peer, tuple[Participant, ...]]]:
    """The participants of one query with their published mask keys (a city's: its leaves').

    Every host of the table; every holder a voucher names as the federation;
    and, while they are fewer than ``least``, other holders in name order
    (they take part with masks only).
    """
    catalogs = {peer.address: catalog for peer, catalog in fresh}

    def named(peer: Peer) -> bool:  # a city is named when one of its leaves is
        catalog = catalogs[peer.address]
        return bool({catalog.holder, *(k.holder for k in catalog.leaves)} & federation)

    chosen = list(hosts)
    others = sorted(
        (peer for peer, _ in fresh if peer not in chosen),
        key=lambda peer: (not named(peer), peer.name),
    )
    count = sum(1 for peer in others if named(peer))
    chosen += others[: max(count, least - len(chosen))]
    out = []
    for peer in chosen:
        catalog = catalogs.get(peer.address)
        if catalog is None or not catalog.mask_participants:
            raise HolderError(display(peer), "FAILED_PRECONDITION", "publishes no mask key")
        # A city coordinator (unseen.nodes.city) takes part with its leaves' keys.
        out.append((peer, catalog.mask_participants))
    if sum(len(keys) for _, keys in out) < least:
        raise PolicyError(
            f"an aggregate needs at least {least} holders taking part (each answer is "
            f"masked by its peers'); {len(chosen)} can be reached"
        )
    return out


def aggregate(
    holders: HolderSet,
    keys: KeyStore,
    limits: Limits,
    key_id: str,
    plan: AggregatePlan,
    *,
    budget: float | None = None,
    vouchers: Sequence[str] = (),
    subject: str | None = None,
    allow_partial: bool = False,
) -> CombinedAnswer:
    """Answer ``plan`` from every holder that hosts its table, in two masked rounds.

    ``subject`` is the analyst's certificate name (mTLS), forwarded to the
    holders so that a voucher bound to it can be checked there.
    """
    ctx = keys.aggregate_context(key_id)
    budget = min(budget or DEADLINES["aggregate"], DEADLINES["aggregate"])
    query = _Query(holders, keys, limits, key_id, plan, ctx, budget, vouchers, subject)
    # The cached catalogs first: every holder's digest is checked before round 2
    # (and the holders the query does not reach are asked for theirs), so a
    # changed catalog or mask key is never used: the query starts again below.
    hosts = holders.cached_hosts(plan.table)
    if hosts is not None:
        try:
            return _answer(query, hosts)
        except _StaleCatalog as exc:
            log.info("the catalog of %s changed; fetching every catalog again", exc.holder)
        except (PlanError, PolicyError):
            pass  # raised before round 1 only: the cached catalogs may be what refuses
        except HolderError as exc:
            if exc.code in _SILENT:
                holders.forget()  # the next query asks every holder for its catalog
            if exc.code not in _UNREACHABLE:
                raise
            # A holder down since the cached round: the fresh round decides what it
            # means (the query fails naming it, or allow_partial leaves it out).
            log.info("holder %s did not answer round 1; fetching every catalog again", exc.holder)
    return _answer(query, holders.hosts(plan.table, budget, allow_partial))


class _StaleCatalog(UnseenError):
    """A holder's catalog differs from the copy the query was planned with."""

    def __init__(self, holder: str):
        super().__init__(f"the catalog of holder {holder} changed during the query")
        self.holder = holder


# A holder that could not be reached (down, restarting): not a refusal, and known
# at once, so the query is worth one fresh try. Not DEADLINE_EXCEEDED: the
# caller's budget is spent by then, and the error names the holder as it is.
_UNREACHABLE = frozenset({"UNAVAILABLE"})
# A holder that did not answer: the cached round must not pick it again (as a
# participant for masks only, say) when a fresh one would leave it out.
_SILENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class _Query:
    """One aggregate request as the coordinator received it."""

    holders: HolderSet
    keys: KeyStore
    limits: Limits
    key_id: str
    plan: AggregatePlan
    ctx: ts.Context
    budget: float
    vouchers: Sequence[str]
    subject: str | None


def _answer(query: _Query, hosts: Hosts) -> CombinedAnswer:
    """Both rounds at the holders ``hosts`` names; raises _StaleCatalog if a catalog
    (mask keys included) changed since ``hosts`` was taken from the cache."""
    holders, keys, limits, key_id, plan = (
        query.holders,
        query.keys,
        query.limits,
        query.key_id,
        query.plan,
    )
    ctx, budget, vouchers, subject = query.ctx, query.budget, query.vouchers, query.subject
    check_plan(plan, hosts.table, limits)
    layout = layout_for(plan, limits)
    encoded = encode_plan(plan)
    routed = route_vouchers(vouchers)
    slots = plan.codec.slots
    chosen = participating(hosts.peers, hosts.fresh, federation_of(vouchers))
    peers = [peer for peer, _ in chosen]
    # Vouchers are issued for leaf holders: a city relays those of its leaves.
    leaf_names = {peer.address: {peer.name, *(k.holder for k in keys)} for peer, keys in chosen}
    query_id = secrets.token_hex(16)
    if hosts.cached:
        # The holders this query does not reach: one that changed (now hosting the
        # table, say) must not be left out because of a cached catalog.
        others = [peer for peer in holders.peers if peer not in peers]
        if not holders.unchanged(others, hosts.digests, budget):
            raise _StaleCatalog(", ".join(display(peer) for peer in others))

    def prepare(peer: Peer) -> PreparedRound:
        return retry_not_found(
            lambda: peer.prepare_round(
                key_id,
                encoded,
                query_id,
                vouchers_for(leaf_names[peer.address], routed),
                budget=budget,
                subject=subject,
            ),
            lambda: peer.register_key(keys.public_bytes(key_id), budget),
        )

    prepared = holders.each(peers, prepare, budget).require_all(peers)
    for peer, reply in zip(peers, prepared, strict=True):
        # Round 2 uses the mask keys of the catalogs: never a copy older than the holder's.
        if reply.catalog_digest != hosts.digests.get(peer.address):
            if hosts.cached:
                raise _StaleCatalog(display(peer))
            if reply.catalog_digest:  # changed between the fetch and round 1
                raise HolderError(
                    display(peer),
                    "UNAVAILABLE",
                    "changed its catalog during the query; start the query again",
                )
    suppressed = sorted({i for r in prepared for i in r.failing})
    reasons = first_reasons(suppressed, [r.failing for r in prepared])
    nonce = os.urandom(NONCE_BYTES)
    participants = [key for _, keys in chosen for key in keys]

    sums = masked_sum(
        holders,
        peers,
        MaskedRound(key_id, query_id, nonce, participants, suppressed),
        ctx,
        layout.ciphertexts,
        slots,
        budget=budget,
        subject=subject,
    )
    log.info(
        "aggregate on %s over %d holders (%d hosting): %d ciphertexts, %d groups suppressed%s",
        plan.table,
        len(peers),
        len(hosts.peers),
        len(sums),
        len(suppressed),
        f", {len(hosts.missing)} holders left out (partial)" if hosts.missing else "",
    )
    return CombinedAnswer(
        [bfv.serialize(v) for v in sums],
        tuple(suppressed),
        # The leaf holders inside (a city's, behind it), so the analyst counts dp shares right.
        hosts.table.holders or tuple(peer.name or peer.address for peer in hosts.peers),
        tuple(receipt for r in prepared for receipt in r.receipts),
        hosts.missing,
        reasons,
    )


@dataclass(frozen=True)
class MaskedRound:
    """What round 2 sends every participant alike."""

    key_id: str
    query_id: str
    nonce: bytes
    participants: Sequence[Participant]
    suppressed: Sequence[int]


def masked_sum(
    holders: HolderSet,
    peers: Sequence[Peer],
    round_two: MaskedRound,
    ctx: ts.Context,
    ciphertexts: int,
    slots: int,
    *,
    budget: float,
    subject: str | None,
) -> list[ts.BFVVector]:
    """Round 2 at every peer, each answer checked, summed ciphertext by ciphertext.

    The flat coordinator and a city (:mod:`unseen.nodes.city`) both end a masked
    aggregate here: masks cancel only in the sum over every participant, so no
    partial sum of fewer peers is ever formed or returned.
    """

    def answer(peer: Peer) -> list[ts.BFVVector]:
        reply = peer.masked_aggregate(
            round_two.key_id,
            round_two.query_id,
            round_two.nonce,
            round_two.participants,
            round_two.suppressed,
            budget=budget,
            subject=subject,
        )
        return load_answer(reply, ctx, ciphertexts, slots)

    answers = holders.each(peers, answer, budget).require_all(peers)
    return [bfv.add_all([a[i] for a in answers]) for i in range(ciphertexts)]


def load_answer(
    answer: AggregateAnswer, ctx: ts.Context, expected: int, slots: int
) -> list[ts.BFVVector]:
    """A holder's ciphertexts as vectors under the analyst's BFV key; anything else is refused."""
    if len(answer.ciphertexts) != expected:
        raise RemoteError(
            "INTERNAL", f"sent {len(answer.ciphertexts)} ciphertexts; the plan needs {expected}"
        )
    # Holders encrypt aggregates fresh: any other level is not theirs.
    return [bfv.load_ciphertext(ctx, data, slots) for data in answer.ciphertexts]
