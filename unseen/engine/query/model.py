"""Linear scoring models: the model file, and what of it each party sees.

A model file is JSON (the design's contract, extended compatibly)::

    {"entity": "uscc",
     "features": [
        {"table": "registry", "column": "founded", "weight": -0.02, "default": 2010},
        {"table": "electricity", "column": "kwh", "weight": 0.4, "aggregate": "avg",
         "filter": "month >= '2023-07'", "transform": "log1p"}],
     "intercept": -1.5,
     "link": "logistic"}

``aggregate`` (sum, avg, count, min, max), ``filter`` (a SQL condition on the
feature's table), ``transform`` (log1p) and ``key`` (the entity column of
that table when it is not named like the model's ``entity``) are the
extensions. Holders receive :class:`FeatureSpec` — the feature without its
weight; the weight only ever travels encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unseen.engine.errors import ConfigError, PlanError, PolicyError
from unseen.engine.governance.identifiers import not_an_identifier
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.expr import Expr

__all__ = [
    "AGGREGATES",
    "LINKS",
    "TRANSFORMS",
    "Feature",
    "FeatureSpec",
    "Model",
    "load_model",
    "model_fingerprint",
    "parse_model",
    "read_entities",
]

AGGREGATES = ("", "sum", "avg", "count", "min", "max")
ADDITIVE = ("", "sum", "count")
TRANSFORMS = ("", "log1p")
LINKS = ("identity", "logistic")


@dataclass(frozen=True)
class FeatureSpec:
    """A feature as a holder computes it; carries no weight."""

    table: str
    column: str
    key: str
    aggregate: str = ""
    filter: Expr | None = None
    transform: str = ""
    default: float = 0.0


@dataclass(frozen=True)
class Feature:
    table: str
    column: str
    weight: float
    default: float = 0.0
    key: str | None = None
    aggregate: str = ""
    filter: str | None = None
    transform: str = ""


@dataclass(frozen=True)
class Model:
    entity: str
    features: tuple[Feature, ...]
    intercept: float = 0.0
    link: str = "identity"

    def key_of(self, feature: Feature) -> str:
        return feature.key or self.entity

    def apply_link(self, linear: float) -> float:
        if self.link == "logistic":
            # Numerically stable on both tails.
            if linear >= 0:
                return 1.0 / (1.0 + math.exp(-linear))
            z = math.exp(linear)
            return z / (1.0 + z)
        return linear


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"model {where} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(f"model {where} must be finite")
    return number


def _text(value: Any, where: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"model {where} must be a string")
    if choices is not None and value not in choices:
        allowed = ", ".join(c or '""' for c in choices)
        raise ConfigError(f"model {where} is {value!r}; expected one of {allowed}")
    return value


def parse_model(data: Any) -> Model:
    """Validate a decoded model file; errors name the offending field."""
    if not isinstance(data, dict):
        raise ConfigError("model file must hold a JSON object")
    unknown = set(data) - {"entity", "features", "intercept", "link"}
    if unknown:
        raise ConfigError(f"model has unknown field {sorted(unknown)[0]!r}")
    if "entity" not in data or "features" not in data:
        raise ConfigError("model needs 'entity' and 'features'")
    entity = _text(data["entity"], "entity")
    raw = data["features"]
    if not isinstance(raw, list) or not raw:
        raise ConfigError("model features must be a non-empty list")
    features = []
    allowed = {"table", "column", "weight", "default", "key", "aggregate", "filter", "transform"}
    for i, item in enumerate(raw):
        where = f"features[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"model {where} must be an object")
        extra = set(item) - allowed
        if extra:
            raise ConfigError(f"model {where} has unknown field {sorted(extra)[0]!r}")
        for required in ("table", "column", "weight"):
            if required not in item:
                raise ConfigError(f"model {where} needs {required!r}")
        features.append(
            Feature(
                table=_text(item["table"], f"{where}.table"),
                column=_text(item["column"], f"{where}.column"),
                weight=_number(item["weight"], f"{where}.weight"),
                default=_number(item.get("default", 0), f"{where}.default"),
                key=_text(item["key"], f"{where}.key") if "key" in item else None,
                aggregate=_text(item.get("aggregate", ""), f"{where}.aggregate", AGGREGATES),
                filter=_text(item["filter"], f"{where}.filter") if "filter" in item else None,
                transform=_text(item.get("transform", ""), f"{where}.transform", TRANSFORMS),
            )
        )
    return Model(
        entity=entity,
        features=tuple(features),
        intercept=_number(data.get("intercept", 0.0), "intercept"),
        link=_text(data.get("link", "identity"), "link", LINKS),
    )


def load_model(path: Path) -> Model:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read model file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"model file {path} is not valid JSON: {exc.msg} (line {exc.lineno})"
        ) from exc
    return parse_model(data)


def check_feature(
    feature: Feature, key: str, catalog: Catalog
) -> tuple[TableInfo, ColumnInfo, ColumnInfo]:
    """Check one feature against the merged catalog; returns its table, column and key column.

    Features on a table several holders host (horizontally) are computed by
    each and added by the coordinator, so only additive features work there:
    SUM or COUNT (or a plain column whose entities live at one holder), with
    default 0 and no transform.
    """
    table = catalog.table(feature.table)
    if table is None:
        raise PlanError(
            catalog.conflict(feature.table) or f"no holder serves a table {feature.table}"
        )
    column = table.column(feature.column)
    if column is None:
        raise PlanError(f"table {table.name} has no column {feature.column}")
    key_column = table.column(key)
    if key_column is None:
        raise PlanError(f"table {table.name} has no entity column {key}")
    if not key_column.allows("entity"):
        raise PolicyError(not_an_identifier(table.name, key_column.name))
    if feature.aggregate != "count" and not column.type.numeric:
        raise PlanError(
            f"feature {table.name}.{column.name} is {column.type}, not a number; "
            "only COUNT applies to it"
        )
    # Counting rows per entity is an aggregate of the column; values feed scores.
    use = "aggregate" if feature.aggregate == "count" else "score"
    if not column.allows(use):
        raise PolicyError(f"column {table.name}.{column.name} may not feed scores")
    hosts = len(table.holders) or 1
    if hosts > 1 and (
        feature.aggregate not in ADDITIVE or feature.default != 0 or feature.transform
    ):
        raise PlanError(
            f"feature {table.name}.{column.name}: {hosts} holders host {table.name}, so the "
            "feature must be additive across them (a sum, a count or a plain column, with "
            "default 0 and no transform)"
        )
    return table, column, key_column


def model_fingerprint(salt: bytes, key_id: str, model: Model, weights: str = "") -> str:
    """A keyed fingerprint naming a model without revealing it (HMAC-SHA256).

    The same model and key always get the same id, so weights are registered
    once; without the analyst's salt nobody can test a guess of the weights.
    ``weights`` names the ciphertexts when they are not the analyst's own (an
    issuer's approved weights), so they register under an id of their own.
    """
    extra = {"weights": weights} if weights else {}
    canonical = json.dumps(
        {
            **extra,
            "key_id": key_id,
            "entity": model.entity,
            "features": [f.__dict__ for f in model.features],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hmac.new(salt, canonical, hashlib.sha256).hexdigest()


def read_entities(path: Path, entity: str) -> list[str]:
    """Entity ids from a file: one per line, or a CSV whose header names ``entity``.

    A first line equal to the entity column's name is a header; a first line
    with commas is a CSV header that must name the column.
    """
    import csv

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read entities file {path}: {exc.strerror}") from exc
    lines = text.splitlines()
    if not lines:
        raise ConfigError(f"entities file {path} is empty")
    first = lines[0].strip()
    if "," in first or "\t" in first:
        dialect = csv.excel_tab if "\t" in first and "," not in first else csv.excel
        reader = csv.reader(lines, dialect)
        header = [h.strip() for h in next(reader)]
        if entity not in header:
            raise ConfigError(f"entities file {path}: the CSV header has no column {entity!r}")
        column = header.index(entity)
        return [row[column].strip() for row in reader if len(row) > column and row[column].strip()]
    ids = [line.strip() for line in lines if line.strip()]
    return ids[1:] if ids and ids[0] == entity else ids
