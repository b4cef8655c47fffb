"""The coordinator's aggregate: fan a plan out, add the holders' ciphertexts, mask.

One query, in order:

1. :meth:`HolderSet.hosts` decides who takes part: every configured holder
   hosting the table (or whose catalog is unknown). Without the analyst's
   ``allow_partial``, a holder that cannot be reached fails the query here.
2. Each taking part answers the plan (:func:`_ask`), with the one
   NOT_FOUND → register the key → retry of :func:`engine.peers.retry_not_found`;
   its ciphertexts are loaded under the analyst's key, so garbage bytes fail
   naming the holder.
3. All answered, or the query fails naming every holder that did not: never
   a partial sum. The sums are added and suppressed groups zeroed (:func:`mask`).

The coordinator holds no secret key: it adds and multiplies by plaintext
masks only. A protocol change that needs more rounds (holders first report
failing groups, then all answer with the union suppressed) adds a step
between 1 and 2 here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts

from engine import ckks
from engine.errors import RemoteError
from engine.keystore import KeyStore
from engine.layout import layout_for
from engine.peers import AggregateAnswer, encode_plan, retry_not_found
from engine.plan import AggregatePlan, Limits, check_plan
from engine.rpc import DEADLINES
from nodes.holders import HolderSet, Peer
from nodes.vouchers import route_vouchers, vouchers_for

__all__ = ["CombinedAnswer", "aggregate", "mask"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CombinedAnswer:
    """The federation's answer: summed ciphertexts and what the analyst may know about them."""

    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # configured holders left out (allow_partial only)


@dataclass(frozen=True)
class _Loaded:
    vectors: list[ts.CKKSVector]
    suppressed: tuple[int, ...]
    receipts: tuple[str, ...]


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
    """Answer ``plan`` from every holder that hosts its table, added and masked.

    ``subject`` is the analyst's certificate name (mTLS), forwarded to the
    holders so that a voucher bound to it can be checked there.
    """
    ctx = keys.get(key_id)
    budget = min(budget or DEADLINES["aggregate"], DEADLINES["aggregate"])
    hosts = holders.hosts(plan.table, budget, allow_partial)
    check_plan(plan, hosts.table, limits)
    layout = layout_for(plan, limits)
    encoded = encode_plan(plan)
    routed = route_vouchers(vouchers)
    slots = plan.codec.slots

    def ask(peer: Peer) -> _Loaded:
        answer = retry_not_found(
            lambda: peer.aggregate(
                key_id,
                encoded,
                vouchers_for(peer.name, routed),
                budget=budget,
                subject=subject,
            ),
            lambda: peer.register_key(keys.public_bytes(key_id), budget),
        )
        return _load(answer, ctx, layout.ciphertexts, slots)

    peers = hosts.peers
    answers = holders.each(peers, ask, budget).require_all(peers)
    suppressed = sorted({i for answer in answers for i in answer.suppressed})
    sums = [ckks.add_all([a.vectors[i] for a in answers]) for i in range(layout.ciphertexts)]
    if suppressed:
        sums = mask(ctx, sums, suppressed, layout.record_width, slots)
    log.info(
        "aggregate on %s over %d holders: %d ciphertexts, %d groups suppressed%s",
        plan.table,
        len(peers),
        len(sums),
        len(suppressed),
        f", {len(hosts.missing)} holders left out (partial)" if hosts.missing else "",
    )
    return CombinedAnswer(
        [bytes(v.serialize()) for v in sums],
        tuple(suppressed),
        tuple(peer.name or peer.address for peer in peers),
        tuple(r for answer in answers for r in answer.receipts),
        hosts.missing,
    )


def _load(answer: AggregateAnswer, ctx: ts.Context, expected: int, slots: int) -> _Loaded:
    """A holder's ciphertexts as vectors under the analyst's key; anything else is refused."""
    if len(answer.ciphertexts) != expected:
        raise RemoteError(
            "INTERNAL", f"sent {len(answer.ciphertexts)} ciphertexts; the plan needs {expected}"
        )
    # Holders encrypt aggregates fresh: any other level is not theirs.
    vectors = [ckks.load_ciphertext(ctx, data, slots, depth=0) for data in answer.ciphertexts]
    return _Loaded(vectors, answer.suppressed, answer.receipts)


def mask(
    ctx: ts.Context, sums: list[ts.CKKSVector], suppressed: list[int], width: int, slots: int
) -> list[ts.CKKSVector]:
    """Zero the records of suppressed groups with a plaintext 0/1 multiplication."""
    flat = np.ones(len(sums) * slots)
    for group in suppressed:
        flat[group * width : (group + 1) * width] = 0.0
    out = []
    for i, vector in enumerate(sums):
        part = flat[i * slots : (i + 1) * slots]
        if part.all():
            out.append(vector)
        elif not part.any():
            # SEAL refuses a product with an all-zero plaintext (a "transparent"
            # ciphertext); a fresh encryption of zeros says the same safely.
            out.append(ckks.encrypt(ctx, np.zeros(slots)))
        else:
            out.append(vector * part.tolist())
    return out
