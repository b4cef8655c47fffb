"""Joint training is as good as plaintext logistic regression (issue 15.5), on the
synthetic province, over real gRPC, real TenSEAL and the holders' own engines.

The bank's labels are its past loans; the features are the credit scorecard's own
(unseen/models/credit.json) at the holders of their tables — tax, hr, samr —
computed by each holder as ``unseen score`` computes them (filters, ``log1p``).
The reference is exact-sigmoid logistic regression (Newton, numpy) on the same
features computed in the clear with DuckDB; both are judged by their AUC on the
enterprises the bank never lent to, against their true default outcomes.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb
import numpy as np
import pytest

from tests.conftest import start_federation
from unseen.demo import MODELS
from unseen.engine.data import synth
from unseen.engine.query.model import Model, load_model
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.vertical_lr import TrainSpec, Whitening, plaintext_training
from unseen.oracle.plaintext import plaintext_features
from unseen.oracle.quality import auc, logistic_regression

TABLES = {"tax": "tax_filings", "hr": "headcount", "samr": "registry"}


@pytest.fixture(scope="module")
def province(tmp_path_factory):
    root = tmp_path_factory.mktemp("province")
    spec = synth.SynthSpec(seed=11, enterprises=6000)
    ent = synth.enterprises(spec)
    columns = {
        "tax_filings": synth.tax_filings(spec, ent),
        "headcount": synth.headcount(spec, ent),
        "registry": synth.registry(spec, ent),
    }
    paths = {t: synth.write_table(c, root / f"{t}.parquet", t) for t, c in columns.items()}
    fed = start_federation({h: {t: paths[t]} for h, t in TABLES.items()})
    con = duckdb.connect()
    for table, cols in columns.items():
        synth.public_relation(con, cols, f"raw_{table}").create_view(table)
    yield spec, ent, fed, con
    fed.close()


def _parts() -> list[TrainFeatures]:
    scorecard = load_model(MODELS / "credit.json")
    parts = []
    for holder, table in TABLES.items():
        derived = tuple(replace(f, weight=0.0) for f in scorecard.features if f.table == table)
        columns = tuple(f.column for f in derived)
        parts.append(TrainFeatures(holder, table, "uscc", columns, derived=derived))
    return parts


def test_jointly_trained_auc_is_within_0005_of_plaintext_logistic_regression(province, key):
    spec, ent, fed, con = province
    history = synth.loans(spec, ent, 0)
    labels = {str(u): float(d) for u, d in zip(history["uscc"], history["defaulted"], strict=True)}
    others = np.array(sorted(set(ent["uscc"].tolist()) - set(history["uscc"].tolist())))
    outcomes = synth.application_outcomes(spec, ent, others)
    ids, unseen_ids = list(labels), [str(u) for u in others]
    parts = _parts()
    train = TrainSpec(iterations=12, learning_rate=1.0)

    client = fed.client(key)
    model = client.train(labels, parts, train, validation=0.0)
    assert [len(a.common) for a in model.alignments] == [len(ids)] * len(parts)
    joint = np.array([r[1] for r in client.predict(model.to_dict(), unseen_ids).rows])

    blocks = [plaintext_features(con, Model("uscc", p.derived), ids) for p in parts]
    tests = [plaintext_features(con, Model("uscc", p.derived), unseen_ids) for p in parts]
    y = np.array([labels[i] for i in ids])
    # The holders computed the scorecard's features exactly as DuckDB does in the clear:
    # the same training on the pooled plaintext gives the same scores.
    weights, intercept = plaintext_training(blocks, y, train, train.iterations)
    linear = intercept + sum(
        Whitening.of(b).apply(t) @ w for b, t, w in zip(blocks, tests, weights, strict=True)
    )
    assert np.abs(joint - 1 / (1 + np.exp(-linear))).max() < 1e-6

    pooled, pooled_test = np.hstack(blocks), np.hstack(tests)
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    w, b = logistic_regression((pooled - mean) / std, y)
    exact = auc((pooled_test - mean) / std @ w + b, outcomes)
    assert exact > 0.7  # the features do predict default
    assert abs(auc(joint, outcomes) - exact) < 0.005
