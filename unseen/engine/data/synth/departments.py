"""Departments' monthly and quarterly tables: electricity, insured headcount, tax filings.

Each is derived from the enterprises' latents with noise, so the departments'
signals move together as real ones do (see docs/synthetic-data.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unseen.engine.data.synth.columns import Columns, Lookup, Table, Text, materialise
from unseen.engine.data.synth.credit import sigmoid
from unseen.engine.data.synth.enterprise import entity_columns
from unseen.engine.data.synth.ids import uscc
from unseen.engine.data.synth.spec import SynthSpec, months, quarters

__all__ = [
    "electricity",
    "electricity_table",
    "headcount",
    "headcount_table",
    "tax_filings",
    "tax_filings_table",
]

# Per industry (in the order of INDUSTRIES): electricity intensity per unit of size,
# summer seasonality amplitude, staff per unit of size, revenue per unit of size and
# the effective VAT rate on revenue (value added differs a lot between industries).
_INTENSITY = np.array([3.0, 0.6, 0.5, 1.2, 0.9, 0.4, 0.8, 1.5, 2.2, 2.0, 3.5, 0.5])
_SEASONAL = np.array([0.10, 0.15, 0.10, 0.05, 0.08, 0.20, 0.25, 0.30, 0.10, 0.12, 0.08, 0.18])
_LABOUR = np.array([1.6, 0.8, 0.5, 2.0, 1.0, 0.9, 1.2, 0.7, 1.8, 1.4, 0.8, 1.0])
_REVENUE = np.array([1.5, 1.2, 2.5, 1.4, 1.0, 0.9, 0.5, 0.4, 0.9, 1.8, 1.6, 0.6])
_VAT_RATE = np.array([0.035, 0.02, 0.012, 0.03, 0.025, 0.045, 0.02, 0.005, 0.03, 0.035, 0.04, 0.04])
# Quarterly revenue pattern: the Spring Festival depresses Q1, year-end lifts Q4.
_QUARTER_SEASON = np.array([0.88, 1.0, 1.02, 1.12])


def _panel(periods: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entity and period index of the kept cells of an (entity x period) panel."""
    flat = np.flatnonzero(keep.ravel())
    return flat // periods, (flat % periods).astype(np.int16)


