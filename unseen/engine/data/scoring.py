"""A holder's part of the encrypted linear score.

For the entities of a request, in request order, the holder computes its
features (per-entity aggregates pushed down as SQL to each table's engine),
clips values to the bounds its policy declares (unseen.engine.data.scaling),
substitutes defaults for entities it lacks, scales feature ``j`` by
``2^-e_j`` (the analyst encrypted ``w_j * 2^e_j``), and for every block of
``slots`` entities returns one ciphertext ``sum_j Enc(w_j 2^e_j) * x_j 2^-e_j``,
rescaled and re-randomised. It never sees a weight, and since every holder
answers for every requested entity, no holder learns which entities the
others have.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlglot import exp

from unseen.engine.crypto.partials import PartialScorer
from unseen.engine.data.pushdown import _Builder
from unseen.engine.data.scaling import declared_bound
from unseen.engine.data.source import TableSource
from unseen.engine.errors import EncodingOverflowError, PlanError, PolicyError, SourceError
from unseen.engine.governance.identifiers import not_an_identifier
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.model import AGGREGATES, TRANSFORMS, FeatureSpec
from unseen.engine.query.plan import expr_type

__all__ = [
    "HolderModel",
    "check_batch",
    "check_features",
    "feature_blocks",
    "partial_score",
]

# |x * 2^-e| beyond this is refused: CKKS at scale 2^50 carries about 2^59 after
# a product, and precision is already spent far earlier.
_MAX_SCALED = 1 << 20

_AGG = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}
# One table's open query: its stream, its (index, feature) members, the output
# column of each member and the output columns of "rows per entity" counts.
_Cursor = tuple[Any, list[tuple[int, FeatureSpec]], list[int], list[int]]


@dataclass(frozen=True)
class HolderModel:
    """A registered model as one holder keeps it: its features and encrypted weights."""

    model_id: str
    key_id: str
    features: tuple[FeatureSpec, ...]
    exponents: tuple[int, ...]
    weights: tuple[bytes, ...] = field(repr=False)
    # Per feature, what a voucher's model approval must name (unseen.engine.governance.approval).
    digests: tuple[str, ...] = ()


def check_features(features: Sequence[FeatureSpec], tables: dict[str, TableInfo]) -> None:
    """Refuse features this holder's catalog and policy do not allow."""
    for feature in features:
        table = tables.get(feature.table.lower())
        if table is None:
            raise PlanError(f"this holder serves no table {feature.table}")
        key = table.column(feature.key)
        column = table.column(feature.column)
        if key is None or column is None:
            missing = feature.key if key is None else feature.column
            raise PlanError(f"table {table.name} has no column {missing}")
        if not key.allows("entity"):
            raise PolicyError(not_an_identifier(table.name, key.name))
        use = "aggregate" if feature.aggregate == "count" else "score"
        if not column.allows(use):
            raise PolicyError(f"column {table.name}.{column.name} may not feed scores")
        if feature.aggregate != "count" and not column.type.numeric:
            raise PlanError(f"feature {table.name}.{column.name} is not numeric")
        if feature.aggregate not in AGGREGATES:
            raise PlanError(f"unknown feature aggregate {feature.aggregate!r}")
        if feature.transform not in TRANSFORMS:
            raise PlanError(f"unknown feature transform {feature.transform!r}")
        if feature.filter is not None:
            expr_type(feature.filter, table, "filter")


def check_batch(
    features: Sequence[FeatureSpec], tables: dict[str, TableInfo], ids: Sequence[str]
) -> None:
    """Refuse a score naming fewer distinct entities than a feature's table requires.

    Repeating one id does not count; made-up ids do (they cannot be told apart
    from entities this holder lacks without revealing which it has), so a
    voucher's entity scope is what stops padding.
    """
    distinct = len(set(ids))
    for feature in features:
        table = tables[feature.table.lower()]
        if distinct < table.min_score_batch:
            raise PolicyError(
                f"table {table.name} scores at least {table.min_score_batch} distinct entities "
                f"per request; this one names {distinct}"
            )


