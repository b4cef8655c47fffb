"""Credit: one bank's loan book, today's applicants and their hidden outcomes, from one model.

Past loans and future applications share the default model, so a bank can learn
from its history what predicts a new applicant's default.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from unseen.engine.data.synth.columns import Columns, Digits, Text
from unseen.engine.data.synth.spec import SynthSpec, months

__all__ = ["application_outcomes", "applications", "loans", "sigmoid"]

# Credit model shared by past loans and future applications: the logit of default
# is _ALPHA - _BETA * health - _AGE_EFFECT * (ln(age) - ln 10) + N(0, _EPSILON).
_ALPHA = -3.7
_BETA = 2.0
_AGE_EFFECT = 0.3
_EPSILON = 0.5


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, from a logit to a probability."""
    return 1 / (1 + np.exp(-x))


def _age_years(spec: SynthSpec, founded: np.ndarray) -> np.ndarray:
    """Firm age at the end of the covered months (when applications are scored)."""
    return np.maximum(spec.start_year + spec.months / 12 - founded, 0.5)


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
    defaulted = rng.random(count) < sigmoid(logit)
    loan_id = Text((f"B{bank}L", Digits(np.arange(count), 8)), count)
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
    chance = np.clip(share * 2 * sigmoid(-0.5 * ent["_health"]), 0, 1)
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
    defaults = draw < sigmoid(_default_logit(spec, ent) + noise)
    order = np.argsort(ent["uscc"])
    where = np.searchsorted(ent["uscc"], applicants, sorter=order)
    where = np.minimum(where, n - 1)
    found = order[where]
    if not np.array_equal(ent["uscc"][found], np.asarray(applicants)):
        raise ValueError("some applicants are not enterprises of this province")
    return defaults[found].astype(np.int64)
