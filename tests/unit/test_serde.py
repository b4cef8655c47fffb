"""Proto round trips for every domain object that crosses the wire."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unseen.engine.errors import PlanError
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.expr import (
    DATE_TRUNC_UNITS,
    EXTRACT_PARTS,
    Between,
    Binary,
    BinaryOp,
    Case,
    Cast,
    Column,
    DateTrunc,
    Extract,
    Func,
    InList,
    IsNull,
    Like,
    Literal,
    Unary,
    UnaryOp,
)
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure, SlotCodec
from unseen.engine.query.types import SqlType
from unseen.engine.transport import serde
from unseen.v1 import plan_pb2

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.dates(),
    st.datetimes(),
)
names = st.text(min_size=1, max_size=12)
leaves = st.one_of(names.map(Column), values.map(Literal))


def _compound(children):
    return st.one_of(
        st.builds(Binary, st.sampled_from(list(BinaryOp)), children, children),
        st.builds(Unary, st.sampled_from(list(UnaryOp)), children),
        st.builds(Between, children, children, children, st.booleans()),
        st.builds(InList, children, st.lists(values, max_size=5).map(tuple), st.booleans()),
        st.builds(Like, children, st.text(), st.booleans(), st.booleans()),
        st.builds(IsNull, children, st.booleans()),
        st.builds(
            Case,
            st.lists(st.tuples(children, children), min_size=1, max_size=3).map(tuple),
            st.one_of(st.none(), children),
        ),
        st.builds(
            Func,
            st.sampled_from(["coalesce", "nullif", "abs"]),
            st.lists(children, min_size=1, max_size=3).map(tuple),
        ),
        st.builds(Extract, st.sampled_from(EXTRACT_PARTS), children),
        st.builds(DateTrunc, st.sampled_from(DATE_TRUNC_UNITS), children),
        st.builds(Cast, children, st.sampled_from(["INTEGER", "DECIMAL(12,4)", "DATE"])),
    )


exprs = st.recursive(leaves, _compound, max_leaves=20)


@given(values)
def test_value_round_trip(value):
    back = serde.value_from_proto(serde.value_to_proto(value))
    assert back == value and type(back) is type(value)


@given(exprs)
def test_expr_round_trip(expr):
    assert serde.expr_from_proto(serde.expr_to_proto(expr)) == expr


@given(
    st.builds(
        AggregatePlan,
        names,
        st.one_of(st.none(), exprs),
        st.lists(
            st.builds(
                GroupColumn,
                names,
                st.lists(values, max_size=4).map(tuple),
                st.one_of(st.none(), exprs),
            ),
            max_size=3,
        ).map(tuple),
        st.lists(
            st.builds(
                Measure,
                exprs,
                st.sampled_from(list(Encoding)),
                st.integers(0, 38),
                st.booleans(),
                st.booleans(),
            ),
            max_size=4,
        ).map(tuple),
        st.builds(SlotCodec),
    )
)
def test_plan_round_trip(plan):
    assert serde.plan_from_proto(serde.plan_to_proto(plan)) == plan


def test_catalog_round_trip():
    catalog = Catalog(
        "grid",
        (
            TableInfo(
                "t",
                (
                    ColumnInfo(
                        "city", SqlType("VARCHAR"), frozenset({"group", "filter"}), ("a", "b", None)
                    ),
                    ColumnInfo("kwh", SqlType("DECIMAL", 12, 2), frozenset({"aggregate"})),
                    ColumnInfo("day", SqlType("DATE"), frozenset(), (dt.date(2020, 1, 1),)),
                ),
                7,
                ("grid",),
            ),
        ),
        True,
        (("x", "holders disagree"),),
    )
    assert serde.catalog_from_proto(serde.catalog_to_proto(catalog)) == catalog


@pytest.mark.parametrize(
    "message",
    [
        plan_pb2.Expr(),
        plan_pb2.Expr(binary=plan_pb2.BinaryExpr(op=99)),
        plan_pb2.Expr(binary=plan_pb2.BinaryExpr(op=plan_pb2.BINARY_OP_ADD)),
        plan_pb2.Expr(literal=plan_pb2.Value(date_value="not a date")),
        plan_pb2.Expr(literal=plan_pb2.Value(decimal_value="NaN")),
        plan_pb2.Expr(literal=plan_pb2.Value()),
        plan_pb2.Expr(column=""),
    ],
)
def test_malformed_expressions_are_plan_errors(message):
    with pytest.raises(PlanError):
        serde.expr_from_proto(message)


def test_huge_integers_travel_as_decimals():
    value = 2**70
    assert serde.value_from_proto(serde.value_to_proto(value)) == Decimal(value)


def test_ledger_request_round_trip():
    msg = serde.ledger_request("s" * 64, 3, 9, "2026-01-01T00:00:00Z", b"sig")
    assert serde.ledger_request_fields(msg) == {
        "start": 3,
        "end": 9,
        "issued_at": "2026-01-01T00:00:00Z",
        "supervisor": "s" * 64,
    }
    assert msg.signature == b"sig"


def test_train_call_round_trip_keeps_derived_feature_definitions():
    from unseen.engine.query.model import FeatureSpec
    from unseen.engine.training.train_job import TrainCall, TrainFeatures

    condition = Binary(BinaryOp.GE, Column("quarter"), Literal("2023Q1"))
    definitions = (
        FeatureSpec("tax_filings", "revenue", "uscc", "sum", condition, "log1p", 0.0),
        FeatureSpec("tax_filings", "arrears", "uscc", "sum", None, "", 2.5),
    )
    call = TrainCall(
        "job",
        "start",
        features=(
            TrainFeatures("tax", "tax_filings", "uscc", ("revenue", "arrears"), True, definitions),
            TrainFeatures("hr", "headcount", "uscc", ("insured_staff",)),
        ),
        ids=("a", "b"),
    )
    back = serde.train_call_from_proto(serde.train_call_to_proto(call))
    assert back.features == call.features
    assert back.features[0].definitions == definitions and not back.features[1].definitions