def _subquery(
    members: Sequence[tuple[int, FeatureSpec]], source: TableSource, builder: _Builder
) -> exp.Select:
    """Per-entity aggregates of features sharing one key and filter: ``k, f<i>..., [n]``."""
    key_col = builder.column(members[0][1].key)
    items: list[exp.Expr] = [exp.alias_(key_col.copy(), "k", quoted=True)]
    for index, feature in members:
        value = builder.column(feature.column)
        if feature.aggregate == "count":
            agg: exp.Expr = exp.Count(this=value)
        elif feature.aggregate:
            agg = _AGG[feature.aggregate](this=exp.cast(value, "DOUBLE"))
        else:
            agg = exp.Min(this=exp.cast(value, "DOUBLE"))
        items.append(exp.alias_(agg, f"f{index}", quoted=True))
    if any(not f.aggregate for _, f in members):
        # A plain column must have one row per entity; n > 1 is refused later.
        items.append(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True))
    sub = exp.select(*items).from_(exp.table_(source.sql_name, quoted=True))
    condition = members[0][1].filter
    if condition is not None:
        sub = sub.where(builder.expr(condition))
    return sub.group_by(key_col.copy())


def _feature_sql(
    features: Sequence[tuple[int, FeatureSpec]], table: TableInfo, source: TableSource
) -> tuple[str, dict[str, Any], list[int], list[int]]:
    """One query over one table: per requested entity (in order), each feature's value.

    Returns SQL, parameters, the output position of each feature and of each
    "rows per entity" count used to refuse ambiguous plain-column features.
    """
    builder = _Builder(table, source.dialect)
    groups: dict[tuple[str, Any], list[tuple[int, FeatureSpec]]] = {}
    for index, feature in features:
        groups.setdefault((feature.key.lower(), feature.filter), []).append((index, feature))
    selects: list[exp.Expression] = []
    positions: dict[int, int] = {}
    plain_counts: list[int] = []
    query = exp.select().from_(exp.table_("req", quoted=True))
    for s, members in enumerate(groups.values()):
        alias = f"s{s}"
        sub = _subquery(members, source, builder)
        integer_key = _integer_key(table, members[0][1].key)
        req_id = exp.column("id_int" if integer_key else "id", table="req", quoted=True)
        query = query.join(
            exp.alias_(exp.paren(sub), alias),
            on=exp.EQ(this=req_id, expression=exp.column("k", table=alias, quoted=True)),
            join_type="LEFT",
        )
        for index, _ in members:
            positions[index] = len(selects)
            selects.append(exp.column(f"f{index}", table=alias, quoted=True))
        if any(not f.aggregate for _, f in members):
            plain_counts.append(len(selects))
            selects.append(exp.column("n", table=alias, quoted=True))
    query = query.select(*selects).order_by(exp.column("pos", table="req", quoted=True))
    order = [positions[i] for i, _ in features]
    return query.sql(source.dialect), builder.params, order, plain_counts


def _integer_key(table: TableInfo, key: str) -> bool:
    """Whether ``key`` is an INTEGER column, joined on the ids parsed as integers."""
    column = table.column(key)
    return column is not None and column.type.kind == "INTEGER"


def _request_relation(ids: Sequence[str], integer_key: bool) -> dict[str, np.ndarray]:
    """Make the request's entity ids available to the engine as table ``req``.

    ``id_int`` (the ids parsed as integers, for INTEGER key columns) is only
    computed when a key needs it: parsing a million alphanumeric codes that
    all fail costs most of a second.
    """
    ints = [_as_int(i) for i in ids] if integer_key else [None] * len(ids)
    return {
        "pos": np.arange(len(ids), dtype=np.int64),
        "id": np.array(ids, dtype=object),
        "id_int": np.array(ints, dtype=object),
    }


def _as_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if -(2**63) <= value < 2**63 else None


