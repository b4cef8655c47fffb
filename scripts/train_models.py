"""Train the two showcase models shipped in unseen/models/ (credit.json, fraud.json).

Credit: bank-a's own loan history (who defaulted) joined, in the clear, with
the departments' features — this stands for a past, authorised joint
modelling exercise; at scoring time the same features stay at their holders
and only encrypted weights travel. Fraud: the telecom operator's and the
banks' signals on an investigated batch of accounts, labelled by the planted
mules, trained on another seed than the demo uses.

Features are defined once (CREDIT_FEATURES, FRAUD_FEATURES) in the model
file's own vocabulary, and computed with unseen.oracle.plaintext.plaintext_features —
the same semantics the holders apply — so the weights fit what the
federation computes. Logistic regression by Newton's method with a small
ridge, on standardised features, folded back into raw-unit weights.

    python scripts/train_models.py [--enterprises 60000] [--out unseen/models]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unseen.engine.data import synth  # noqa: E402
from unseen.engine.query.model import parse_model  # noqa: E402
from unseen.oracle.plaintext import plaintext_features  # noqa: E402
from unseen.oracle.quality import auc  # noqa: E402

LAST6 = "month >= '2023-07'"
PREV6 = "month >= '2023-01' AND month < '2023-07'"
CREDIT_FEATURES: list[dict[str, Any]] = [
    {"table": "electricity", "column": "kwh", "aggregate": "sum", "filter": LAST6},
    {"table": "electricity", "column": "kwh", "aggregate": "sum", "filter": PREV6},
    {"table": "electricity", "column": "kwh", "aggregate": "count", "filter": LAST6},
    {
        "table": "tax_filings",
        "column": "revenue",
        "aggregate": "sum",
        "filter": "quarter >= '2023Q1'",
        "transform": "log1p",
    },
    {
        "table": "tax_filings",
        "column": "revenue",
        "aggregate": "sum",
        "filter": "quarter < '2023Q1'",
        "transform": "log1p",
    },
    {"table": "tax_filings", "column": "arrears", "aggregate": "sum"},
    {
        "table": "headcount",
        "column": "insured_staff",
        "aggregate": "avg",
        "filter": LAST6,
        "transform": "log1p",
    },
    {
        "table": "headcount",
        "column": "insured_staff",
        "aggregate": "avg",
        "filter": "month < '2022-07'",
        "transform": "log1p",
    },
    {"table": "registry", "column": "founded", "default": 2015},
    {"table": "registry", "column": "registered_capital", "transform": "log1p"},
]
LAST_DAY = "ts >= TIMESTAMP '2024-01-30 00:00:00'"
FRAUD_FEATURES: list[dict[str, Any]] = [
    {
        "table": "transfers",
        "column": "amount",
        "aggregate": "sum",
        "key": "payee",
        "filter": LAST_DAY,
    },
    {
        "table": "transfers",
        "column": "amount",
        "aggregate": "count",
        "key": "payee",
        "filter": LAST_DAY,
    },
    {"table": "transfers", "column": "amount", "aggregate": "count", "key": "payee"},
    {"table": "fraud_reports", "column": "reports", "aggregate": "sum", "key": "account"},
    {"table": "fraud_reports", "column": "sim_swap_recent", "aggregate": "max", "key": "account"},
]


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> tuple[np.ndarray, float]:
    """Newton's method on standardised features; returns raw-unit weights and intercept."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(z @ beta)))
        gradient = z.T @ (p - y) + ridge * np.r_[0, beta[1:]]
        hessian = (z * (p * (1 - p))[:, None]).T @ z + ridge * np.diag(
            np.r_[0, np.ones(len(beta) - 1)]
        )
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    weights = beta[1:] / scale
    return weights, float(beta[0] - np.sum(beta[1:] * mean / scale))


def _model(entity: str, features: list[dict], weights: np.ndarray, intercept: float) -> dict:
    return {
        "entity": entity,
        "features": [dict(f, weight=float(w)) for f, w in zip(features, weights, strict=True)],
        "intercept": intercept,
        "link": "logistic",
    }


def _register(con: duckdb.DuckDBPyConnection, name: str, parts: list[synth.Columns]) -> None:
    pooled = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    synth.public_relation(con, pooled, f"raw_{name}").create_view(name)


def _fit(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    features: list[dict],
    entities: list,
    labels: np.ndarray,
    ridge: float = 1e-2,
) -> tuple[dict, float]:
    """Fit on the plaintext features of ``entities``: the model file and its in-sample AUC."""
    template = parse_model(_model(entity, features, np.zeros(len(features)), 0.0))
    x = plaintext_features(con, template, entities)
    weights, intercept = fit_logistic(x, labels, ridge)
    fitted = 1 / (1 + np.exp(-(x @ weights + intercept)))
    return _model(entity, features, weights, intercept), auc(fitted, labels)


def train_credit(enterprises: int, seed: int) -> tuple[dict, float]:
    spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
    ent = synth.enterprises(spec)
    con = duckdb.connect()
    _register(con, "electricity", [synth.electricity(spec, ent)])
    _register(con, "tax_filings", [synth.tax_filings(spec, ent)])
    _register(con, "headcount", [synth.headcount(spec, ent)])
    _register(con, "registry", [synth.registry(spec, ent)])
    history = synth.loans(spec, ent, bank=0)
    # One row per borrower: did any of its loans default?
    borrowers = np.unique(history["uscc"])
    defaulted = np.zeros(len(borrowers))
    np.maximum.at(defaulted, np.searchsorted(borrowers, history["uscc"]), history["defaulted"])
    return _fit(con, "uscc", CREDIT_FEATURES, list(borrowers), defaulted)


def train_fraud(enterprises: int, seed: int) -> tuple[dict, float]:
    spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
    con = duckdb.connect()
    _register(con, "transfers", synth.transfers_by_bank(spec))
    _register(con, "fraud_reports", [synth.telecom_reports(spec)])
    batch = list(synth.suspicious_accounts(spec))
    mules = set(synth.mule_truth(spec).tolist())
    labels = np.array([a in mules for a in batch], dtype=np.float64)
    return _fit(con, "account", FRAUD_FEATURES, batch, labels, ridge=1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=60_000)
    parser.add_argument("--credit-seed", type=int, default=7)
    parser.add_argument("--fraud-seed", type=int, default=101)
    parser.add_argument("--out", type=Path, default=ROOT / "unseen" / "models")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    credit, credit_auc = train_credit(args.enterprises, args.credit_seed)
    (args.out / "credit.json").write_text(json.dumps(credit, indent=2) + "\n")
    print(f"credit model: in-sample AUC {credit_auc:.3f} -> {args.out / 'credit.json'}")
    fraud, fraud_auc = train_fraud(args.enterprises, args.fraud_seed)
    (args.out / "fraud.json").write_text(json.dumps(fraud, indent=2) + "\n")
    print(f"fraud model: in-sample AUC {fraud_auc:.3f} -> {args.out / 'fraud.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
