"""What a dp answer says about itself: each cell's noise standard deviation and 95% interval.

The analyst derives every number here from public inputs: the table's dp
policy (catalog), the plan, and how many holders serve the table (each adds
a share of variance ``sigma^2 / honest_holders``, :mod:`unseen.engine.privacy.noise`).

COUNT and SUM carry unbiased noise of known sd. AVG, VAR and STDDEV are
post-processed from the noisy sums and counts: they are biased for small
groups (a ratio of noisy quantities), and their sd here is the first-order
(delta-method) approximation; a non-positive noisy count gives NULL. The
interval is ``value ± 1.96 sd`` (the total noise is close to Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from unseen.engine.privacy.dp_accounting import (
    Calibrated,
    calibrate,
    epsilon_for,
    query_cost,
    total_sd,
)
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.dp_quantities import grid
from unseen.engine.query.compiled import CompiledQuery
from unseen.engine.query.layout import GroupMoments

__all__ = ["Z95", "CellNoise", "cell_noise", "dp_meta"]

Z95 = 1.959963984540054
DELTA = 1e-6  # the delta at which meta states epsilon

CellNoise = Callable[[GroupMoments], list[float | None]]


def _sds(
    query: CompiledQuery, policy: DpPolicy, holders: int
) -> tuple[tuple[Calibrated, ...], dict[tuple[int | None, str], float]]:
    calibrated = calibrate(query.plan, policy)
    square_grid = Fraction(1, 1 << query.plan.codec.fraction_bits)
    out: dict[tuple[int | None, str], float] = {}
    for c in calibrated:
        sd = total_sd(c, policy, holders)
        q = c.quantity
        if q.part == "sum":
            assert q.measure is not None
            sd *= grid(query.plan.measures[q.measure], query.plan.codec)
        elif q.part == "square":
            sd *= square_grid
        out[(q.measure, q.part)] = float(sd)
    return calibrated, out


def cell_noise(query: CompiledQuery, policy: DpPolicy, holders: int) -> CellNoise:
    """Per group, the noise sd of every aggregate the query computes (None where undefined)."""
    _, sds = _sds(query, policy, holders)

    def noise(moments: GroupMoments) -> list[float | None]:
        out: list[float | None] = []
        for call in query.aggregates:
            if call.function == "count_star":
                out.append(sds[(None, "rows")])
                continue
            i = call.measure
            assert i is not None
            mm = moments.measures[i]
            n = mm.count
            sd_n = sds[(i, "count")]
            if call.function == "count":
                out.append(sd_n)
            elif call.function == "sum":
                out.append(sds[(i, "sum")])
            elif n <= 0:
                out.append(None)
            elif call.function == "avg":
                mean = float(mm.total or 0) / n
                out.append(math.hypot(sds[(i, "sum")], mean * sd_n) / n)
            else:
                sample = call.function.endswith("samp")
                if sample and n < 2:
                    out.append(None)
                    continue
                sd_var = sds[(i, "square")] / (n - 1 if sample else n)
                if call.function.startswith("stddev"):
                    variance = max(float(mm.square or 0), 0.0) / (n - 1 if sample else n)
                    out.append(sd_var / (2 * math.sqrt(variance)) if variance > 0 else None)
                else:
                    out.append(sd_var)
        return out

    return noise


def dp_meta(
    query: CompiledQuery,
    policy: DpPolicy,
    holders: int,
    sds: list[list[float | None]],
    rows: list[list[Any]],
) -> dict[str, Any]:
    """``meta["dp"]``: the query's cost, the assumptions, and per cell its sd and interval."""
    calibrated, _ = _sds(query, policy, holders)
    rho = query_cost(calibrated)
    intervals: list[list[list[float] | None]] = []
    for row_sd, row in zip(sds, rows, strict=True):
        cells: list[list[float] | None] = []
        for sd, value in zip(row_sd, row, strict=True):
            if sd is None or value is None or isinstance(value, (str, bool)):
                cells.append(None)
            else:
                cells.append([float(value) - Z95 * sd, float(value) + Z95 * sd])
        intervals.append(cells)
    return {
        "rho": rho,
        "epsilon": epsilon_for(rho, DELTA),
        "delta": DELTA,
        "unit": policy.unit,
        "max_rows": policy.max_rows,
        "holders": holders,
        "honest_holders": policy.honest_holders,
        "sd": sds,
        "interval95": intervals,
    }
