"""Slot layout and exact limb codec for grouped moments.

Why limbs: answers travel as BFV slots, exact integers modulo a prime
``t`` just below 2^40 (:mod:`unseen.engine.crypto.bfv`). A sum that reached
``t / 2`` would wrap. So every exact integer ``I`` (a count, a sum on its
grid, a second moment on the float grid) is split into signed limbs of
``limb_bits`` bits, ``I = sign * sum(l_i * 2^(limb_bits*i))``; each limb is
below 2^20 (at most 2^24), a noise share adds another such limb, and the sum
over 2^14 participants stays below 2^39 < t/2. Holders add limbs
homomorphically; the analyst reads each slot as a signed integer and
recombines them with Python integers, so the totals are exact however large
they grow.

Layout: group ``g`` (row-major over the GROUP BY domains) owns a record of
``record_width`` consecutive slots::

    [rows: count_limbs] then per measure m:
        [non-NULL count: count_limbs] [sum: sum_limbs]? [square: square_limbs]?

Records follow each other across ciphertexts of ``codec.slots`` slots; the
slots after the last record are zero.

What is summed: for a measure with ``n`` non-NULL values, ``S1`` is their sum
on the measure's grid, and ``S2 = M2 + S1^2 / n`` with ``M2`` the holder's
centred second moment (``n * var_pop``), rounded to the float grid. Adding
``S2`` over holders and subtracting ``S1^2 / n`` at the end is Chan's parallel
variance formula; because each holder centres on its own mean, no
catastrophic cancellation happens even when the mean dwarfs the spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from unseen.engine.errors import CryptoError, EncodingOverflowError, PlanError
from unseen.engine.query.plan import (
    DEFAULT_LIMITS,
    AggregatePlan,
    Encoding,
    Limits,
    Measure,
    SlotCodec,
)

__all__ = [
    "GroupMoments",
    "Layout",
    "MeasureMoments",
    "combine_limbs",
    "layout_for",
    "pack",
    "split_limbs",
    "unpack",
]

# A limb sum is trusted only below this many bits above the limb size: 2^14
# participants each adding a limb and a noise limb. A wrong key or a corrupted
# ciphertext decrypts to integers uniform modulo t (~2^40): each slot passes with
# probability 2^-(40 - 1 - limb_bits - 15), so a record of several slots fails here.
_HEADROOM_BITS = 15


@dataclass(frozen=True)
class MeasureMoments:
    """Exact moments of one measure in one group (sums on the exact rationals)."""

    count: int
    total: Fraction | None = None
    square: Fraction | None = None


@dataclass(frozen=True)
class GroupMoments:
    rows: int
    measures: tuple[MeasureMoments, ...]


@dataclass(frozen=True)
class Layout:
    record_width: int
    offsets: tuple[tuple[int, int | None, int | None], ...]  # (count, sum, square) per measure
    groups: int
    codec: SlotCodec

    @property
    def total_slots(self) -> int:
        return self.groups * self.record_width

    @property
    def ciphertexts(self) -> int:
        return max(1, math.ceil(self.total_slots / self.codec.slots))


def layout_for(plan: AggregatePlan, limits: Limits = DEFAULT_LIMITS) -> Layout:
    """The slot layout every party derives from the same plan."""
    codec = plan.codec
    width = codec.count_limbs
    offsets = []
    for measure in plan.measures:
        count_at = width
        width += codec.count_limbs
        sum_at = square_at = None
        if measure.want_sum or measure.want_square:
            sum_at = width
            width += codec.sum_limbs
        if measure.want_square:
            square_at = width
            width += codec.square_limbs
        offsets.append((count_at, sum_at, square_at))
    layout = Layout(width, tuple(offsets), plan.group_count, codec)
    if layout.total_slots > limits.max_slots:
        raise PlanError(
            f"the answer needs {layout.total_slots} slots, more than the limit of "
            f"{limits.max_slots}; use fewer groups or measures"
        )
    return layout


def split_limbs(value: int, limbs: int, bits: int, what: str = "value") -> list[int]:
    """Signed base-2^bits digits of ``value``, least significant first."""
    magnitude = abs(value)
    if magnitude >> (limbs * bits):
        raise EncodingOverflowError(
            f"{what} needs more than {limbs * bits} bits and cannot be carried exactly"
        )
    sign = -1 if value < 0 else 1
    mask = (1 << bits) - 1
    return [sign * ((magnitude >> (bits * i)) & mask) for i in range(limbs)]


def combine_limbs(slots: Sequence[int] | np.ndarray, bits: int) -> int:
    """Recombine decrypted limb sums (signed integers) into one exact integer."""
    total = 0
    bound = 1 << (bits + _HEADROOM_BITS)
    for i, raw in enumerate(slots):
        try:
            limb = int(raw)
        except (ValueError, OverflowError):  # NaN or infinity: never a limb
            limb = bound
        if limb != raw or abs(limb) >= bound:
            raise CryptoError(
                "decrypted slot is out of the limbs' range: the ciphertext is corrupted "
                "or was encrypted under another key"
            )
        total += limb << (bits * i)
    return total


def _grid(measure: Measure, codec: SlotCodec) -> Fraction:
    if measure.encoding is Encoding.INTEGER:
        return Fraction(1)
    if measure.encoding is Encoding.DECIMAL:
        return Fraction(1, 10**measure.decimal_scale)
    return Fraction(1, 1 << codec.fraction_bits)


def _on_grid(value: Fraction, grid: Fraction) -> int:
    return round(value / grid)


def pack(plan: AggregatePlan, layout: Layout, groups: dict[int, GroupMoments]) -> list[np.ndarray]:
    """Lay the moments of the given groups into zeroed slot vectors.

    ``groups`` maps a group index to its moments as computed locally; groups
    absent from it (no rows, or suppressed) stay all zero. Sums are put on
    the measure's grid here, and ``square`` is turned into ``M2 + S1^2/n`` from
    the *grid-rounded* S1, so the analyst's subtraction cancels exactly.
    """
    codec = plan.codec
    flat = np.zeros(layout.ciphertexts * codec.slots, dtype=np.int64)
    square_grid = Fraction(1, 1 << codec.fraction_bits)
    for index, moments in groups.items():
        base = index * layout.record_width
        flat[base : base + codec.count_limbs] = split_limbs(
            moments.rows, codec.count_limbs, codec.limb_bits, "row count"
        )
        for number, (measure, (count_at, sum_at, square_at), mm) in enumerate(
            zip(plan.measures, layout.offsets, moments.measures, strict=True), start=1
        ):
            at = base + count_at
            flat[at : at + codec.count_limbs] = split_limbs(
                mm.count, codec.count_limbs, codec.limb_bits, "count"
            )
            if sum_at is None:
                continue
            grid = _grid(measure, codec)
            s1 = _on_grid(mm.total or Fraction(0), grid)
            at = base + sum_at
            flat[at : at + codec.sum_limbs] = split_limbs(
                s1, codec.sum_limbs, codec.limb_bits, f"measure {number}'s sum in some group"
            )
            if square_at is None:
                continue
            s2 = Fraction(0)
            if mm.count:
                s1_exact = s1 * grid
                s2 = (mm.square or Fraction(0)) + s1_exact * s1_exact / mm.count
            at = base + square_at
            flat[at : at + codec.square_limbs] = split_limbs(
                _on_grid(s2, square_grid),
                codec.square_limbs,
                codec.limb_bits,
                f"measure {number}'s sum of squares in some group",
            )
    return [flat[i * codec.slots : (i + 1) * codec.slots] for i in range(layout.ciphertexts)]


def unpack(plan: AggregatePlan, layout: Layout, slots: np.ndarray) -> list[GroupMoments]:
    """Exact moments of every group from the decrypted, concatenated slots.

    For measures with a square, ``square`` here is the combined centred
    second moment ``M2 = S2 - S1^2/n`` (what variance needs), not ``S2``.
    """
    codec = plan.codec
    bits = codec.limb_bits
    square_grid = Fraction(1, 1 << codec.fraction_bits)
    out = []
    for index in range(layout.groups):
        base = index * layout.record_width
        rows = combine_limbs(slots[base : base + codec.count_limbs], bits)
        measures = []
        for measure, (count_at, sum_at, square_at) in zip(
            plan.measures, layout.offsets, strict=True
        ):
            at = base + count_at
            count = combine_limbs(slots[at : at + codec.count_limbs], bits)
            total = square = None
            if sum_at is not None:
                at = base + sum_at
                total = combine_limbs(slots[at : at + codec.sum_limbs], bits) * _grid(
                    measure, codec
                )
            if square_at is not None and total is not None:
                at = base + square_at
                s2 = combine_limbs(slots[at : at + codec.square_limbs], bits) * square_grid
                square = s2 - total * total / count if count else Fraction(0)
            measures.append(MeasureMoments(count, total, square))
        out.append(GroupMoments(rows, tuple(measures)))
    return out