def electricity_table(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> Table:
    """:func:`electricity` with its string columns still lazy (for writing)."""
    rng = np.random.default_rng([spec.seed, 2])
    n, m = len(ent["_size"]), spec.months
    industry = ent["_industry"]
    t = np.arange(m)
    # Healthy firms grow and distressed ones shrink; momentum is growth that says
    # nothing about credit risk, shared with revenue and headcount.
    growth = 0.18 * ent["_health"] + 0.12 * ent["_momentum"] + rng.normal(0, 0.10, n)
    base = 12_000 * ent["_size"] * _INTENSITY[industry] * rng.lognormal(0, 0.2, n)
    season = np.sin(2 * np.pi * ((t % 12) - 3) / 12)
    kwh = rng.normal(0, 0.15, (n, m))  # log noise, then built up in place
    kwh += np.log(base)[:, None]
    kwh += growth[:, None] * (t / 12)[None, :]
    np.exp(kwh, out=kwh)
    kwh *= 1 + _SEASONAL[industry][:, None] * season[None, :]
    outage = rng.random((n, m)) < 0.005  # a month mostly shut down
    kwh[outage] *= rng.uniform(0.05, 0.3, int(outage.sum()))
    keep = rng.random((n, m)) >= spec.missing_rate  # months never reported
    peak_noise = rng.uniform(0.8, 1.2, (n, m))
    who, month = _panel(m, keep)
    kwh_kept = np.round(kwh[keep], 2)
    del kwh
    peak = np.round(kwh_kept / 300 * peak_noise[keep]).astype(np.int64)
    return {
        **entity_columns(ent, who),
        "month": Text((Lookup(month, tuple(months(spec))),), len(who)),
        "kwh": kwh_kept,
        "peak_kw": peak,
    }


def electricity(spec: SynthSpec, ent: Columns) -> Columns:
    """The grid's monthly electricity per enterprise (kWh), seasonal, with gaps and outages.

    Columns: ``uscc``, ``city``, ``industry``, ``month``, ``kwh``, ``peak_kw``. The
    level is size x industry intensity; the trend is ``exp(g * years)`` with ``g``
    driven by health (0.18 per sd) and by health-neutral momentum, so the last six
    months against the previous six carry credit signal.
    """
    return materialise(electricity_table(spec, ent))


def headcount_table(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> Table:
    """:func:`headcount` with its string columns still lazy (for writing)."""
    rng = np.random.default_rng([spec.seed, 3])
    n, m = len(ent["_size"]), spec.months
    staff0 = 6 * ent["_size"] ** 0.9 * _LABOUR[ent["_industry"]] * rng.lognormal(0, 0.4, n)
    growth = 0.10 * ent["_health"] + 0.08 * ent["_momentum"] + rng.normal(0, 0.06, n)
    # Hiring and leaving are persistent: a random walk on the log headcount.
    staff = np.cumsum(rng.normal(0, 0.02, (n, m)), axis=1)
    staff += np.log(staff0)[:, None]
    staff += growth[:, None] * (np.arange(m) / 12)[None, :]
    np.exp(staff, out=staff)
    keep = rng.random((n, m)) >= spec.missing_rate
    who, month = _panel(m, keep)
    insured = np.maximum(np.round(staff[keep]), 1).astype(np.int64)
    return {
        "uscc": uscc(ent, who),
        "month": Text((Lookup(month, tuple(months(spec))),), len(who)),
        "insured_staff": insured,
    }


def headcount(spec: SynthSpec, ent: Columns) -> Columns:
    """Social-insurance headcount per enterprise and month (the HR bureau's table).

    Columns: ``uscc``, ``month``, ``insured_staff`` (integer, about 6 x size**0.9 x
    industry labour intensity; healthy firms hire, distressed ones shed staff, with
    a persistent random walk on top); some months missing.
    """
    return materialise(headcount_table(spec, ent))


def tax_filings_table(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> Table:
    """:func:`tax_filings` with its string columns still lazy (for writing)."""
    rng = np.random.default_rng([spec.seed, 4])
    labels = quarters(spec)
    n, q = len(ent["_size"]), len(labels)
    industry, health = ent["_industry"], ent["_health"]
    growth = 0.15 * health + 0.12 * ent["_momentum"] + rng.normal(0, 0.10, n)
    level = 900_000 * ent["_size"] * _REVENUE[industry] * rng.lognormal(0, 0.3, n)
    quarter = np.arange(q)
    season = _QUARTER_SEASON[quarter % 4]  # the months start in January
    revenue = rng.normal(0, 0.25, (n, q))
    revenue += np.log(level)[:, None]
    revenue += growth[:, None] * (quarter / 4)[None, :]
    np.exp(revenue, out=revenue)
    revenue *= season[None, :]
    vat = revenue * _VAT_RATE[industry][:, None] * rng.lognormal(0, 0.15, (n, q))
    # Arrears: weak firms pay late; some firms are chronically late whatever
    # their health (the firm effect), which keeps the signal honest.
    lateness = -3.2 - 0.9 * health + rng.normal(0, 0.8, n)
    arrears = rng.random((n, q)) < sigmoid(lateness)[:, None]
    keep = rng.random((n, q)) >= spec.missing_rate  # filings not made
    unassessed = rng.random((n, q)) < spec.missing_rate / 3  # VAT not yet assessed
    who, period = _panel(q, keep)
    return {
        "uscc": uscc(ent, who),
        "quarter": Text((Lookup(period, tuple(labels)),), len(who)),
        "revenue": np.round(revenue[keep], 2),
        "vat_paid": np.where(unassessed[keep], np.nan, np.round(vat[keep], 2)),
        "arrears": arrears[keep].astype(np.int64),
    }


def tax_filings(spec: SynthSpec, ent: Columns) -> Columns:
    """The tax bureau's quarterly filings: one row per enterprise and quarter.

    Columns: ``uscc``, ``quarter`` ('2022Q1' ...), ``revenue`` (heavy-tailed, grows
    with size, Q1 dip and Q4 peak, growth driven by health and momentum),
    ``vat_paid`` (industry rate on revenue; a few NULL), ``arrears`` (0/1, more
    likely when health is low). Some filings are missing.
    """
    return materialise(tax_filings_table(spec, ent))
