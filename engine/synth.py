"""Deterministic synthetic data for the showcase federation (see docs/synthetic-data.md).

One seed fixes everything. Enterprises live in the 21 prefecture-level cities of a
province, belong to industries and carry latent variables (size, credit health,
growth momentum); every department's table is derived from those latents with
noise, so cross-department signals are realistic: electricity, revenue and
headcount grow with size and trend with health, amounts are heavy-tailed, values
go missing, and loan defaults truly depend on health. A separate account universe
at several banks carries ordinary payments, busy merchants, fee collectors and
planted money mules whose pattern only shows when every bank's transfers are
pooled.

Every table draws from its own ``np.random.default_rng([seed, constant])`` stream,
so a table does not depend on which other tables were generated first. Tables
come back as dicts of numpy columns. Large tables are built internally with
identifier columns kept as integer parts (:class:`_Text`) and only turned into
strings by DuckDB while it writes the file, which keeps a federation of a
million enterprises and ten million transfers under 2 GB and a minute.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TypeAlias

import duckdb
import numpy as np
from sqlglot import exp

__all__ = [
    "CITIES",
    "INDUSTRIES",
    "Columns",
    "Federation",
    "SynthSpec",
    "accounts",
    "application_outcomes",
    "applications",
    "bank_name",
    "electricity",
    "enterprises",
    "headcount",
    "loans",
    "months",
    "mule_truth",
    "public_relation",
    "quarters",
    "registry",
    "split",
    "suspicious_accounts",
    "tax_filings",
    "telecom_reports",
    "transfers",
    "window",
    "write_city_shards",
    "write_federation",
    "write_table",
]

Columns = dict[str, np.ndarray]

CITIES = (
    "Guangzhou",
    "Shenzhen",
    "Zhuhai",
    "Shantou",
    "Foshan",
    "Shaoguan",
    "Heyuan",
    "Meizhou",
    "Huizhou",
    "Shanwei",
    "Dongguan",
    "Zhongshan",
    "Jiangmen",
    "Yangjiang",
    "Zhanjiang",
    "Maoming",
    "Zhaoqing",
    "Qingyuan",
    "Chaozhou",
    "Jieyang",
    "Yunfu",
)
# Relative economic weight of each city (enterprise and account counts follow it).
_CITY_WEIGHT = np.array(
    [18, 20, 3, 3, 10, 1.2, 1, 1.2, 4, 0.8, 10, 3, 3, 1, 2, 1.5, 1.5, 1.2, 1, 1.5, 0.8]
)
# Administrative division codes (GB/T 2260), the region part of a credit code.
_CITY_CODE = (
    "440100",
    "440300",
    "440400",
    "440500",
    "440600",
    "440200",
    "441600",
    "441400",
    "441300",
    "441500",
    "441900",
    "442000",
    "440700",
    "441700",
    "440800",
    "440900",
    "441200",
    "441800",
    "445100",
    "445200",
    "445300",
)
INDUSTRIES = (
    "manufacturing",
    "retail",
    "wholesale",
    "construction",
    "logistics",
    "software",
    "catering",
    "agriculture",
    "textiles",
    "electronics",
    "chemicals",
    "services",
)
# Per industry: how common it is, electricity intensity per unit of size, summer
# seasonality amplitude, staff per unit of size, revenue per unit of size and the
# effective VAT rate on revenue (value added differs a lot between industries).
_INDUSTRY_WEIGHT = np.array([14, 16, 10, 7, 6, 5, 9, 3, 5, 5, 2, 18])
_INTENSITY = np.array([3.0, 0.6, 0.5, 1.2, 0.9, 0.4, 0.8, 1.5, 2.2, 2.0, 3.5, 0.5])
_SEASONAL = np.array([0.10, 0.15, 0.10, 0.05, 0.08, 0.20, 0.25, 0.30, 0.10, 0.12, 0.08, 0.18])
_LABOUR = np.array([1.6, 0.8, 0.5, 2.0, 1.0, 0.9, 1.2, 0.7, 1.8, 1.4, 0.8, 1.0])
_REVENUE = np.array([1.5, 1.2, 2.5, 1.4, 1.0, 0.9, 0.5, 0.4, 0.9, 1.8, 1.6, 0.6])
_VAT_RATE = np.array([0.035, 0.02, 0.012, 0.03, 0.025, 0.045, 0.02, 0.005, 0.03, 0.035, 0.04, 0.04])
# Quarterly revenue pattern: the Spring Festival depresses Q1, year-end lifts Q4.
_QUARTER_SEASON = np.array([0.88, 1.0, 1.02, 1.12])

# Unified social credit codes (GB 32100-2015): 18 characters, the last a check
# character over this 31-letter alphabet with these position weights.
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
# Multipliers coprime to 10 scramble a row index into a unique fixed-width number,
# so identifiers do not give away row order.
_ORG_STRIDE = 387_420_489  # 3**18, coprime to 10**9
_ACCOUNT_STRIDE = 7_919_371  # coprime to 10**12

# Credit model shared by past loans and future applications: the logit of default
# is _ALPHA - _BETA * health - _AGE_EFFECT * (ln(age) - ln 10) + N(0, _EPSILON).
_ALPHA = -3.7
_BETA = 2.0
_AGE_EFFECT = 0.3
_EPSILON = 0.5

_OWNER_TYPES = ("person", "company")
_CHANNELS = ("mobile", "online", "counter", "qr")
# Account kinds in the fraud universe (latent; only mules are ground truth).
_NORMAL, _MERCHANT, _MULE, _COLLECTOR, _BIG_SINGLE = range(5)
# Share of the day's payments by hour (quiet at night, peaks at noon and evening).
_HOURLY = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 5, 6, 6.5, 7, 8, 7, 6, 6, 6.5, 7, 8, 8.5, 8, 6, 4, 2]
)
_DAY = 86_400
_MAX_BANKS = 26
# Ordinary transfers by category (merchant payment, person to person, company
# payment): median amount in CNY, log-normal sigma, channel probabilities.
_ORDINARY = (
    (60.0, 1.0, (0.25, 0.0, 0.0, 0.75)),
    (500.0, 1.2, (0.7, 0.22, 0.08, 0.0)),
    (20_000.0, 1.3, (0.0, 0.8, 0.2, 0.0)),
)


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
        if not 1 <= self.banks <= _MAX_BANKS:
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


# -- lazy string columns ------------------------------------------------------------
# A million enterprises times 24 months is 24 million identifiers; as numpy unicode
# arrays they would take gigabytes and DuckDB would then dictionary-encode them
# slowly. Instead an identifier column is kept as integer parts and DuckDB builds
# the strings while it streams the file out (a projection, so row order holds).


@dataclass(frozen=True)
class _Lookup:
    """A string part chosen per row from a short list of labels by an integer code."""

    codes: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class _Digits:
    """A string part holding a non-negative integer, zero-padded to ``width`` digits."""

    values: np.ndarray
    width: int


_Part: TypeAlias = str | _Lookup | _Digits


@dataclass(frozen=True)
class _Text:
    """A string column as the concatenation of constant, looked-up and digit parts."""

    parts: tuple[_Part, ...]
    rows: int

    def __len__(self) -> int:
        return self.rows

    def take(self, index: np.ndarray) -> _Text:
        """The rows at ``index`` (integer positions or a boolean mask)."""
        parts: list[_Part] = []
        for part in self.parts:
            if isinstance(part, _Lookup):
                parts.append(_Lookup(part.codes[index], part.labels))
            elif isinstance(part, _Digits):
                parts.append(_Digits(part.values[index], part.width))
            else:
                parts.append(part)
        rows = int(np.count_nonzero(index)) if index.dtype == bool else len(index)
        return _Text(tuple(parts), rows)

    def materialise(self) -> np.ndarray:
        """The column as a numpy unicode array."""
        out: np.ndarray | None = None
        for part in self.parts:
            if isinstance(part, _Lookup):
                piece = np.asarray(part.labels)[part.codes]
            elif isinstance(part, _Digits):
                piece = np.char.zfill(part.values.astype(np.str_), part.width)
            else:
                piece = np.full(self.rows, part)
            out = piece if out is None else np.char.add(out, piece)
        assert out is not None
        return out


_Column: TypeAlias = np.ndarray | _Text
_Table: TypeAlias = dict[str, _Column]


def _take(table: Mapping[str, _Column], index: np.ndarray) -> _Table:
    return {k: v.take(index) if isinstance(v, _Text) else v[index] for k, v in table.items()}


def _materialise(table: Mapping[str, _Column]) -> Columns:
    return {k: v.materialise() if isinstance(v, _Text) else v for k, v in table.items()}


def _rows(table: Mapping[str, _Column]) -> int:
    return len(next(iter(table.values())))


# -- calendar -----------------------------------------------------------------------


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


def _age_years(spec: SynthSpec, founded: np.ndarray) -> np.ndarray:
    """Firm age at the end of the covered months (when applications are scored)."""
    return np.maximum(spec.start_year + spec.months / 12 - founded, 0.5)


# -- enterprises --------------------------------------------------------------------


def enterprises(spec: SynthSpec) -> Columns:
    """The enterprises with their latent variables (latents prefixed ``_``).

    Public columns: ``uscc`` (an 18-character unified social credit code with a
    valid check character), ``city``, ``industry``, ``founded``. Latents: ``_city``
    and ``_industry`` (codes), ``_size`` (log-normal, heavy-tailed), ``_health``
    (standard normal credit quality), ``_momentum`` (standard normal growth that is
    unrelated to credit risk, shared by every department's trends) and the parts of
    the credit code (``_org``, ``_check``) that writers use to build ids cheaply.
    """
    rng = np.random.default_rng([spec.seed, 1])
    n = spec.enterprises
    city = rng.choice(len(CITIES), size=n, p=_CITY_WEIGHT / _CITY_WEIGHT.sum())
    industry = rng.choice(len(INDUSTRIES), size=n, p=_INDUSTRY_WEIGHT / _INDUSTRY_WEIGHT.sum())
    size = rng.lognormal(mean=0.0, sigma=1.1, size=n)
    health = rng.normal(size=n)
    momentum = rng.normal(size=n)
    age = rng.gamma(shape=2.0, scale=5.0, size=n)
    founded = np.clip(spec.start_year - 1 - age.astype(np.int64), 1985, spec.start_year - 1)
    offset = int(rng.integers(0, 10**9))
    org = (np.arange(n, dtype=np.int64) * _ORG_STRIDE + offset) % 10**9
    ent: Columns = {
        "_city": city.astype(np.int64),
        "_industry": industry.astype(np.int64),
        "_size": size,
        "_health": health,
        "_momentum": momentum,
        "_org": org,
        "_check": _uscc_check(city, org),
    }
    ent = {
        "uscc": _uscc(ent).materialise(),
        "city": np.asarray(CITIES)[city],
        "industry": np.asarray(INDUSTRIES)[industry],
        "founded": founded.astype(np.int64),
        **ent,
    }
    return ent


def _uscc_check(city: np.ndarray, org: np.ndarray) -> np.ndarray:
    """The GB 32100 check character (as an alphabet index) of '91' + region + org."""
    region_digits = np.array([[int(c) for c in code] for code in _CITY_CODE])
    region = region_digits @ _USCC_WEIGHTS[2:8]
    total = 9 * _USCC_WEIGHTS[0] + 1 * _USCC_WEIGHTS[1] + region[city]
    for position in range(9):
        digit = org // 10 ** (8 - position) % 10
        total = total + digit * _USCC_WEIGHTS[8 + position]
    return ((31 - total % 31) % 31).astype(np.int8)


def _uscc(ent: Mapping[str, np.ndarray], who: np.ndarray | None = None) -> _Text:
    """Credit codes of enterprises ``who`` (all when None) as a lazy string column."""
    city, org, check = ent["_city"], ent["_org"], ent["_check"]
    if who is not None:
        city, org, check = city[who], org[who], check[who]
    prefixes = tuple(f"91{code}" for code in _CITY_CODE)
    alphabet = tuple(_USCC_ALPHABET)
    parts = (_Lookup(city.astype(np.int8), prefixes), _Digits(org, 9), _Lookup(check, alphabet))
    return _Text(parts, len(org))


def _entity_columns(ent: Mapping[str, np.ndarray], who: np.ndarray) -> _Table:
    return {
        "uscc": _uscc(ent, who),
        "city": _Text((_Lookup(ent["_city"][who].astype(np.int8), CITIES),), len(who)),
        "industry": _Text((_Lookup(ent["_industry"][who].astype(np.int8), INDUSTRIES),), len(who)),
    }


def _registry(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> _Table:
    rng = np.random.default_rng([spec.seed, 5])
    n = len(ent["_size"])
    raw = np.maximum(300_000 * ent["_size"] ** 1.2 * rng.lognormal(0.0, 0.9, n), 10_000)
    # Registered capital is declared in round figures: two significant digits.
    unit = 10.0 ** (np.floor(np.log10(raw)) - 1)
    capital = (np.round(raw / unit) * unit).astype(np.int64)
    return {
        **_entity_columns(ent, np.arange(n)),
        "founded": ent["founded"],
        "registered_capital": capital,
    }


def registry(spec: SynthSpec, ent: Columns) -> Columns:
    """The market regulator's public registry (one row per enterprise).

    Columns: ``uscc``, ``city``, ``industry``, ``founded`` and ``registered_capital``
    (CNY, two significant digits, heavy-tailed: size**1.2 times log-normal noise).
    """
    return _materialise(_registry(spec, ent))


# -- departments' monthly and quarterly data ------------------------------------------


def _panel(n: int, periods: int, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entity and period index of the kept cells of an (entity x period) panel."""
    flat = np.flatnonzero(keep.ravel())
    return flat // periods, (flat % periods).astype(np.int16)


def _electricity(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> _Table:
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
    who, month = _panel(n, m, keep)
    kwh_kept = np.round(kwh[keep], 2)
    del kwh
    peak = np.round(kwh_kept / 300 * peak_noise[keep]).astype(np.int64)
    return {
        **_entity_columns(ent, who),
        "month": _Text((_Lookup(month, tuple(months(spec))),), len(who)),
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
    return _materialise(_electricity(spec, ent))


def _headcount(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> _Table:
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
    who, month = _panel(n, m, keep)
    insured = np.maximum(np.round(staff[keep]), 1).astype(np.int64)
    return {
        "uscc": _uscc(ent, who),
        "month": _Text((_Lookup(month, tuple(months(spec))),), len(who)),
        "insured_staff": insured,
    }


def headcount(spec: SynthSpec, ent: Columns) -> Columns:
    """Social-insurance headcount per enterprise and month (the HR bureau's table).

    Columns: ``uscc``, ``month``, ``insured_staff`` (integer, about 6 x size**0.9 x
    industry labour intensity; healthy firms hire, distressed ones shed staff, with
    a persistent random walk on top); some months missing.
    """
    return _materialise(_headcount(spec, ent))


def _tax_filings(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> _Table:
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
    arrears = rng.random((n, q)) < _sigmoid(lateness)[:, None]
    keep = rng.random((n, q)) >= spec.missing_rate  # filings not made
    unassessed = rng.random((n, q)) < spec.missing_rate / 3  # VAT not yet assessed
    who, period = _panel(n, q, keep)
    return {
        "uscc": _uscc(ent, who),
        "quarter": _Text((_Lookup(period, tuple(labels)),), len(who)),
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
    return _materialise(_tax_filings(spec, ent))


# -- credit ------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _default_logit(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> np.ndarray:
    """The systematic part of the default logit: health and firm age."""
    age = _age_years(spec, ent["founded"])
    return _ALPHA - _BETA * ent["_health"] - _AGE_EFFECT * (np.log(age) - np.log(10))


def loans(spec: SynthSpec, ent: Columns, bank: int, share: float = 0.3) -> Columns:
    """One bank's loan book: amounts, rates and defaults that depend on health.

    Columns: ``loan_id``, ``uscc``, ``city``, ``month``, ``amount``, ``rate`` (a few
    NULL), ``defaulted``. Defaults follow the same logistic mechanism as
    :func:`application_outcomes` (with their own noise), so a bank can learn from
    its history what predicts a new applicant's default.
    """
    rng = np.random.default_rng([spec.seed, 10 + bank])
    n = len(ent["uscc"])
    borrowers = np.flatnonzero(rng.random(n) < share)
    count = len(borrowers)
    labels = months(spec)
    month_index = rng.integers(0, len(labels), size=count)
    amount = np.round(50_000 * ent["_size"][borrowers] * rng.lognormal(0, 0.6, count), -2)
    risk = -ent["_health"][borrowers] + rng.normal(0, 0.5, count)
    rate = np.round(
        0.035 + 0.02 * (risk - risk.min()) / (np.ptp(risk) + 1e-9) + rng.normal(0, 0.004, count), 5
    )
    rate_missing = rng.random(count) < spec.missing_rate
    logit = _default_logit(spec, ent)[borrowers] + rng.normal(0, _EPSILON, count)
    defaulted = rng.random(count) < _sigmoid(logit)
    loan_id = _Text((f"B{bank}L", _Digits(np.arange(count), 8)), count)
    return {
        "loan_id": loan_id.materialise(),
        "uscc": ent["uscc"][borrowers],
        "city": ent["city"][borrowers],
        "month": np.array(labels)[month_index],
        "amount": amount.astype(np.int64),
        "rate": np.where(rate_missing, np.nan, rate),
        "defaulted": defaulted.astype(np.int64),
    }


def applications(spec: SynthSpec, ent: Columns, bank: int = 0, share: float = 0.05) -> np.ndarray:
    """Credit codes of the enterprises applying to ``bank`` for a loan now, shuffled.

    About ``share`` of all enterprises apply, weaker ones somewhat more often
    (adverse selection); applicants may or may not be past borrowers.
    """
    rng = np.random.default_rng([spec.seed, 40 + bank])
    n = len(ent["uscc"])
    chance = np.clip(share * 2 * _sigmoid(-0.5 * ent["_health"]), 0, 1)
    chosen = np.flatnonzero(rng.random(n) < chance)
    return ent["uscc"][rng.permutation(chosen)]


def application_outcomes(spec: SynthSpec, ent: Columns, applicants: np.ndarray) -> np.ndarray:
    """The hidden truth: 1 where an applicant will default in the next year, else 0.

    Drawn once per enterprise from ``sigmoid(logit + N(0, 0.5))`` with the same
    logit as past loans, so the outcome of an enterprise does not depend on which
    bank asks or on who else applied.

    Raises:
        ValueError: an applicant is not one of ``ent``'s enterprises.
    """
    rng = np.random.default_rng([spec.seed, 50])
    n = len(ent["uscc"])
    noise = rng.normal(0, _EPSILON, n)
    draw = rng.random(n)
    defaults = draw < _sigmoid(_default_logit(spec, ent) + noise)
    order = np.argsort(ent["uscc"])
    where = np.searchsorted(ent["uscc"], applicants, sorter=order)
    where = np.minimum(where, n - 1)
    found = order[where]
    if not np.array_equal(ent["uscc"][found], np.asarray(applicants)):
        raise ValueError("some applicants are not enterprises of this province")
    return defaults[found].astype(np.int64)


# -- fraud: accounts at several banks ------------------------------------------------


def bank_name(bank: int) -> str:
    """Holder name of bank number ``bank`` (0 -> 'bank-a')."""
    return f"bank-{chr(ord('a') + bank)}"


@dataclass(frozen=True)
class _Universe:
    """Every account at every bank, with the latent kind of each (index = account)."""

    bank: np.ndarray  # int8
    number: np.ndarray  # int64, unique 12-digit account number
    company: np.ndarray  # bool
    city: np.ndarray  # int8
    opened: np.ndarray  # datetime64[D]
    kind: np.ndarray  # int8, one of _NORMAL ... _BIG_SINGLE
    fresh: np.ndarray  # bool: a mule account opened just for the scam
    activity: np.ndarray  # how often the account pays
    popularity: np.ndarray  # how often a merchant is paid (0 for non-merchants)

    def ids(self, who: np.ndarray) -> _Text:
        """Account ids of accounts ``who``: a bank prefix and the account number."""
        # A letter first keeps CSV readers from taking the ids for numbers.
        prefixes = tuple(f"{chr(ord('A') + b)}62{b + 10:02d}" for b in range(_MAX_BANKS))
        return _Text((_Lookup(self.bank[who], prefixes), _Digits(self.number[who], 12)), len(who))

    def of_kind(self, kind: int) -> np.ndarray:
        return np.flatnonzero(self.kind == kind)


def _universe(spec: SynthSpec) -> _Universe:
    """Every account, its bank, owner and opening date, and which are planted (mule ...)."""
    rng = np.random.default_rng([spec.seed, 20])
    n, mules = spec.account_count, spec.mule_count
    weight = np.maximum(1 - 0.1 * np.arange(spec.banks), 0.3)
    bank = rng.choice(spec.banks, size=n, p=weight / weight.sum()).astype(np.int8)
    offset = int(rng.integers(0, 10**12))
    number = (np.arange(n, dtype=np.int64) * _ACCOUNT_STRIDE + offset) % 10**12
    kind = np.full(n, _NORMAL, dtype=np.int8)
    planted = rng.choice(n, size=3 * mules, replace=False)
    kind[planted[:mules]] = _MULE
    kind[planted[mules : 2 * mules]] = _COLLECTOR
    kind[planted[2 * mules :]] = _BIG_SINGLE
    kind[(rng.random(n) < 0.02) & (kind == _NORMAL)] = _MERCHANT
    company_chance = np.select(
        [kind == _MERCHANT, kind == _COLLECTOR, kind == _BIG_SINGLE, kind == _MULE],
        [0.6, 0.5, 0.3, 0.0],
        0.08,
    )
    company = rng.random(n) < company_chance
    city = rng.choice(len(CITIES), size=n, p=_CITY_WEIGHT / _CITY_WEIGHT.sum()).astype(np.int8)
    # Most accounts are years old; half the mules were opened for the scam days
    # before it (the others are rented, ordinary-looking accounts).
    start, end = window(spec)
    age_days = np.minimum(rng.exponential(4 * 365, n), 20 * 365).astype(np.int64) + 1
    fresh = (kind == _MULE) & (rng.random(n) < 0.5)
    fresh_age = rng.integers(3, 90, n)
    start_day, end_day = start.astype("datetime64[D]"), end.astype("datetime64[D]")
    opened = np.where(fresh, end_day - fresh_age, start_day - age_days)
    activity = rng.lognormal(0, 1.0, n) * np.where(company, 3.0, 1.0)
    activity[fresh] = 0.0  # a fresh mule never paid anyone before the scam
    popularity = np.where(kind == _MERCHANT, rng.lognormal(0, 1.5, n), 0.0)
    return _Universe(bank, number, company, city, opened, kind, fresh, activity, popularity)


def accounts(spec: SynthSpec, bank: int) -> Columns:
    """One bank's accounts: ``account`` (unique across banks), ``owner_type``, ``opened``, ``city``.

    Account ids are a letter naming the bank ('A' for bank-a) + '62' + two digits
    naming the bank + a scrambled 12-digit number; the letter keeps CSV readers
    from taking them for numbers.
    """
    return _materialise(_accounts(spec, _universe(spec), bank))


def _accounts(spec: SynthSpec, uni: _Universe, bank: int) -> _Table:
    who = np.flatnonzero(uni.bank == bank)
    owner = uni.company[who].astype(np.int8)
    return {
        "account": uni.ids(who),
        "owner_type": _Text((_Lookup(owner, _OWNER_TYPES),), len(who)),
        "opened": uni.opened[who],
        "city": _Text((_Lookup(uni.city[who], CITIES),), len(who)),
    }


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
class _Transfers:
    """All transfers at all banks, in time order (one array per column)."""

    payer: np.ndarray
    payee: np.ndarray
    amount: np.ndarray
    seconds: np.ndarray  # since the window start
    channel: np.ndarray


def _transfers(spec: SynthSpec, uni: _Universe) -> _Transfers:
    """All transfers of the window at every bank: ordinary traffic plus the planted patterns.

    Generated once for all banks (each bank's table is a filter on the payer's
    bank) so that a victim's payment to a mule at another bank is one transfer.
    """
    rng = np.random.default_rng([spec.seed, 30])
    days = spec.window_days
    last = (days - 1) * _DAY  # the investigation day starts here
    persons = np.flatnonzero((uni.kind == _NORMAL) & ~uni.company)

    # Mules: many victims across all banks within hours, scam-sized amounts,
    # most of the money forwarded on within the same burst.
    mules = uni.of_kind(_MULE)
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
    collectors = uni.of_kind(_COLLECTOR)
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
    big = uni.of_kind(_BIG_SINGLE)
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
    return _Transfers(
        payer=columns[0][order].astype(np.int64),
        payee=columns[1][order].astype(np.int64),
        amount=columns[2][order].astype(np.float64),
        seconds=seconds_all[order],
        channel=columns[4][order].astype(np.int8),
    )


def _bank_transfers(spec: SynthSpec, uni: _Universe, every: _Transfers, bank: int) -> _Table:
    """The transfers bank ``bank`` processed: those its own customers paid."""
    rows = np.flatnonzero(uni.bank[every.payer] == bank)
    start, _ = window(spec)
    return {
        "transfer_id": _Text(("TX", _Digits(rows, 12)), len(rows)),
        "payer": uni.ids(every.payer[rows]),
        "payee": uni.ids(every.payee[rows]),
        "amount": every.amount[rows],
        "ts": start + every.seconds[rows].astype("timedelta64[s]"),
        "channel": _Text((_Lookup(every.channel[rows], _CHANNELS),), len(rows)),
    }


def transfers(spec: SynthSpec, bank: int) -> Columns:
    """Transfers processed by ``bank``: those whose payer holds an account there.

    Columns: ``transfer_id`` (unique across banks), ``payer`` and ``payee`` (account
    ids at any bank), ``amount`` (CNY, heavy-tailed), ``ts`` (TIMESTAMP in
    :func:`window`), ``channel``. A payee's incoming money is spread over every
    bank's table, which is why mules only stand out when the banks pool counts.
    """
    uni = _universe(spec)
    return _materialise(_bank_transfers(spec, uni, _transfers(spec, uni), bank))


def _reports(spec: SynthSpec, uni: _Universe) -> _Table:
    """The telecom table, plus the latent universe index of each row's account."""
    rng = np.random.default_rng([spec.seed, 21])
    n, days = len(uni.kind), spec.window_days
    # Victims report most mules on the day of the scam; some never report.
    mules = uni.of_kind(_MULE)
    reported = mules[rng.random(len(mules)) < 0.8]
    mule_reports = 1 + rng.poisson(2.0, len(reported))
    mule_swap = rng.random(len(reported)) < 0.35
    # False or mistaken reports name ordinary accounts on any day, and a few
    # collectors on the last day (an unhappy payer); SIM swaps happen to anyone.
    collectors = uni.of_kind(_COLLECTOR)
    wrongly = collectors[rng.random(len(collectors)) < 0.05]
    ordinary = np.flatnonzero(uni.kind != _MULE)
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
    return _materialise(_reports(spec, _universe(spec)))


def mule_truth(spec: SynthSpec) -> np.ndarray:
    """Ground truth: the planted mule account ids (held by no department)."""
    uni = _universe(spec)
    return uni.ids(uni.of_kind(_MULE)).materialise()


def _suspicious(spec: SynthSpec, uni: _Universe) -> np.ndarray:
    """Universe indices of the investigation batch (mules hidden among hard negatives)."""
    rng = np.random.default_rng([spec.seed, 22])
    mules = uni.of_kind(_MULE)
    merchants = uni.of_kind(_MERCHANT)
    weight = uni.popularity[merchants]
    size = min(len(mules), len(merchants))
    busy = rng.choice(merchants, size=size, replace=False, p=weight / weight.sum())
    reports = _reports(spec, uni)
    reported_rows, counts = reports["_account"], reports["reports"]
    assert isinstance(reported_rows, np.ndarray) and isinstance(counts, np.ndarray)
    reported = np.unique(reported_rows[counts > 0])
    falsely = reported[uni.kind[reported] != _MULE]
    falsely = rng.permutation(falsely)[: max(1, len(mules) // 2)]
    ordinary = np.flatnonzero(uni.kind == _NORMAL)
    random = rng.choice(ordinary, size=max(1, len(mules) // 2), replace=False)
    batch = np.unique(
        np.concatenate(
            [mules, uni.of_kind(_COLLECTOR), uni.of_kind(_BIG_SINGLE), busy, falsely, random]
        )
    )
    return rng.permutation(batch)


def suspicious_accounts(spec: SynthSpec) -> np.ndarray:
    """A batch of accounts to investigate, shuffled: every mule and about 4x as many others.

    The others are the hard negatives — every fee collector, every recipient of
    one large legitimate payment, busy merchants, falsely reported accounts — and
    some ordinary accounts.
    """
    uni = _universe(spec)
    return uni.ids(_suspicious(spec, uni)).materialise()


# -- writing ------------------------------------------------------------------------


def split(columns: Columns, mask: np.ndarray) -> Columns:
    """Rows of ``columns`` where ``mask`` holds (for horizontal shards)."""
    return {k: v[mask] for k, v in columns.items()}


def public_relation(
    con: duckdb.DuckDBPyConnection, columns: Columns, view: str
) -> duckdb.DuckDBPyRelation:
    """The public columns (no ``_`` latents) as a relation, NaN turned into NULL."""
    return _relation(con, columns, view)


def _relation(
    con: duckdb.DuckDBPyConnection, table: Mapping[str, _Column], view: str
) -> duckdb.DuckDBPyRelation:
    """Register ``table``'s arrays as ``view`` and select its public columns as SQL types.

    Floats: NaN becomes NULL. Numpy strings (DuckDB reads them as ENUMs) become
    VARCHAR. ``datetime64[D]`` becomes DATE, other datetimes TIMESTAMP. Lazy
    string columns are concatenated from their parts by DuckDB.
    """
    arrays: dict[str, np.ndarray] = {}

    def source(values: np.ndarray) -> exp.Expression:
        name = f"c{len(arrays)}"
        arrays[name] = values
        return exp.column(name, quoted=True)

    items = []
    for name, values in table.items():
        if name.startswith("_"):
            continue
        column: exp.Expression
        if isinstance(values, _Text):
            column = _text_sql(values, source)
        elif values.dtype.kind == "f":
            ref = source(values)
            column = exp.If(this=exp.func("isnan", ref.copy()), true=exp.Null(), false=ref)
        elif values.dtype.kind in "US":
            column = exp.cast(source(values), "VARCHAR")
        elif values.dtype.kind == "M":
            unit = np.datetime_data(values.dtype)[0]
            column = exp.cast(
                source(values.astype("datetime64[s]")), "DATE" if unit in "YMWD" else "TIMESTAMP"
            )
        else:
            column = source(values)
        items.append(exp.alias_(column, name, quoted=True))
    con.register(view, arrays)
    return con.sql(exp.select(*items).from_(exp.to_identifier(view, quoted=True)).sql("duckdb"))


def _text_sql(text: _Text, source: Callable[[np.ndarray], exp.Expression]) -> exp.Expression:
    pieces: list[exp.Expression] = []
    for part in text.parts:
        if isinstance(part, _Lookup):
            labels = exp.Array(expressions=[exp.Literal.string(s) for s in part.labels])
            index = exp.Add(this=source(part.codes), expression=exp.Literal.number(1))
            pieces.append(exp.Anonymous(this="list_extract", expressions=[labels, index]))
        elif isinstance(part, _Digits):
            digits = exp.cast(source(part.values), "VARCHAR")
            width, zero = exp.Literal.number(part.width), exp.Literal.string("0")
            pieces.append(exp.Anonymous(this="lpad", expressions=[digits, width, zero]))
        else:
            pieces.append(exp.Literal.string(part))
    result = pieces[0]
    for piece in pieces[1:]:
        result = exp.DPipe(this=result, expression=piece)
    return exp.cast(result, "VARCHAR")


def write_table(columns: Columns, path: Path, table: str | None = None) -> Path:
    """Write a table as .csv, .parquet, a DuckDB file or a SQLite file (by suffix).

    Database files get one table named ``table`` (default: the file's stem).
    Latent ``_`` columns are never written; NaN becomes NULL.
    """
    return _write(columns, path, table)


def _write(table: Mapping[str, _Column], path: Path, name: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = name or path.stem
    if path.suffix in (".sqlite", ".sqlite3"):
        _write_sqlite(_materialise(table), path, name)
        return path
    if path.suffix in (".duckdb", ".db"):
        path.unlink(missing_ok=True)
        con = duckdb.connect(str(path))
        try:
            _relation(con, table, "columns_view").create(name)
        finally:
            con.close()
        return path
    con = duckdb.connect()
    try:
        relation = _relation(con, table, "columns_view")
        if path.suffix == ".parquet":
            relation.write_parquet(str(path))
        else:
            relation.write_csv(str(path))
    finally:
        con.close()
    return path


def _write_sqlite(columns: Columns, path: Path, table: str) -> None:
    public = {k: v for k, v in columns.items() if not k.startswith("_")}
    kinds = {"i": "INTEGER", "u": "INTEGER", "f": "REAL", "b": "INTEGER"}

    def kind(values: np.ndarray) -> str:
        if values.dtype.kind == "M":
            return "DATE" if np.datetime_data(values.dtype)[0] in "YMWD" else "TIMESTAMP"
        return kinds.get(values.dtype.kind, "TEXT")

    defs = [
        exp.ColumnDef(this=exp.to_identifier(k, quoted=True), kind=exp.DataType.build(kind(v)))
        for k, v in public.items()
    ]
    create = exp.Create(
        this=exp.Schema(this=exp.table_(table, quoted=True), expressions=defs), kind="TABLE"
    )
    insert = exp.insert(
        exp.values([tuple(exp.Placeholder() for _ in public)]),
        exp.table_(table, quoted=True),
        columns=list(public),
    )
    rows = zip(*[_python_values(v) for v in public.values()], strict=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(create.sql("sqlite"))
        con.executemany(insert.sql("sqlite"), rows)


def _python_values(values: np.ndarray) -> list[object]:
    if values.dtype.kind == "f":
        return [None if np.isnan(v) else float(v) for v in values]
    if values.dtype.kind in "iub":
        return [int(v) for v in values]
    if values.dtype.kind == "M":
        # ISO text, as SQLite stores dates; a space separates date and time.
        return [str(v).replace("T", " ") for v in np.datetime_as_string(values)]
    return [str(v) for v in values]


# -- a whole federation on disk ----------------------------------------------------


@dataclass(frozen=True)
class Federation:
    """What :func:`write_federation` wrote.

    Attributes:
        root: the output directory.
        holders: holder name -> {table name -> file}; each holder has its own
            sub-directory of ``root``.
        inputs: analyst inputs outside any holder: ``applicants`` (CSV, column
            ``uscc``) and ``suspicious_accounts`` (CSV, column ``account``).
        truth: ground truth no holder serves: ``application_outcomes`` (``uscc``,
            ``defaulted``) and ``mules`` (``account``).
        rows: row count per "holder/table" and per input and truth file.
        seconds: wall time of generating and writing everything.
    """

    root: Path
    holders: dict[str, dict[str, Path]]
    inputs: dict[str, Path]
    truth: dict[str, Path]
    rows: dict[str, int]
    seconds: float


def write_federation(
    spec: SynthSpec,
    out_dir: Path,
    fmt: str = ".parquet",
    log: Callable[[str], None] | None = None,
) -> Federation:
    """Generate the province and write every department's tables under ``out_dir``.

    Holders: ``samr`` (registry), ``grid`` (electricity), ``tax`` (tax_filings),
    ``hr`` (headcount), ``bank-a`` ... (accounts and transfers at every bank;
    bank-a also its ``loans``), ``telecom`` (fraud_reports). Inputs and truth go
    to ``out_dir/inputs`` and ``out_dir/truth`` as CSV, and a ``federation.json``
    manifest records the spec and every path. Tables are generated one at a
    time and freed once written, so memory peaks at the largest table.

    Args:
        spec: sizes and seed.
        out_dir: directory to write into (created; existing files are replaced).
        fmt: file format of holder tables: .parquet, .csv, .duckdb or .sqlite
            (SQLite is written row by row: use it for small federations only).
        log: called with a line per table written (name, rows, seconds).
    """
    started = time.perf_counter()
    root = Path(out_dir)
    holders: dict[str, dict[str, Path]] = {}
    rows: dict[str, int] = {}

    def put(holder: str, name: str, make: Callable[[], Mapping[str, _Column]]) -> None:
        # Generate, write, drop: only one big table is alive at a time.
        began = time.perf_counter()
        table = make()
        path = _write(table, root / holder / f"{name}{fmt}", name)
        holders.setdefault(holder, {})[name] = path
        rows[f"{holder}/{name}"] = _rows(table)
        if log:
            took = time.perf_counter() - began
            log(f"{holder}/{name}: {_rows(table):,} rows -> {path} ({took:.1f} s)")

    ent = enterprises(spec)
    put("samr", "registry", partial(_registry, spec, ent))
    put("grid", "electricity", partial(_electricity, spec, ent))
    put("tax", "tax_filings", partial(_tax_filings, spec, ent))
    put("hr", "headcount", partial(_headcount, spec, ent))
    put(bank_name(0), "loans", partial(loans, spec, ent, 0))
    applicants = applications(spec, ent, 0)
    outcomes = application_outcomes(spec, ent, applicants)
    del ent
    uni = _universe(spec)
    every = _transfers(spec, uni)
    for bank in range(spec.banks):
        put(bank_name(bank), "accounts", partial(_accounts, spec, uni, bank))
        put(bank_name(bank), "transfers", partial(_bank_transfers, spec, uni, every, bank))
    del every
    put("telecom", "fraud_reports", partial(_reports, spec, uni))
    mules = uni.ids(uni.of_kind(_MULE))
    suspicious = uni.ids(_suspicious(spec, uni))

    files: dict[str, tuple[str, Mapping[str, _Column]]] = {
        "applicants": ("inputs", {"uscc": applicants}),
        "suspicious_accounts": ("inputs", {"account": suspicious}),
        "application_outcomes": ("truth", {"uscc": applicants, "defaulted": outcomes}),
        "mules": ("truth", {"account": mules}),
    }
    inputs: dict[str, Path] = {}
    truth: dict[str, Path] = {}
    for name, (where, table) in files.items():
        path = _write(table, root / where / f"{name}.csv", name)
        (inputs if where == "inputs" else truth)[name] = path
        rows[f"{where}/{name}"] = _rows(table)
    seconds = time.perf_counter() - started
    federation = Federation(root, holders, inputs, truth, rows, seconds)
    manifest = {
        "spec": asdict(spec),
        "holders": {
            h: {t: str(p.relative_to(root)) for t, p in ts.items()} for h, ts in holders.items()
        },
        "inputs": {k: str(p.relative_to(root)) for k, p in inputs.items()},
        "truth": {k: str(p.relative_to(root)) for k, p in truth.items()},
        "rows": rows,
    }
    (root / "federation.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return federation


def write_city_shards(
    spec: SynthSpec, out_dir: Path, fmt: str = ".parquet"
) -> dict[str, dict[str, Path]]:
    """Electricity split into 21 city holders, for statistics across city nodes.

    Returns ``{"grid-<city>": {"electricity": path}}`` (city names lower-case),
    each file holding that city's rows of :func:`electricity`.
    """
    ent = enterprises(spec)
    power = _electricity(spec, ent)
    city_part = power["city"]
    assert isinstance(city_part, _Text) and isinstance(city_part.parts[0], _Lookup)
    codes = city_part.parts[0].codes
    shards: dict[str, dict[str, Path]] = {}
    for code, city in enumerate(CITIES):
        holder = f"grid-{city.lower()}"
        part = _take(power, np.flatnonzero(codes == code))
        path = _write(part, Path(out_dir) / holder / f"electricity{fmt}", "electricity")
        shards[holder] = {"electricity": path}
    return shards
