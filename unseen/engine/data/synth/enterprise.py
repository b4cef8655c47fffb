"""The province's enterprises with their latent variables, and the regulator's registry of them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unseen.engine.data.synth.columns import Columns, Lookup, Table, Text, materialise
from unseen.engine.data.synth.ids import ORG_STRIDE, uscc, uscc_check
from unseen.engine.data.synth.province import CITIES, CITY_WEIGHT, INDUSTRIES, INDUSTRY_WEIGHT
from unseen.engine.data.synth.spec import SynthSpec

__all__ = ["enterprises", "entity_columns", "registry", "registry_table"]


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
    city = rng.choice(len(CITIES), size=n, p=CITY_WEIGHT / CITY_WEIGHT.sum())
    industry = rng.choice(len(INDUSTRIES), size=n, p=INDUSTRY_WEIGHT / INDUSTRY_WEIGHT.sum())
    size = rng.lognormal(mean=0.0, sigma=1.1, size=n)
    health = rng.normal(size=n)
    momentum = rng.normal(size=n)
    age = rng.gamma(shape=2.0, scale=5.0, size=n)
    founded = np.clip(spec.start_year - 1 - age.astype(np.int64), 1985, spec.start_year - 1)
    offset = int(rng.integers(0, 10**9))
    org = (np.arange(n, dtype=np.int64) * ORG_STRIDE + offset) % 10**9
    ent: Columns = {
        "_city": city.astype(np.int64),
        "_industry": industry.astype(np.int64),
        "_size": size,
        "_health": health,
        "_momentum": momentum,
        "_org": org,
        "_check": uscc_check(city, org),
    }
    ent = {
        "uscc": uscc(ent).materialise(),
        "city": np.asarray(CITIES)[city],
        "industry": np.asarray(INDUSTRIES)[industry],
        "founded": founded.astype(np.int64),
        **ent,
    }
    return ent


def entity_columns(ent: Mapping[str, np.ndarray], who: np.ndarray) -> Table:
    """Lazy ``uscc``, ``city`` and ``industry`` columns of enterprises ``who``."""
    return {
        "uscc": uscc(ent, who),
        "city": Text((Lookup(ent["_city"][who].astype(np.int8), CITIES),), len(who)),
        "industry": Text((Lookup(ent["_industry"][who].astype(np.int8), INDUSTRIES),), len(who)),
    }


def registry_table(spec: SynthSpec, ent: Mapping[str, np.ndarray]) -> Table:
    """:func:`registry` with its string columns still lazy (for writing)."""
    rng = np.random.default_rng([spec.seed, 5])
    n = len(ent["_size"])
    raw = np.maximum(300_000 * ent["_size"] ** 1.2 * rng.lognormal(0.0, 0.9, n), 10_000)
    # Registered capital is declared in round figures: two significant digits.
    unit = 10.0 ** (np.floor(np.log10(raw)) - 1)
    capital = (np.round(raw / unit) * unit).astype(np.int64)
    return {
        **entity_columns(ent, np.arange(n)),
        "founded": ent["founded"],
        "registered_capital": capital,
    }


def registry(spec: SynthSpec, ent: Columns) -> Columns:
    """The market regulator's public registry (one row per enterprise).

    Columns: ``uscc``, ``city``, ``industry``, ``founded`` and ``registered_capital``
    (CNY, two significant digits, heavy-tailed: size**1.2 times log-normal noise).
    """
    return materialise(registry_table(spec, ent))
