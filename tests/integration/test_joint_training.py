"""Joint training end to end over real gRPC (issue 15): PSI alignment, then vertical
logistic regression through the key-less coordinator, checked against numpy training
of the same Taylor-approximated objective on the pooled plaintext."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import start_federation, unseen
from tests.governance_fixtures import ACCOUNTS, build_world, entries, start_in_process
from tests.shards import write_shard
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError
from unseen.engine.governance.voucher import SignedVoucher
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.training_client import CoordinatorRelay
from unseen.engine.training.vertical_lr import TrainSpec, Whitening, plaintext_training

GRID = [("uscc", "VARCHAR"), ("kwh", "DOUBLE"), ("peak", "DOUBLE")]
TAX = [("uscc", "VARCHAR"), ("revenue", "DOUBLE"), ("arrears", "BIGINT"), ("staff", "DOUBLE")]
HOLDERS = [
    TrainFeatures("grid", "power", "uscc", ("kwh", "peak")),
    TrainFeatures("tax", "taxes", "uscc", ("revenue", "arrears", "staff")),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("joint")
    rng = np.random.default_rng(15)
    n = 900
    ids = [f"9144{i:06d}" for i in range(n)]
    grid = np.column_stack([rng.lognormal(9, 0.7, n), rng.normal(40, 9, n)])
    tax = np.column_stack([rng.lognormal(12, 1, n), rng.integers(0, 4, n), rng.normal(25, 8, n)])
    logit = -1.5 + 0.8 * (np.log(grid[:, 0]) - 9) - 0.6 * tax[:, 1] + 0.05 * (tax[:, 2] - 25)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # The bank knows 700 of them plus 40 the holders never saw; each holder lacks a few.
    grid_rows = [(ids[i], *grid[i]) for i in range(n) if i % 50 != 7]
    tax_rows = [(ids[i], tax[i, 0], int(tax[i, 1]), tax[i, 2]) for i in range(n) if i % 60 != 11]
    bank = {ids[i]: float(labels[i]) for i in range(700)}
    bank |= {f"9155{i:06d}": float(i % 2) for i in range(40)}
    fed = start_federation(
        {
            "grid": {"power": write_shard(root / "power.csv", GRID, grid_rows)},
            "tax": {"taxes": write_shard(root / "taxes.parquet", TAX, tax_rows)},
        }
    )
    yield fed, bank, {r[0]: r[1:] for r in grid_rows}, {r[0]: r[1:] for r in tax_rows}, root
    fed.close()


def _pooled(bank, grid, tax):
    aligned = [i for i in bank if i in grid and i in tax]
    blocks = [
        np.array([grid[i] for i in aligned], dtype=float),
        np.array([tax[i] for i in aligned], dtype=float),
    ]
    return aligned, blocks, np.array([bank[i] for i in aligned])


def test_trained_weights_equal_plaintext_training_on_the_pooled_data(world, key):
    fed, bank, grid, tax, _ = world
    spec = TrainSpec(iterations=6, learning_rate=0.8, l2=0.001, batch_size=300, seed=4)
    model = fed.client(key).train(bank, HOLDERS, spec, validation=0.0)
    aligned, blocks, labels = _pooled(bank, grid, tax)
    assert [a.holder_size for a in model.alignments] == [len(grid), len(tax)]
    weights, intercept = plaintext_training(blocks, labels, spec, spec.iterations)
    for name, expected in zip(("grid", "tax"), weights, strict=True):
        kept = fed.holders[name].training.model(model.job_id)
        assert np.abs(kept.weights - expected).max() < 1e-6
        assert model.digests[name] == kept.weight_digest()
    assert abs(model.intercept - intercept) < 1e-6
    assert model.run.iterations == spec.iterations
    assert len(aligned) < len(bank)  # the alignment did drop ids


def test_train_command_writes_the_model_file_only_when_done(world, tmp_path):
    fed, bank, *_ = world
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{int(v)}\n" for i, v in bank.items()))
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "holders": [
                    {"holder": f.holder, "table": f.table, "key": f.key, "columns": f.columns}
                    for f in HOLDERS
                ],
                "iterations": 4,
                "learning_rate": 0.5,
                "patience": 2,
                "validation": 0.25,
            }
        )
    )
    out = tmp_path / "model.json"
    done = unseen(
        "train", "--coordinator", fed.address, "--labels", labels, "--spec", spec,
        "--out", out, "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    model = json.loads(out.read_text())
    assert model["kind"] == "joint-logistic" and model["link"] == "logistic"
    assert [h["holder"] for h in model["holders"]] == ["grid", "tax"]
    for entry in model["holders"]:
        kept = fed.holders[entry["holder"]].training.model(model["job"])
        assert entry["weights_sha256"] == kept.weight_digest()
    assert len(model["lineage"]["validation_losses"]) == 4
    assert "weights" not in json.dumps(model["holders"]).replace("weights_sha256", "")
    printed = json.loads(done.stdout)
    assert printed["meta"]["iterations"] == model["lineage"]["iterations"]

    entities = tmp_path / "entities.txt"
    entities.write_text("".join(f"{i}\n" for i in list(bank)[:20]))
    scored = unseen("score", "--coordinator", fed.address, "--model", out, "--entities",
                    entities, "--format", "json")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    rows = json.loads(scored.stdout)["rows"]
    assert [r[0] for r in rows] == list(bank)[:20]
    assert all(0 < r[1] < 1 for r in rows)

    spec.write_text(json.dumps({"holders": [{"holder": "nobody", "table": "t", "key": "k",
                                              "columns": ["c"]}]}))  # fmt: skip
    out.unlink()
    failed = unseen("train", "--coordinator", fed.address, "--labels", labels, "--spec", spec,
                    "--out", out)  # fmt: skip
    assert failed.returncode == 1 and "no configured holder is named 'nobody'" in failed.stderr
    assert not out.exists() and not (tmp_path / "model.json.partial").exists()


def test_a_holder_dropping_mid_training_fails_the_job_and_keeps_nothing(tmp_path, key, monkeypatch):
    rng = np.random.default_rng(2)
    ids = [f"E{i:04d}" for i in range(300)]
    power = [(i, *rng.normal(size=2)) for i in ids]
    taxes = [(i, 1.0, int(rng.integers(0, 3)), 2.0) for i in ids]
    fed = start_federation(
        {
            "grid": {"power": write_shard(tmp_path / "p.csv", GRID, power)},
            "tax": {"taxes": write_shard(tmp_path / "t.csv", TAX, taxes)},
        }
    )
    try:
        update = CoordinatorRelay.update

        def drop_tax_after_the_second_iteration(self, iteration, gradients):
            update(self, iteration, gradients)
            if iteration == 1:
                fed.stop_holder("tax")

        monkeypatch.setattr(CoordinatorRelay, "update", drop_tax_after_the_second_iteration)
        labels = {i: float(rng.integers(0, 2)) for i in ids}
        with pytest.raises(RemoteError) as failed:
            fed.client(key).train(labels, HOLDERS, TrainSpec(iterations=5), validation=0.0)
        assert failed.value.code == "UNAVAILABLE"
        assert "iteration 3" in str(failed.value) and "holder tax" in str(failed.value)
        assert not fed.holders["grid"].training.jobs and not fed.holders["grid"].training.models
        assert not fed.coordinator.training.relays
    finally:
        fed.close()


def test_governed_training_is_charged_per_iteration_within_the_voucher_quota(tmp_path, key):
    world = build_world(tmp_path)
    fed = start_in_process(world)
    try:
        labels = {a: float(i % 2) for i, a in enumerate(ACCOUNTS)}
        holders = [TrainFeatures("grid", "power", "account", ("kwh",))]
        scope = {"power": {"account": ["entity"], "kwh": ["score"]}}
        # alignment + start + 3 iterations = 5 uses; a quota of 4 stops the job.
        short = world.voucher("grid", key.key_id, scope, quota=4)
        before = len(entries(world.ledgers["grid"]))
        with pytest.raises(RemoteError) as refused:
            fed.client(key, [short]).train(labels, holders, TrainSpec(iterations=3), 0.0)
        assert refused.value.code == "PERMISSION_DENIED"
        assert "iteration 3" in str(refused.value)
        assert not fed.holders["grid"].training.jobs
        enough = world.voucher("grid", key.key_id, scope, quota=5)
        model = fed.client(key, [enough]).train(labels, holders, TrainSpec(iterations=3), 0.0)
        assert model.run.iterations == 3
        logged = [(e.kind, e.outcome) for e in entries(world.ledgers["grid"])[before:]]
        assert (
            logged[-5:]
            == [("align", "answered"), ("train", "answered")] + [("train", "answered")] * 3
        )
        text = world.ledgers["grid"].read_bytes()
        assert b"acct-003" not in text

        # The lineage: grid's signed statement over its weights, checked by a supervisor.
        path = tmp_path / "model.json"
        path.write_text(json.dumps(model.to_dict()))
        public = world.holder_keys["grid"].public_key.to_text()
        audit = unseen("audit", "lineage", "--model", path, "--holder-key", f"grid={public}")
        assert audit.returncode == 0, audit.stderr
        statement = model.to_dict()["lineage"]["statements"][0]
        assert statement["iterations"] == 3 and statement["entities"] == 10
        assert statement["vouchers"] == [SignedVoucher.decode(enough).voucher_id]
        forged = model.to_dict()
        forged["holders"][0]["weights_sha256"] = "0" * 64
        path.write_text(json.dumps(forged))
        audit = unseen("audit", "lineage", "--model", path, "--holder-key", f"grid={public}")
        assert audit.returncode == 4 and "weight digest differs" in audit.stdout
    finally:
        fed.close()


def test_joint_prediction_equals_the_plaintext_score_of_the_trained_weights(world, key):
    fed, bank, grid, tax, _ = world
    client = fed.client(key)
    model = client.train(bank, HOLDERS, TrainSpec(iterations=4), validation=0.0).to_dict()
    entities = [*list(grid)[::7], "9199000000"]  # one entity no holder has
    result = client.predict(model, entities)
    linear = np.full(len(entities), model["intercept"])
    for name, rows in (("grid", grid), ("tax", tax)):
        trainer = fed.holders[name].training.model(model["job"])
        x = np.array([rows.get(e, trainer.mean) for e in entities], dtype=float)
        linear += trainer.whitening.apply(x) @ trainer.weights
    expected = 1 / (1 + np.exp(-linear))
    assert [r[0] for r in result.rows] == entities
    assert np.abs(np.array([r[1] for r in result.rows]) - expected).max() < 1e-6
    other = fed.client(AnalystKey.generate())
    with pytest.raises(RemoteError, match="only the key that trained it"):
        other.predict(model, entities)


def test_train_command_with_derived_features_scores_as_plaintext_training(world, tmp_path):
    """A spec's ``features`` (a scorecard's, without weights) are computed by the holder and
    kept in the model file, so ``unseen score`` computes the same ones."""
    fed, bank, grid, tax, _ = world
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{int(v)}\n" for i, v in bank.items()))
    derived = [
        {"table": "power", "column": "kwh", "transform": "log1p"},
        {"table": "power", "column": "peak", "aggregate": "max", "filter": "kwh > 5000"},
    ]
    holders = [
        {"holder": "grid", "table": "power", "key": "uscc", "features": derived},
        {"holder": "tax", "table": "taxes", "key": "uscc", "columns": ["revenue", "arrears"]},
    ]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"holders": holders, "iterations": 5, "learning_rate": 1.0,
                                "validation": 0}))  # fmt: skip
    out = tmp_path / "model.json"
    done = unseen("train", "--coordinator", fed.address, "--labels", labels, "--spec", spec,
                  "--out", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    model = json.loads(out.read_text())
    assert model["holders"][0]["features"] == derived
    assert model["holders"][0]["columns"] == ["kwh", "peak"]

    # Plaintext: the same features from the same rows, the same training.
    aligned = [i for i in bank if i in grid and i in tax]
    entities = [*aligned[:30], "9199000000"]  # and one entity no holder has

    def grid_features(ids, fill):
        rows = [grid.get(i) for i in ids]
        return np.array(
            [fill if r is None else [np.log1p(r[0]), r[1] if r[0] > 5000 else 0.0] for r in rows]
        )

    blocks = [grid_features(aligned, None), np.array([tax[i][:2] for i in aligned], dtype=float)]
    y = np.array([bank[i] for i in aligned])
    spec_ = TrainSpec(iterations=5, learning_rate=1.0)
    weights, intercept = plaintext_training(blocks, y, spec_, 5)
    tax_mean = blocks[1].mean(axis=0)
    tests = [
        grid_features(entities, [0.0, 0.0]),  # derived features: their defaults (0)
        np.array([tax[i][:2] if i in tax else tax_mean for i in entities], dtype=float),
    ]
    linear = intercept + sum(
        Whitening.of(b).apply(t) @ w for b, t, w in zip(blocks, tests, weights, strict=True)
    )
    ids = tmp_path / "entities.txt"
    ids.write_text("".join(f"{i}\n" for i in entities))
    scored = unseen("score", "--coordinator", fed.address, "--model", out, "--entities", ids,
                    "--format", "json")  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    rows = json.loads(scored.stdout)["rows"]
    assert [r[0] for r in rows] == entities
    expected = 1 / (1 + np.exp(-linear))
    assert np.abs(np.array([r[1] for r in rows]) - expected).max() < 1e-6

    derived[0]["weight"] = 0.5  # a spec never carries weights
    spec.write_text(json.dumps({"holders": holders}))
    refused = unseen("train", "--coordinator", fed.address, "--labels", labels, "--spec", spec,
                     "--out", tmp_path / "other.json")  # fmt: skip
    assert refused.returncode != 0 and "without a weight" in refused.stderr
