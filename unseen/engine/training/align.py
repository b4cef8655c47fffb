"""The analyst's side of entity alignment: which of its ids each holder also has.

One PSI round per holder (:mod:`unseen.engine.training.psi`), relayed by the coordinator. The
result is what the bank may learn: per holder, the subset of its own ids that
the holder has, the holder's set size, and the holder's ledger receipts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from unseen.engine.errors import PlanError
from unseen.engine.training.psi import AlignAsk, PsiAnswer, psi_intersection, psi_request

__all__ = ["AlignPeer", "Alignment", "align_entities"]


class AlignPeer(Protocol):
    """What alignment needs of the coordinator (unseen.engine.transport.peers.CoordinatorPeer)."""

    def align(
        self, ask: AlignAsk, *, budget: float | None = None, subject: str | None = None
    ) -> tuple[str, PsiAnswer, list[str]]: ...


@dataclass(frozen=True)
class Alignment:
    """One holder's alignment with the bank's ids."""

    holder: str
    table: str
    column: str
    requested: int  # how many distinct ids the bank sent
    holder_size: int  # how many distinct ids the holder aligned over
    common: tuple[str, ...]  # the bank's ids the holder has, in the bank's order
    receipts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "holder": self.holder,
            "table": self.table,
            "column": self.column,
            "requested": self.requested,
            "holder_size": self.holder_size,
            "intersection": len(self.common),
        }


def align_entities(
    peer: AlignPeer,
    key_id: str,
    holder: str,
    table: str,
    column: str,
    ids: Sequence[str],
    vouchers: Sequence[str] = (),
) -> Alignment:
    """Intersect ``ids`` with the ids of ``holder``'s entity column ``table.column``."""
    unique = list(dict.fromkeys(str(i) for i in ids))
    if not unique:
        raise PlanError("no entity ids to align")
    client, request = psi_request(unique)
    ask = AlignAsk(holder, table, column, key_id, request, tuple(vouchers))
    name, answer, receipts = peer.align(ask)
    if name != holder:
        raise PlanError(f"asked holder {holder} to align, {name} answered")
    common = psi_intersection(client, answer)
    return Alignment(
        holder, table, column, len(unique), answer.holder_size, tuple(common), tuple(receipts)
    )
