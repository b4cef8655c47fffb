"""Transfers between accounts: a month of ordinary payments plus the planted patterns.

Generated once for all banks (each bank's table is a filter on the payer's bank),
so that a victim's payment to a mule at another bank is one transfer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unseen.engine.data.synth.bank import BIG_SINGLE, COLLECTOR, MULE, NORMAL, Universe, universe
from unseen.engine.data.synth.columns import Columns, Digits, Lookup, Table, Text, materialise
from unseen.engine.data.synth.spec import SynthSpec, window

__all__ = ["Transfers", "all_transfers", "bank_transfers_table", "transfers", "transfers_by_bank"]

_CHANNELS = ("mobile", "online", "counter", "qr")
# Share of the day's payments by hour (quiet at night, peaks at noon and evening).
_HOURLY = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 5, 6, 6.5, 7, 8, 7, 6, 6, 6.5, 7, 8, 8.5, 8, 6, 4, 2]
)
_DAY = 86_400
# Ordinary transfers by category (merchant payment, person to person, company
# payment): median amount in CNY, log-normal sigma, channel probabilities.
_ORDINARY = (
    (60.0, 1.0, (0.25, 0.0, 0.0, 0.75)),
    (500.0, 1.2, (0.7, 0.22, 0.08, 0.0)),
    (20_000.0, 1.3, (0.0, 0.8, 0.2, 0.0)),
)


def _weighted(rng: np.random.Generator, weight: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn with replacement in proportion to ``weight`` (vectorised)."""
    cdf = np.cumsum(weight)
    picked = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.minimum(picked, len(weight) - 1)


def _times(rng: np.random.Generator, days: np.ndarray) -> np.ndarray:
    """Seconds since the window start: on ``days``, at hours following the daily rhythm."""
    hour = rng.choice(24, size=len(days), p=_HOURLY / _HOURLY.sum())
    return days * _DAY + hour * 3_600 + rng.integers(0, 3_600, len(days))


def _channel(
    rng: np.random.Generator, size: int, p: tuple[float, float, float, float]
) -> np.ndarray:
    return rng.choice(len(_CHANNELS), size=size, p=p).astype(np.int8)


@dataclass(frozen=True)
class Transfers:
    """All transfers at all banks, in time order (one array per column)."""

    payer: np.ndarray
    payee: np.ndarray
    amount: np.ndarray
    seconds: np.ndarray  # since the window start
    channel: np.ndarray