def _transform(values: np.ndarray, transform: str, name: str) -> np.ndarray:
    if transform == "log1p":
        if np.any(values[~np.isnan(values)] <= -1):
            raise SourceError(f"feature {name}: log1p of a value at or below -1")
        return np.log1p(values)
    return values


def feature_blocks(
    features: Sequence[FeatureSpec],
    sources: dict[str, TableSource],
    tables: dict[str, TableInfo],
    ids: Sequence[str],
    block: int,
) -> Iterator[np.ndarray]:
    """Yield the feature matrix (entities x features) in blocks, defaults applied.

    One query per table, streamed in request order, so memory stays
    proportional to one block however many entities are scored. The request
    relation is built once and shared by every table's query.
    """
    by_table: dict[str, list[tuple[int, FeatureSpec]]] = {}
    for index, feature in enumerate(features):
        by_table.setdefault(feature.table.lower(), []).append((index, feature))
    req = _request_relation(
        ids, any(_integer_key(tables[f.table.lower()], f.key) for f in features)
    )
    cursors: list[_Cursor] = []
    try:
        for name, members in by_table.items():
            source, table = sources[name], tables[name]
            sql, params, order, plain = _feature_sql(members, table, source)
            cursors.append((source.stream(sql, params, req), members, order, plain))
        limits = [declared_bound(f, tables[f.table.lower()]) for f in features]
        yield from _blocks(cursors, features, limits, len(ids), block)
    finally:
        for stream, *_ in cursors:
            stream.close()


def _blocks(
    cursors: list[_Cursor],
    features: Sequence[FeatureSpec],
    limits: Sequence[float | None],
    total: int,
    block: int,
) -> Iterator[np.ndarray]:
    defaults = np.array([f.default for f in features], dtype=np.float64)
    done = 0
    while done < total:
        take = min(block, total - done)
        matrix = np.empty((take, len(features)), dtype=np.float64)
        for stream, members, order, plain in cursors:
            rows = np.array(stream.fetch(take), dtype=np.float64).reshape(take, -1)
            if plain and np.nanmax(rows[:, plain], initial=0) > 1:
                table = members[0][1].table
                raise SourceError(
                    f"table {table} has several rows for one entity; give the feature an aggregate"
                )
            for (index, feature), column in zip(members, order, strict=True):
                values = rows[:, column]
                limit = limits[index]
                if limit is not None:
                    # A declared bound is a contract: values beyond it are clipped to it.
                    values = np.clip(values, -limit, limit)
                values = _transform(values, feature.transform, feature.column)
                matrix[:, index] = values
        if np.isinf(matrix).any():
            column = int(np.argwhere(np.isinf(matrix))[0][1])
            feature = features[column]
            raise EncodingOverflowError(
                f"feature {feature.table}.{feature.column} has an infinite value for some entity"
            )
        missing = np.isnan(matrix)
        matrix[missing] = np.broadcast_to(defaults, matrix.shape)[missing]
        done += take
        yield matrix


def partial_score(
    scorer: PartialScorer,
    block: np.ndarray,
    exponents: Sequence[int],
    slots: int,
) -> bytes:
    """One block's partial score ciphertext: sum_j Enc(w_j 2^e_j) * x_j 2^-e_j.

    The block is zero-padded to ``slots`` rows: slots past the last entity
    must decrypt to zero whatever the weights are.
    """
    rows = block.shape[0]
    scaled = block * np.exp2(-np.asarray(exponents, dtype=np.float64))
    if scaled.size and float(np.max(np.abs(scaled))) > _MAX_SCALED:
        # The model was registered with bounds from other entities: a value far
        # beyond 2^e would lose precision, and beyond this would not encode.
        worst = int(np.argmax(np.max(np.abs(scaled), axis=0)))
        raise EncodingOverflowError(
            f"feature {worst + 1} of the model exceeds 2^{exponents[worst]} by more than "
            f"2^{_MAX_SCALED.bit_length() - 1} for some entity; register the model again"
        )
    padded = np.zeros((slots, scaled.shape[1]))
    padded[:rows] = scaled
    return scorer.partial(padded, slots)
