"""Joint training is as good as plaintext logistic regression (issue 15.5), on the
synthetic province, over real gRPC, real TenSEAL and the holders' own engines.

The bank's labels are its past loans; the features are the credit scorecard's own
(unseen/models/credit.json) at the holders of their tables — tax, hr, samr —
computed by each holder as ``unseen score`` computes them (filters, ``log1p``).
The reference is exact-sigmoid logistic regression (Newton, numpy) on the same
features computed in the clear with DuckDB; both are judged by their AUC on the
enterprises the bank never lent to, against their true default outcomes.

Training is class-weighted (negatives 0.25, the default): with the first-order
sigmoid the unweighted objective fell up to 0.009 AUC short of exact LR over seeds
1-8 (class imbalance, ~9 % defaults); weighted it is at most 0.0024 short on every
seed (``scripts/joint_auc_seeds.py`` runs all eight; CI runs three, 7 the worst).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import start_federation
from unseen.demo import MODELS
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.data import synth
from unseen.engine.query.model import Model, load_model
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.vertical_lr import TrainSpec, Whitening, plaintext_training
from unseen.oracle.plaintext import plaintext_features
from unseen.oracle.quality import auc, logistic_regression

TABLES = {"tax": "tax_filings", "hr": "headcount", "samr": "registry"}


def _parts() -> list[TrainFeatures]:
    scorecard = load_model(MODELS / "credit.json")
    parts = []
    for holder, table in TABLES.items():
        derived = tuple(replace(f, weight=0.0) for f in scorecard.features if f.table == table)
        columns = tuple(f.column for f in derived)
        parts.append(TrainFeatures(holder, table, "uscc", columns, derived=derived))
    return parts


def province_accuracy(
    seed: int, key: AnalystKey, enterprises: int = 6000, negative_weight: float = 0.25
) -> dict[str, float]:
    """Train jointly on one synthetic province; AUCs beside exact LR, and the check
    against plaintext training of the same objective (max score difference)."""
    spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
    ent = synth.enterprises(spec)
    columns = {
        "tax_filings": synth.tax_filings(spec, ent),
        "headcount": synth.headcount(spec, ent),
        "registry": synth.registry(spec, ent),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = {t: synth.write_table(c, root / f"{t}.parquet", t) for t, c in columns.items()}
        fed = start_federation({h: {t: paths[t]} for h, t in TABLES.items()})
        try:
            con = duckdb.connect()
            for table, cols in columns.items():
                synth.public_relation(con, cols, f"raw_{table}").create_view(table)
            history = synth.loans(spec, ent, 0)
            labels = {
                str(u): float(d) for u, d in zip(history["uscc"], history["defaulted"], strict=True)
            }
            others = np.array(sorted(set(ent["uscc"].tolist()) - set(history["uscc"].tolist())))
            outcomes = synth.application_outcomes(spec, ent, others)
            ids, unseen_ids = list(labels), [str(u) for u in others]
            parts = _parts()
            train = TrainSpec(iterations=12, learning_rate=1.0, negative_weight=negative_weight)

            client = fed.client(key)
            model = client.train(labels, parts, train, validation=0.0)
            aligned = [len(a.common) for a in model.alignments]
            joint = np.array([r[1] for r in client.predict(model.to_dict(), unseen_ids).rows])

            blocks = [plaintext_features(con, Model("uscc", p.derived), ids) for p in parts]
            tests = [plaintext_features(con, Model("uscc", p.derived), unseen_ids) for p in parts]
        finally:
            fed.close()
    y = np.array([labels[i] for i in ids])
    # The holders computed the scorecard's features exactly as DuckDB does in the clear:
    # the same (weighted, approximated) training on the pooled plaintext gives the same scores.
    weights, intercept = plaintext_training(blocks, y, train, train.iterations)
    linear = intercept + sum(
        Whitening.of(b).apply(t) @ w for b, t, w in zip(blocks, tests, weights, strict=True)
    )
    pooled, pooled_test = np.hstack(blocks), np.hstack(tests)
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    w, b = logistic_regression((pooled - mean) / std, y)
    return {
        "seed": seed,
        "labelled": len(ids),
        "aligned_min": min(aligned),
        "joint_auc": auc(joint, outcomes),
        "exact_auc": auc((pooled_test - mean) / std @ w + b, outcomes),
        "plaintext_objective_auc": auc(linear, outcomes),
        "max_score_difference": float(np.abs(joint - 1 / (1 + np.exp(-linear))).max()),
    }


@pytest.mark.parametrize("seed", [7, 11, 3])
def test_jointly_trained_auc_is_within_0005_of_plaintext_logistic_regression(seed, key):
    found = province_accuracy(seed, key)
    assert found["aligned_min"] == found["labelled"]
    # Weights equal plaintext training of the same weighted objective: scores within 1e-6.
    assert found["max_score_difference"] < 1e-6
    assert found["exact_auc"] > 0.7  # the features do predict default
    # No worse than exact logistic regression by 0.005. Better is possible: on seed 5 the
    # weighted fit beats it by 0.0097 on the never-lent-to enterprises (unweighted: by
    # 0.007) — the synthetic defaults are not exactly logistic in these features.
    assert found["exact_auc"] - found["joint_auc"] < 0.005
    assert found["joint_auc"] - found["exact_auc"] < 0.015
