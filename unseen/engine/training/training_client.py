"""The bank's side of a joint training job over gRPC: align, split, drive, write the model.

:class:`CoordinatorRelay` is the :class:`~unseen.engine.training.joint_training.Relay` the bank's
loop talks to; every call is one step of the job at the coordinator, which
relays to the holders and adds ciphertexts. :func:`train_jointly` runs the
whole job: PSI alignment with every holder (the training set is the ids every
holder has), a seeded validation split the bank keeps, the loop, and the
trained model's description (weights stay at the holders; the file holds the
intercept, the holders' weight digests and the lineage).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import ConfigError, PlanError
from unseen.engine.query.model import Feature, parse_model
from unseen.engine.training.align import Alignment, align_entities
from unseen.engine.training.joint_training import TrainingRun, run_training
from unseen.engine.training.train_job import TrainAnswer, TrainCall, TrainFeatures, spec_to_json
from unseen.engine.training.vertical_lr import BankTrainer, TrainSpec

__all__ = [
    "MODEL_KIND",
    "CoordinatorRelay",
    "JointModel",
    "TrainPeer",
    "derived_from_json",
    "derived_to_json",
    "holder_part",
    "model_holders",
    "predict_jointly",
    "train_jointly",
]

MODEL_KIND = "joint-logistic"


class TrainPeer(Protocol):
    """What the bank needs of the coordinator (unseen.engine.transport.peers.CoordinatorPeer)."""

    def train(
        self, call: TrainCall, *, budget: float | None = None, subject: str | None = None
    ) -> TrainAnswer: ...

    def align(
        self, ask: Any, *, budget: float | None = None, subject: str | None = None
    ) -> Any: ...


@dataclass
class CoordinatorRelay:
    """The coordinator's relay of one job, reached by gRPC."""

    peer: TrainPeer
    job_id: str
    features: dict[str, int]
    intercept_holder: str

    def _call(self, step: str, **kwargs: Any) -> TrainAnswer:
        return self.peer.train(TrainCall(self.job_id, step, **kwargs))

    def round(self, iteration: int, label_part: Sequence[bytes]) -> dict[str, list[bytes]]:
        answer = self._call("round", iteration=iteration, ciphertexts=tuple(label_part))
        if set(answer.products) != set(self.features):
            raise PlanError("the coordinator's round is missing a holder's products")
        return answer.products

    def update(self, iteration: int, gradients: Mapping[str, np.ndarray]) -> None:
        values = {h: [float(v) for v in g] for h, g in gradients.items()}
        self._call("update", iteration=iteration, gradients=values)

    def validate(self) -> list[bytes]:
        return self._call("validate").ciphertexts

    def finish(self, best: int) -> dict[str, str]:
        answer = self._call("finish", best=best)
        self.statements = answer.statements
        return answer.digests

    def abort(self) -> None:
        self._call("abort")


@dataclass
class JointModel:
    """A jointly trained model as the bank keeps it: no holder's weights, only their digests."""

    job_id: str
    holders: tuple[TrainFeatures, ...]
    digests: dict[str, str]
    intercept: float
    run: TrainingRun
    alignments: tuple[Alignment, ...]
    receipts: tuple[str, ...]
    statements: tuple[dict[str, Any], ...] = ()  # holders' signed lineage statements

    def to_dict(self) -> dict[str, Any]:
        """The model file (``kind`` tells ``unseen score`` how to serve it)."""
        return {
            "kind": MODEL_KIND,
            "job": self.job_id,
            "link": "logistic",
            "intercept": self.intercept,
            "holders": [
                {
                    "holder": f.holder,
                    "table": f.table,
                    "key": f.key,
                    "columns": list(f.columns),
                    **({"features": derived_to_json(f.derived)} if f.derived else {}),
                    "weights_sha256": self.digests.get(f.holder, ""),
                }
                for f in self.holders
            ],
            "lineage": {
                "iterations": self.run.iterations,
                "validation_losses": self.run.losses,
                "alignment": [a.to_dict() for a in self.alignments],
                "statements": list(self.statements),
            },
        }


