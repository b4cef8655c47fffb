"""A small deterministic TPC-H ``lineitem`` generator, and Q1 and Q6 verbatim.

DuckDB's ``tpch`` extension (``CALL dbgen(sf=...)``) must be downloaded, which
CI machines without network cannot do, so the tests generate lineitem here:
the TPC-H schema (DECIMAL(15,2) money and rates, DATE columns, one-letter
flags) and the specification's value rules (section 4.2.3): quantity 1..50,
discount 0.00..0.10, tax 0.00..0.08, ship date 1..121 days after an order date
between 1992-01-01 and 1998-08-02, receipt 1..30 days after shipping, return
flag R/A when received by 1995-06-17 else N, line status O when shipped
after 1995-06-17 else F.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

__all__ = ["LINEITEM", "Q1", "Q6", "lineitem_rows"]

LINEITEM = [
    ("l_orderkey", "BIGINT"),
    ("l_partkey", "BIGINT"),
    ("l_suppkey", "BIGINT"),
    ("l_linenumber", "INTEGER"),
    ("l_quantity", "DECIMAL(15,2)"),
    ("l_extendedprice", "DECIMAL(15,2)"),
    ("l_discount", "DECIMAL(15,2)"),
    ("l_tax", "DECIMAL(15,2)"),
    ("l_returnflag", "VARCHAR"),
    ("l_linestatus", "VARCHAR"),
    ("l_shipdate", "DATE"),
    ("l_commitdate", "DATE"),
    ("l_receiptdate", "DATE"),
    ("l_shipinstruct", "VARCHAR"),
    ("l_shipmode", "VARCHAR"),
    ("l_comment", "VARCHAR"),
]

Q1 = """select
    l_returnflag,
    l_linestatus,
    sum(l_quantity) as sum_qty,
    sum(l_extendedprice) as sum_base_price,
    sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
    avg(l_quantity) as avg_qty,
    avg(l_extendedprice) as avg_price,
    avg(l_discount) as avg_disc,
    count(*) as count_order
from
    lineitem
where
    l_shipdate <= date '1998-12-01' - interval '90' day
group by
    l_returnflag,
    l_linestatus
order by
    l_returnflag,
    l_linestatus;"""

Q6 = """select
    sum(l_extendedprice * l_discount) as revenue
from
    lineitem
where
    l_shipdate >= date '1994-01-01'
    and l_shipdate < date '1994-01-01' + interval '1' year
    and l_discount between 0.06 - 0.01 and 0.06 + 0.01
    and l_quantity < 24;"""

_START = dt.date(1992, 1, 1)
_END = dt.date(1998, 8, 2)
_CURRENT = dt.date(1995, 6, 17)
_INSTRUCT = ["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"]
_MODES = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"]


def _cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def lineitem_rows(orders: int, seed: int = 1, first_order: int = 1) -> list[tuple[Any, ...]]:
    """Lines of ``orders`` orders (1 to 7 lines each), reproducible from ``seed``."""
    rng = random.Random(seed)
    rows = []
    span = (_END - _START).days - 151
    for orderkey in range(first_order, first_order + orders):
        ordered = _START + dt.timedelta(days=rng.randint(0, span))
        for line in range(1, rng.randint(1, 7) + 1):
            partkey = rng.randint(1, 2000)
            quantity = rng.randint(1, 50)
            # Retail price per the spec's formula, in cents.
            retail = 90000 + (partkey // 10) % 20001 + 100 * (partkey % 1000)
            shipped = ordered + dt.timedelta(days=rng.randint(1, 121))
            received = shipped + dt.timedelta(days=rng.randint(1, 30))
            rows.append(
                (
                    orderkey,
                    partkey,
                    rng.randint(1, 100),
                    line,
                    _cents(quantity * 100),
                    _cents(quantity * retail),
                    _cents(rng.randint(0, 10)),
                    _cents(rng.randint(0, 8)),
                    rng.choice("RA") if received <= _CURRENT else "N",
                    "O" if shipped > _CURRENT else "F",
                    shipped,
                    ordered + dt.timedelta(days=rng.randint(30, 90)),
                    received,
                    rng.choice(_INSTRUCT),
                    rng.choice(_MODES),
                    f"line {line} of order {orderkey}",
                )
            )
    return rows
