"""Which of an analyst's vouchers each holder may see.

Every request carries all of the analyst's vouchers; a holder receives only
those issued for it (and undecodable ones, which it refuses and logs), so
other holders' scopes and entity lists stay with them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from unseen.engine.errors import UnseenError
from unseen.engine.governance.voucher import SignedVoucher

__all__ = ["Routed", "federation_of", "route_vouchers", "vouchers_for"]

Routed = tuple[tuple[str | None, str], ...]


def route_vouchers(vouchers: Sequence[str]) -> Routed:
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


def vouchers_for(holder: str | Collection[str], routed: Routed) -> tuple[str, ...]:
    """The vouchers ``holder`` (its catalog name) may see.

    A city coordinator serving as a holder (unseen.nodes.city) is given a
    collection of names, its own and its leaves': each leaf holder checks the
    vouchers issued for it, so the city relays them.
    """
    names = {holder} if isinstance(holder, str) else set(holder)
    return tuple(text for issued_for, text in routed if issued_for is None or issued_for in names)


def federation_of(vouchers: Sequence[str]) -> frozenset[str]:
    """The holders the vouchers name as their federation: all must take part in a
    masked aggregate, or the holders refuse it (unseen.engine.privacy.participants)."""
    names: set[str] = set()
    for text in vouchers:
        try:
            names |= SignedVoucher.decode(text).voucher.federation or frozenset()
        except UnseenError:
            continue
    return frozenset(names)
