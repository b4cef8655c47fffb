"""A holder's share of the distributed discrete Gaussian noise, added to its exact limbs.

Each holder serving a dp table adds, to every quantity of every group of the
(public) domain — empty groups included, so that absence is not revealed —
an integer drawn from the discrete Gaussian with sigma_share = sigma /
sqrt(honest_holders) (:mod:`unseen.engine.privacy.dp_accounting`). The sum over holders is
close to a discrete Gaussian of variance ``holders * sigma^2/honest`` (Kairouz,
Liu and Steinke 2021 bound the distance); with at least ``honest_holders``
honest holders the total carries at least the calibrated sigma^2.

The samples come from OpenDP's ``make_gaussian`` over 64-bit integers, which
draws from the operating system's cryptographic generator; nothing here
samples by hand. Noise is added to the packed slot vectors before the
pairwise masks, limb-wise: limb sums recombine linearly, so the analyst's
unpacking is unchanged and reads value + noise exactly.
"""

from __future__ import annotations

import numpy as np
import opendp.prelude as dp

from unseen.engine.privacy.dp_accounting import Calibrated
from unseen.engine.query.layout import Layout, combine_limbs, split_limbs
from unseen.engine.query.plan import AggregatePlan

__all__ = ["add_noise", "sample"]

dp.enable_features("contrib")


def sample(sigma: float, count: int) -> list[int]:
    """``count`` discrete Gaussian integers of scale ``sigma`` (OpenDP, OS randomness)."""
    if count == 0:
        return []
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=dp.i64)
    return [int(v) for v in dp.m.make_gaussian(*space, scale=sigma)([0] * count)]


def _width(part: str, plan: AggregatePlan) -> int:
    codec = plan.codec
    return {"rows": codec.count_limbs, "count": codec.count_limbs, "sum": codec.sum_limbs}.get(
        part, codec.square_limbs
    )


def _offset(c: Calibrated, layout: Layout) -> int:
    if c.quantity.part == "rows":
        return 0
    assert c.quantity.measure is not None
    count_at, sum_at, square_at = layout.offsets[c.quantity.measure]
    at = {"count": count_at, "sum": sum_at, "square": square_at}[c.quantity.part]
    assert at is not None
    return at


def add_noise(
    plan: AggregatePlan,
    layout: Layout,
    vectors: list[np.ndarray],
    calibrated: tuple[Calibrated, ...],
    honest_holders: int,
) -> list[np.ndarray]:
    """The packed vectors with this holder's noise share added to every group's quantities."""
    codec = plan.codec
    flat = np.concatenate(vectors) if vectors else np.zeros(0, dtype=np.int64)
    for c in calibrated:
        shares = sample(c.share_sigma(honest_holders), layout.groups)
        width = _width(c.quantity.part, plan)
        offset = _offset(c, layout)
        for group, share in enumerate(shares):
            at = group * layout.record_width + offset
            limbs = flat[at : at + width]
            delta = share * c.step
            if c.step > 1:
                # Round this holder's exact total to the step first (see dp_accounting).
                value = combine_limbs(limbs, codec.limb_bits)
                delta += (value + c.step // 2) // c.step * c.step - value
            noise = split_limbs(delta, width, codec.limb_bits, "a noisy quantity")
            flat[at : at + width] = limbs + np.asarray(noise, dtype=np.int64)
    return [flat[i * codec.slots : (i + 1) * codec.slots] for i in range(len(vectors))]