def train_jointly(
    peer: TrainPeer,
    key: AnalystKey,
    labels: Mapping[str, float],
    holders: Sequence[TrainFeatures],
    spec: TrainSpec,
    validation: float = 0.2,
    vouchers: Sequence[str] = (),
) -> JointModel:
    """Align the labelled ids with every holder, then train; the model or an error."""
    if not 0 <= validation < 1:
        raise PlanError("the validation share is between 0 and 1")
    if sum(f.intercept for f in holders) != 1:
        holders = [replace(f, intercept=i == 0) for i, f in enumerate(holders)]
    if any(f.derived and not f.definitions for f in holders):
        raise PlanError("derived features must be checked against the catalog first")
    ids = list(labels)
    alignments = []
    common = set(ids)
    for f in holders:
        aligned = align_entities(peer, key.key_id, f.holder, f.table, f.key, ids, vouchers)
        alignments.append(aligned)
        common &= set(aligned.common)
    kept = [i for i in ids if i in common]
    if len(kept) < 10:
        raise PlanError(f"only {len(kept)} labelled entities are held by every holder")
    order = np.random.default_rng([spec.seed, 1]).permutation(len(kept))
    cut = len(kept) - round(validation * len(kept)) if spec.patience else len(kept)
    train_ids = [kept[i] for i in sorted(order[:cut])]
    valid_ids = [kept[i] for i in sorted(order[cut:])]
    job_id = secrets.token_hex(16)
    start = TrainCall(
        job_id,
        "start",
        key_id=key.key_id,
        spec=spec_to_json(spec),
        features=tuple(holders),
        ids=tuple(train_ids),
        validation_ids=tuple(valid_ids),
        vouchers=tuple(vouchers),
    )
    started = peer.train(start)
    relay = CoordinatorRelay(
        peer,
        job_id,
        {f.holder: len(f.columns) for f in holders},
        next(f.holder for f in holders if f.intercept),
    )
    bank = BankTrainer(
        key.secret,
        np.array([labels[i] for i in train_ids], dtype=np.float64),
        np.array([labels[i] for i in valid_ids], dtype=np.float64),
        spec,
    )
    run = run_training(bank, relay, spec)
    return JointModel(
        job_id,
        tuple(holders),
        run.holders,
        run.intercept,
        run,
        tuple(alignments),
        tuple(started.receipts) + tuple(r for a in alignments for r in a.receipts),
        tuple(json.loads(t) for t in getattr(relay, "statements", {}).values()),
    )


def model_holders(model: Mapping[str, Any]) -> tuple[TrainFeatures, ...]:
    """The holders' parts named in a joint model file."""
    if model.get("kind") != MODEL_KIND:
        raise PlanError(f"not a {MODEL_KIND} model file")
    try:
        return tuple(holder_part(h, i == 0) for i, h in enumerate(model["holders"]))
    except (KeyError, TypeError, ConfigError) as exc:
        raise PlanError(f"the model file's holders are not valid: {exc}") from exc


def holder_part(entry: Mapping[str, Any], intercept: bool) -> TrainFeatures:
    """One holder's entry of a model spec or model file: plain columns, or
    ``features`` in the scorecard's form without weights (derived features)."""
    derived = derived_from_json(entry["features"], entry["key"]) if "features" in entry else ()
    columns = tuple(f.column for f in derived) if derived else tuple(entry["columns"])
    for feature in derived:
        if feature.table.lower() != str(entry["table"]).lower():
            raise PlanError(f"holder {entry['holder']}'s features are all on {entry['table']}")
    return TrainFeatures(
        entry["holder"], entry["table"], entry["key"], columns, intercept, derived=derived
    )


def derived_from_json(items: Any, key: str) -> tuple[Feature, ...]:
    """Derived features from their JSON form (a scorecard's features without weights)."""
    if not isinstance(items, list) or not items:
        raise ConfigError("a holder's 'features' is a non-empty list")
    if any(not isinstance(i, dict) or "weight" in i for i in items):
        raise ConfigError("a derived feature is an object without a weight")
    return parse_model({"entity": key, "features": [{**i, "weight": 0} for i in items]}).features


def derived_to_json(features: Sequence[Feature]) -> list[dict[str, Any]]:
    """The model-file form of derived features (only the fields that differ from defaults)."""
    out = []
    for f in features:
        item: dict[str, Any] = {"table": f.table, "column": f.column}
        item |= {"aggregate": f.aggregate} if f.aggregate else {}
        item |= {"filter": f.filter} if f.filter is not None else {}
        item |= {"transform": f.transform} if f.transform else {}
        item |= {"default": f.default} if f.default else {}
        out.append(item)
    return out


def predict_jointly(
    peer: TrainPeer,
    key: AnalystKey,
    model: Mapping[str, Any],
    ids: Sequence[str],
    vouchers: Sequence[str] = (),
    holders: Sequence[TrainFeatures] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Scores of ``ids`` under a jointly trained model: (probabilities, receipts).

    Each holder computes its part with its own weights and encrypts it; the
    coordinator adds the parts; only the sum is decrypted here.
    """
    from unseen.engine.crypto import ckks

    call = TrainCall(
        str(model.get("job", "")),
        "predict",
        key_id=key.key_id,
        features=tuple(model_holders(model) if holders is None else holders),
        ids=tuple(ids),
        vouchers=tuple(vouchers),
    )
    answer = peer.train(call)
    if not ids:
        return np.zeros(0), answer.receipts
    values = np.concatenate([ckks.decrypt(key.secret, c) for c in answer.ciphertexts])
    if len(values) < len(ids):
        raise PlanError("the coordinator returned fewer scores than entities")
    linear = values[: len(ids)] + float(model["intercept"])
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-linear)), answer.receipts
