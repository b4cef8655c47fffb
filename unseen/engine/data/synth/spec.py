"""The size and seed of a synthetic federation, and the calendar its tables cover."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_BANKS", "SynthSpec", "months", "quarters", "window"]

# Banks are the holders bank-a ... bank-z.
MAX_BANKS = 26


@dataclass(frozen=True)
class SynthSpec:
    """Size and seed of a generated federation.

    The fraud sizes default to multiples of ``enterprises`` (two accounts and ten
    transfers per enterprise, one mule per thousand enterprises, at least 20) so a
    single knob scales the whole province; :attr:`account_count` and friends give
    the resolved values.
    """

    seed: int = 7
    enterprises: int = 5_000
    months: int = 24
    start_year: int = 2022
    missing_rate: float = 0.03
    banks: int = 3
    accounts: int | None = None
    transfers: int | None = None
    mules: int | None = None
    window_days: int = 30

    def __post_init__(self) -> None:
        if self.enterprises < 1 or self.enterprises >= 10**9:
            raise ValueError("enterprises must be between 1 and 10**9 - 1")
        if self.months < 1:
            raise ValueError("months must be at least 1")
        if not 0 <= self.missing_rate < 1:
            raise ValueError("missing_rate must be in [0, 1)")
        if not 1 <= self.banks <= MAX_BANKS:
            raise ValueError("banks must be between 1 and 26 (holders bank-a ... bank-z)")
        if self.window_days < 2:
            raise ValueError("window_days must be at least 2")
        # Victims and collectors' payers are drawn without replacement from the
        # ordinary personal accounts, so the universe must be much larger.
        if self.account_count < 100 * self.mule_count:
            raise ValueError("accounts must be at least 100 x mules")
        if self.account_count >= 10**12:
            raise ValueError("accounts must be below 10**12")

    @property
    def account_count(self) -> int:
        """Bank accounts across all banks (default: two per enterprise, at least 2 000)."""
        return self.accounts if self.accounts is not None else max(2_000, 2 * self.enterprises)

    @property
    def transfer_count(self) -> int:
        """Transfers across all banks, planted ones included (default: ten per enterprise)."""
        return self.transfers if self.transfers is not None else 10 * self.enterprises

    @property
    def mule_count(self) -> int:
        """Planted money-mule accounts (default: one per thousand enterprises, at least 20)."""
        return self.mules if self.mules is not None else max(20, self.enterprises // 1_000)


def months(spec: SynthSpec) -> list[str]:
    """Month labels 'YYYY-MM' covered by the data."""
    return [f"{spec.start_year + m // 12}-{m % 12 + 1:02d}" for m in range(spec.months)]


def quarters(spec: SynthSpec) -> list[str]:
    """Quarter labels 'YYYYQn' of the quarters the months touch (tax periods)."""
    return [f"{spec.start_year + q // 4}Q{q % 4 + 1}" for q in range((spec.months + 2) // 3)]


def window(spec: SynthSpec) -> tuple[np.datetime64, np.datetime64]:
    """The transfers' time window [start, end): ``window_days`` days after the last month.

    The planted mule bursts all fall in the last 24 hours, ``[end - 1 day, end)``,
    the period a fraud investigation on ``end`` looks at.
    """
    start = np.datetime64(f"{spec.start_year}-01", "M") + np.timedelta64(spec.months, "M")
    day = start.astype("datetime64[D]")
    return day.astype("datetime64[s]"), (day + spec.window_days).astype("datetime64[s]")
