"""The exact limb codec and slot layout, without encryption."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from unseen.engine.errors import CryptoError, EncodingOverflowError, PlanError
from unseen.engine.query.expr import Column
from unseen.engine.query.layout import (
    GroupMoments,
    MeasureMoments,
    combine_limbs,
    layout_for,
    pack,
    split_limbs,
    unpack,
)
from unseen.engine.query.plan import (
    AggregatePlan,
    Encoding,
    GroupColumn,
    Limits,
    Measure,
    SlotCodec,
)


@given(st.integers(min_value=-(2**100) + 1, max_value=2**100 - 1))
def test_limbs_round_trip_any_integer_in_range(value):
    limbs = split_limbs(value, 5, 20)
    assert all(abs(limb) < 2**20 for limb in limbs)
    assert combine_limbs([float(x) for x in limbs], 20) == value


@given(st.lists(st.integers(min_value=-(2**90), max_value=2**90), min_size=1, max_size=50))
def test_adding_limbs_adds_values(values):
    # What the coordinator does homomorphically: add limb vectors slot by slot.
    total = np.sum([split_limbs(v, 5, 20) for v in values], axis=0)
    assert combine_limbs(total.tolist(), 20) == sum(values)


def test_limb_overflow_is_a_clear_error():
    with pytest.raises(EncodingOverflowError, match="more than 60 bits"):
        split_limbs(2**60, 3, 20, "row count")


def test_a_slot_that_is_no_limb_sum_is_refused():
    # Not an integer, or beyond what 2^14 participants' limbs can add up to.
    with pytest.raises(CryptoError, match="out of the limbs' range"):
        combine_limbs([3.4, 0.0], 20)
    with pytest.raises(CryptoError, match="out of the limbs' range"):
        combine_limbs([0, 1 << 35], 20)
    assert combine_limbs([(1 << 35) - 1, 0], 20) == (1 << 35) - 1


def _plan(groups: int, encoding: Encoding = Encoding.FLOAT, square: bool = True) -> AggregatePlan:
    return AggregatePlan(
        "t",
        None,
        (GroupColumn("g", tuple(range(groups))),),
        (Measure(Column("x"), encoding, 2 if encoding is Encoding.DECIMAL else 0, True, square),),
        SlotCodec(),
    )


@given(
    st.lists(
        st.tuples(
            st.integers(1, 10**6),
            st.integers(0, 10**6),
            st.fractions(min_value=-(10**9), max_value=10**9),
            st.fractions(min_value=0, max_value=10**12),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_pack_unpack_round_trip(groups):
    plan = _plan(len(groups))
    layout = layout_for(plan)
    moments = {
        i: GroupMoments(rows, (MeasureMoments(count, total, m2),))
        for i, (rows, count, total, m2) in enumerate(groups)
    }
    vectors = pack(plan, layout, moments)
    assert len(vectors) == layout.ciphertexts
    back = unpack(plan, layout, np.concatenate(vectors))
    grid = Fraction(1, 2**40)
    for i, (rows, count, total, m2) in enumerate(groups):
        got = back[i]
        assert got.rows == rows
        assert got.measures[0].count == count
        assert abs(got.measures[0].total - total) <= grid / 2
        if count:
            # Centred moment comes back within grid rounding (plus the S1 rounding it cancels).
            assert abs(got.measures[0].square - m2) <= grid * (1 + abs(total) * 2 / count + 1)


def test_unused_slots_and_absent_groups_are_zero():
    plan = _plan(300)
    layout = layout_for(plan)
    vectors = pack(
        plan, layout, {5: GroupMoments(9, (MeasureMoments(9, Fraction(3), Fraction(1)),))}
    )
    flat = np.concatenate(vectors)
    width = layout.record_width
    assert np.count_nonzero(flat[: 5 * width]) == 0
    assert np.count_nonzero(flat[6 * width :]) == 0


def test_decimal_and_integer_grids_are_exact():
    plan = _plan(1, Encoding.DECIMAL, square=False)
    layout = layout_for(plan)
    exact = Fraction(123456789012345, 100)
    back = unpack(
        plan,
        layout,
        np.concatenate(pack(plan, layout, {0: GroupMoments(1, (MeasureMoments(1, exact),))})),
    )
    assert back[0].measures[0].total == exact


def test_slot_budget_is_enforced():
    with pytest.raises(PlanError, match="slots"):
        layout_for(_plan(10_000), Limits(max_slots=1000))
