"""Bank accounts: every account at every bank, with planted kinds, and each bank's table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unseen.engine.data.synth.columns import Columns, Digits, Lookup, Table, Text, materialise
from unseen.engine.data.synth.ids import ACCOUNT_STRIDE
from unseen.engine.data.synth.province import CITIES, CITY_WEIGHT
from unseen.engine.data.synth.spec import MAX_BANKS, SynthSpec, window

__all__ = [
    "BIG_SINGLE",
    "COLLECTOR",
    "MERCHANT",
    "MULE",
    "NORMAL",
    "Universe",
    "accounts",
    "accounts_table",
    "bank_name",
    "universe",
]

_OWNER_TYPES = ("person", "company")
# Account kinds in the fraud universe (latent; only mules are ground truth).
NORMAL, MERCHANT, MULE, COLLECTOR, BIG_SINGLE = range(5)


def bank_name(bank: int) -> str:
    """Holder name of bank number ``bank`` (0 -> 'bank-a')."""
    return f"bank-{chr(ord('a') + bank)}"


@dataclass(frozen=True)
class Universe:
    """Every account at every bank, with the latent kind of each (index = account)."""

    bank: np.ndarray  # int8
    number: np.ndarray  # int64, unique 12-digit account number
    company: np.ndarray  # bool
    city: np.ndarray  # int8
    opened: np.ndarray  # datetime64[D]
    kind: np.ndarray  # int8, one of NORMAL ... BIG_SINGLE
    fresh: np.ndarray  # bool: a mule account opened just for the scam
    activity: np.ndarray  # how often the account pays
    popularity: np.ndarray  # how often a merchant is paid (0 for non-merchants)

    def ids(self, who: np.ndarray) -> Text:
        """Account ids of accounts ``who``: a bank prefix and the account number."""
        # A letter first keeps CSV readers from taking the ids for numbers.
        prefixes = tuple(f"{chr(ord('A') + b)}62{b + 10:02d}" for b in range(MAX_BANKS))
        return Text((Lookup(self.bank[who], prefixes), Digits(self.number[who], 12)), len(who))

    def of_kind(self, kind: int) -> np.ndarray:
        """Indices of the accounts of latent ``kind`` (:data:`MULE` ...)."""
        return np.flatnonzero(self.kind == kind)


def universe(spec: SynthSpec) -> Universe:
    """Every account, its bank, owner and opening date, and which are planted (mule ...)."""
    rng = np.random.default_rng([spec.seed, 20])
    n, mules = spec.account_count, spec.mule_count
    weight = np.maximum(1 - 0.1 * np.arange(spec.banks), 0.3)
    bank = rng.choice(spec.banks, size=n, p=weight / weight.sum()).astype(np.int8)
    offset = int(rng.integers(0, 10**12))
    number = (np.arange(n, dtype=np.int64) * ACCOUNT_STRIDE + offset) % 10**12
    kind = np.full(n, NORMAL, dtype=np.int8)
    planted = rng.choice(n, size=3 * mules, replace=False)
    kind[planted[:mules]] = MULE
    kind[planted[mules : 2 * mules]] = COLLECTOR
    kind[planted[2 * mules :]] = BIG_SINGLE
    kind[(rng.random(n) < 0.02) & (kind == NORMAL)] = MERCHANT
    company_chance = np.select(
        [kind == MERCHANT, kind == COLLECTOR, kind == BIG_SINGLE, kind == MULE],
        [0.6, 0.5, 0.3, 0.0],
        0.08,
    )
    company = rng.random(n) < company_chance
    city = rng.choice(len(CITIES), size=n, p=CITY_WEIGHT / CITY_WEIGHT.sum()).astype(np.int8)
    # Most accounts are years old; half the mules were opened for the scam days
    # before it (the others are rented, ordinary-looking accounts).
    start, end = window(spec)
    age_days = np.minimum(rng.exponential(4 * 365, n), 20 * 365).astype(np.int64) + 1
    fresh = (kind == MULE) & (rng.random(n) < 0.5)
    fresh_age = rng.integers(3, 90, n)
    start_day, end_day = start.astype("datetime64[D]"), end.astype("datetime64[D]")
    opened = np.where(fresh, end_day - fresh_age, start_day - age_days)
    activity = rng.lognormal(0, 1.0, n) * np.where(company, 3.0, 1.0)
    activity[fresh] = 0.0  # a fresh mule never paid anyone before the scam
    popularity = np.where(kind == MERCHANT, rng.lognormal(0, 1.5, n), 0.0)
    return Universe(bank, number, company, city, opened, kind, fresh, activity, popularity)


def accounts(spec: SynthSpec, bank: int) -> Columns:
    """One bank's accounts: ``account`` (unique across banks), ``owner_type``, ``opened``, ``city``.

    Account ids are a letter naming the bank ('A' for bank-a) + '62' + two digits
    naming the bank + a scrambled 12-digit number; the letter keeps CSV readers
    from taking them for numbers.
    """
    return materialise(accounts_table(spec, universe(spec), bank))


def accounts_table(spec: SynthSpec, uni: Universe, bank: int) -> Table:
    """:func:`accounts` with its string columns still lazy (for writing)."""
    who = np.flatnonzero(uni.bank == bank)
    owner = uni.company[who].astype(np.int8)
    return {
        "account": uni.ids(who),
        "owner_type": Text((Lookup(owner, _OWNER_TYPES),), len(who)),
        "opened": uni.opened[who],
        "city": Text((Lookup(uni.city[who], CITIES),), len(who)),
    }