def all_transfers(spec: SynthSpec, uni: Universe) -> Transfers:
    """All transfers of the window at every bank: ordinary traffic plus the planted patterns.

    Generated once for all banks (each bank's table is a filter on the payer's
    bank) so that a victim's payment to a mule at another bank is one transfer.
    """
    rng = np.random.default_rng([spec.seed, 30])
    days = spec.window_days
    last = (days - 1) * _DAY  # the investigation day starts here
    persons = np.flatnonzero((uni.kind == NORMAL) & ~uni.company)

    # Mules: many victims across all banks within hours, scam-sized amounts,
    # most of the money forwarded on within the same burst.
    mules = uni.of_kind(MULE)
    victims_per = rng.integers(10, 26, len(mules))
    mule_of = np.repeat(np.arange(len(mules)), victims_per)
    victims = rng.choice(persons, size=len(mule_of), replace=False)
    burst = last + rng.uniform(0, 12 * 3_600, len(mules))
    span = rng.uniform(3_600, 8 * 3_600, len(mules))
    in_sec = burst[mule_of] + rng.uniform(0, 1, len(mule_of)) * span[mule_of]
    scam = np.clip(rng.lognormal(np.log(5_000), 0.8, len(mule_of)), 500, 50_000)
    step = np.where(rng.random(len(mule_of)) < 0.4, 1_000, 100)
    scam = np.maximum(np.round(scam / step) * step, 100)
    received = np.bincount(mule_of, weights=scam, minlength=len(mules))
    outs_per = rng.integers(2, 6, len(mules))
    out_of = np.repeat(np.arange(len(mules)), outs_per)
    share = rng.exponential(1.0, len(out_of))
    share /= np.bincount(out_of, weights=share)[out_of]
    kept = rng.uniform(0.80, 0.97, len(mules))
    out_amount = np.round(received[out_of] * kept[out_of] * share, 2)
    out_sec = (
        burst[out_of]
        + rng.uniform(0.2, 1.0, len(out_of)) * span[out_of]
        + rng.uniform(300, 5_400, len(out_of))
    )
    cash_out = persons[rng.integers(0, len(persons), len(out_of))]

    # Collectors (hard negatives): a class teacher or group-buy organiser collects
    # from as many payers as a mule, across banks, but keeps the money.
    collectors = uni.of_kind(COLLECTOR)
    payers_per = rng.integers(10, 41, len(collectors))
    coll_of = np.repeat(np.arange(len(collectors)), payers_per)
    coll_payers = rng.choice(persons, size=len(coll_of), replace=False)
    fees = np.where(
        (rng.random(len(collectors)) < 0.2)[coll_of],
        np.round(rng.lognormal(np.log(4_000), 0.4, len(coll_of)), -2),
        np.maximum(np.round(rng.lognormal(np.log(400), 0.6, len(coll_of)) / 50) * 50, 50),
    )
    coll_sec = last + rng.uniform(0, _DAY, len(coll_of))

    # One large legitimate payment (a house deposit, a supplier) on the last day.
    big = uni.of_kind(BIG_SINGLE)
    receivable = np.flatnonzero(~uni.fresh)  # accounts that existed before the window
    big_payer = receivable[rng.integers(0, len(receivable), len(big))]
    big_payer = np.where(big_payer == big, persons[0], big_payer)
    big_amount = np.round(rng.lognormal(np.log(300_000), 0.8, len(big)), -2)
    big_sec = last + rng.uniform(0, _DAY, len(big))

    planted = len(mule_of) + len(out_of) + len(coll_of) + len(big)
    n = max(spec.transfer_count - planted, 0)
    # Ordinary traffic: payers by activity; 45 % pay a merchant (by popularity),
    # persons pay other accounts modest sums, companies pay suppliers large ones.
    payer = _weighted(rng, uni.activity, n)
    category = np.where(rng.random(n) < 0.45, 0, np.where(uni.company[payer], 2, 1))
    payee = np.empty(n, dtype=np.int64)
    amount = np.empty(n)
    channel = np.empty(n, dtype=np.int8)
    for cat, (median, sigma, channels) in enumerate(_ORDINARY):
        rows = np.flatnonzero(category == cat)
        if cat == 0:
            payee[rows] = _weighted(rng, uni.popularity, len(rows))
        else:
            payee[rows] = receivable[rng.integers(0, len(receivable), len(rows))]
        amount[rows] = rng.lognormal(np.log(median), sigma, len(rows))
        channel[rows] = _channel(rng, len(rows), channels)
    clash = np.flatnonzero(payee == payer)
    payee[clash] = receivable[(np.searchsorted(receivable, payee[clash]) + 1) % len(receivable)]
    # People like round sums when they pay each other.
    round_sum = (category == 1) & (rng.random(n) < 0.3)
    amount = np.where(round_sum, np.maximum(np.round(amount, -2), 100), np.round(amount, 2))
    seconds = _times(rng, rng.integers(0, days, n))

    parts = [
        (payer, payee, amount, seconds, channel),
        (
            victims,
            mules[mule_of],
            scam,
            in_sec,
            _channel(rng, len(mule_of), (0.8, 0.2, 0.0, 0.0)),
        ),
        (
            mules[out_of],
            cash_out,
            out_amount,
            out_sec,
            _channel(rng, len(out_of), (0.6, 0.4, 0.0, 0.0)),
        ),
        (
            coll_payers,
            collectors[coll_of],
            fees,
            coll_sec,
            _channel(rng, len(coll_of), (0.6, 0.0, 0.0, 0.4)),
        ),
        (big_payer, big, big_amount, big_sec, _channel(rng, len(big), (0.0, 0.6, 0.4, 0.0))),
    ]
    columns = [np.concatenate([p[i] for p in parts]) for i in range(5)]
    seconds_all = columns[3].astype(np.int64)
    order = np.argsort(seconds_all, kind="stable")
    # The gathers copy already; copy=False keeps astype from copying 10M rows again.
    return Transfers(
        payer=columns[0][order].astype(np.int64, copy=False),
        payee=columns[1][order].astype(np.int64, copy=False),
        amount=columns[2][order].astype(np.float64, copy=False),
        seconds=seconds_all[order],
        channel=columns[4][order].astype(np.int8, copy=False),
    )


def bank_transfers_table(spec: SynthSpec, uni: Universe, every: Transfers, bank: int) -> Table:
    """The transfers bank ``bank`` processed: those its own customers paid."""
    rows = np.flatnonzero(uni.bank[every.payer] == bank)
    start, _ = window(spec)
    return {
        "transfer_id": Text(("TX", Digits(rows, 12)), len(rows)),
        "payer": uni.ids(every.payer[rows]),
        "payee": uni.ids(every.payee[rows]),
        "amount": every.amount[rows],
        "ts": start + every.seconds[rows].astype("timedelta64[s]"),
        "channel": Text((Lookup(every.channel[rows], _CHANNELS),), len(rows)),
    }


def transfers(spec: SynthSpec, bank: int) -> Columns:
    """Transfers processed by ``bank``: those whose payer holds an account there.

    Columns: ``transfer_id`` (unique across banks), ``payer`` and ``payee`` (account
    ids at any bank), ``amount`` (CNY, heavy-tailed), ``ts`` (TIMESTAMP in
    :func:`window`), ``channel``. A payee's incoming money is spread over every
    bank's table, which is why mules only stand out when the banks pool counts.
    """
    uni = universe(spec)
    return materialise(bank_transfers_table(spec, uni, all_transfers(spec, uni), bank))


def transfers_by_bank(spec: SynthSpec) -> list[Columns]:
    """:func:`transfers` of every bank (index = bank), generating the window's transfers once.

    Calling :func:`transfers` per bank would generate every transfer of every
    bank each time (seconds per call at ten million transfers).
    """
    uni = universe(spec)
    every = all_transfers(spec, uni)
    return [materialise(bank_transfers_table(spec, uni, every, b)) for b in range(spec.banks)]
