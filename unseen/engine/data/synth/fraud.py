"""Fraud signals and ground truth: telecom reports, the planted mules, the investigation batch."""

from __future__ import annotations

import numpy as np

from unseen.engine.data.synth.bank import (
    BIG_SINGLE,
    COLLECTOR,
    MERCHANT,
    MULE,
    NORMAL,
    Universe,
    universe,
)
from unseen.engine.data.synth.columns import Columns, Table, materialise
from unseen.engine.data.synth.spec import SynthSpec, window

__all__ = [
    "investigation_batch",
    "mule_truth",
    "reports_table",
    "suspicious_accounts",
    "telecom_reports",
]


def reports_table(spec: SynthSpec, uni: Universe) -> Table:
    """The telecom table, plus the latent universe index of each row's account."""
    rng = np.random.default_rng([spec.seed, 21])
    n, days = len(uni.kind), spec.window_days
    # Victims report most mules on the day of the scam; some never report.
    mules = uni.of_kind(MULE)
    reported = mules[rng.random(len(mules)) < 0.8]
    mule_reports = 1 + rng.poisson(2.0, len(reported))
    mule_swap = rng.random(len(reported)) < 0.35
    # False or mistaken reports name ordinary accounts on any day, and a few
    # collectors on the last day (an unhappy payer); SIM swaps happen to anyone.
    collectors = uni.of_kind(COLLECTOR)
    wrongly = collectors[rng.random(len(collectors)) < 0.05]
    ordinary = np.flatnonzero(uni.kind != MULE)
    false = ordinary[rng.choice(len(ordinary), size=max(3, n // 1_000), replace=False)]
    swapped = ordinary[rng.choice(len(ordinary), size=max(3, n // 2_000), replace=False)]
    account = np.concatenate([reported, wrongly, false, swapped])
    day = np.concatenate(
        [
            np.full(len(reported) + len(wrongly), days - 1),
            rng.integers(0, days, len(false) + len(swapped)),
        ]
    )
    reports = np.concatenate(
        [
            mule_reports,
            np.ones(len(wrongly), dtype=np.int64),
            1 + (rng.random(len(false)) < 0.1),
            np.zeros(len(swapped), dtype=np.int64),
        ]
    )
    swap = np.concatenate(
        [
            mule_swap,
            rng.random(len(wrongly) + len(false)) < 0.02,
            np.ones(len(swapped), dtype=bool),
        ]
    )
    # One row per account and day.
    key, inverse = np.unique(day * n + account, return_inverse=True)
    reports_sum = np.bincount(inverse, weights=reports).astype(np.int64)
    swap_any = np.bincount(inverse, weights=swap) > 0
    who, on = key % n, key // n
    start, _ = window(spec)
    return {
        "account": uni.ids(who),
        "report_day": start.astype("datetime64[D]") + on.astype("timedelta64[D]"),
        "reports": reports_sum,
        "sim_swap_recent": swap_any.astype(np.int64),
        "_account": who,
    }


def telecom_reports(spec: SynthSpec) -> Columns:
    """The telecom operator's fraud signals per bank account and day.

    Columns: ``account``, ``report_day`` (DATE), ``reports`` (victim fraud reports
    naming the account that day), ``sim_swap_recent`` (0/1: the account holder's
    SIM was swapped recently). About 80 % of mules are reported on the last day;
    0.1 % of other accounts get false reports, a few collectors too.
    """
    return materialise(reports_table(spec, universe(spec)))


def mule_truth(spec: SynthSpec) -> np.ndarray:
    """Ground truth: the planted mule account ids (held by no department)."""
    uni = universe(spec)
    return uni.ids(uni.of_kind(MULE)).materialise()


def investigation_batch(spec: SynthSpec, uni: Universe) -> np.ndarray:
    """Universe indices of the investigation batch (mules hidden among hard negatives)."""
    rng = np.random.default_rng([spec.seed, 22])
    mules = uni.of_kind(MULE)
    merchants = uni.of_kind(MERCHANT)
    weight = uni.popularity[merchants]
    size = min(len(mules), len(merchants))
    busy = rng.choice(merchants, size=size, replace=False, p=weight / weight.sum())
    reports = reports_table(spec, uni)
    reported_rows, counts = reports["_account"], reports["reports"]
    assert isinstance(reported_rows, np.ndarray) and isinstance(counts, np.ndarray)
    reported = np.unique(reported_rows[counts > 0])
    falsely = reported[uni.kind[reported] != MULE]
    falsely = rng.permutation(falsely)[: max(1, len(mules) // 2)]
    ordinary = np.flatnonzero(uni.kind == NORMAL)
    random = rng.choice(ordinary, size=max(1, len(mules) // 2), replace=False)
    batch = np.unique(
        np.concatenate(
            [mules, uni.of_kind(COLLECTOR), uni.of_kind(BIG_SINGLE), busy, falsely, random]
        )
    )
    return rng.permutation(batch)


def suspicious_accounts(spec: SynthSpec) -> np.ndarray:
    """A batch of accounts to investigate, shuffled: every mule and about 4x as many others.

    The others are the hard negatives — every fee collector, every recipient of
    one large legitimate payment, busy merchants, falsely reported accounts — and
    some ordinary accounts.
    """
    uni = universe(spec)
    return uni.ids(investigation_batch(spec, uni)).materialise()
