"""A training job's calls as they travel: one step per call, plain dataclasses.

Steps the coordinator answers (the bank calls): ``start``, ``round``,
``update``, ``validate``, ``finish``, ``abort``, and ``predict`` (joint
prediction with a finished job's model: ``ids`` to score). Steps a holder
answers (the coordinator calls): ``start``, ``partial``, ``products``,
``update``, ``validate``, ``finish``, ``abort``, ``predict``. :mod:`unseen.engine.transport.serde`
converts them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from unseen.engine.errors import PlanError
from unseen.engine.query.model import Feature, FeatureSpec
from unseen.engine.training.vertical_lr import TrainSpec

__all__ = [
    "COORDINATOR_STEPS",
    "HOLDER_STEPS",
    "TrainAnswer",
    "TrainCall",
    "TrainFeatures",
    "spec_from_json",
    "spec_to_json",
]

COORDINATOR_STEPS = frozenset(
    {"start", "round", "update", "validate", "finish", "abort", "predict"}
)
HOLDER_STEPS = frozenset(
    {"start", "partial", "products", "update", "validate", "finish", "abort", "predict"}
)


@dataclass(frozen=True)
class TrainFeatures:
    """One holder's part of a job: its entity column and the columns it trains on.

    A column is, by default, its per-entity mean. ``derived`` (the model-file
    form a bank writes, with filters as SQL text) and ``definitions`` (the same
    features checked against the catalog, as they travel) make each column a
    scoring feature instead — an aggregate over a filter, a transform, a
    default — so a jointly trained model can use the features a scorecard
    uses (trends, ``log1p`` of skewed amounts). The bank's client fills
    ``definitions`` from ``derived``; holders read ``definitions`` only.
    """

    holder: str
    table: str
    key: str
    columns: tuple[str, ...]
    intercept: bool = False
    definitions: tuple[FeatureSpec, ...] = ()
    derived: tuple[Feature, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class TrainCall:
    job_id: str
    step: str
    iteration: int = 0
    key_id: str = ""
    spec: str = ""
    features: tuple[TrainFeatures, ...] = ()
    ids: tuple[str, ...] = ()
    validation_ids: tuple[str, ...] = ()
    vouchers: tuple[str, ...] = ()
    ciphertexts: tuple[bytes, ...] = ()
    gradients: dict[str, list[float]] = field(default_factory=dict)
    best: int = -1


@dataclass
class TrainAnswer:
    products: dict[str, list[bytes]] = field(default_factory=dict)
    ciphertexts: list[bytes] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    receipts: list[str] = field(default_factory=list)
    statements: dict[str, str] = field(default_factory=dict)  # holder -> signed lineage


def spec_to_json(spec: TrainSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(text: str) -> TrainSpec:
    try:
        fields = json.loads(text)
        return TrainSpec(**{k: type(getattr(TrainSpec(), k))(v) for k, v in fields.items()})
    except (ValueError, TypeError, AttributeError) as exc:
        raise PlanError(f"not a training spec: {exc}") from exc
