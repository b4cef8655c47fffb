"""Feature scaling: the power-of-two bound ``2^e`` of each feature, from policy or whole tables.

The analyst encrypts ``w * 2^e`` and the holder multiplies by ``x / 2^e``, so the
CKKS noise of a weight is never multiplied by a large feature value (precision).
The bound must say nothing about the entities a request names — a bound taken
over them is a free profiler (one entity per request, a filter per city, and the
exponents give its city and its amount within a factor of two). So ``e`` is a
property of the feature's *shape* over the whole table, computed without the
feature's filter:

* a plain column, ``avg``, ``min``, ``max``: the largest ``|x|`` in the column;
* ``sum``: the largest per-key sum of ``|x|`` (bounds any filtered sum);
* ``count``: the largest number of rows per key;
* ``log1p``: a fixed ``2^10`` (every finite ``log1p`` of a double is below 710);
* and never below the feature's ``default`` (the analyst's own number).

What this publishes is one table-wide number per feature shape, rounded up to a
power of two, the same for every request (stated in docs/threat-model.md).

A node's policy may instead *declare* the bound (``score_bound`` for a row's
value — plain, ``avg``, ``min``, ``max`` — and ``score_sum_bound`` for one
entity's ``sum``; unseen.engine.config). A declared bound comes from no data at
all: it is used as it is, and feature values beyond it are clipped to it
(:func:`declared_bound` is what both the scaling and the clipping read), so the
flood's bound on the scaled features (``|x·2^-e| ≤ 1``) holds whatever the data.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from sqlglot import exp

from unseen.engine.data.source import TableSource
from unseen.engine.errors import EncodingOverflowError
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.model import FeatureSpec

__all__ = ["LOG1P_EXPONENT", "FeatureScaling", "declared_bound", "exponent_of"]

LOG1P_EXPONENT = 10


def exponent_of(bound: float) -> int:
    """The smallest ``e >= 0`` with ``bound <= 2^e``."""
    return 0 if not bound > 1 else math.ceil(math.log2(bound))


def declared_bound(feature: FeatureSpec, table: TableInfo) -> float | None:
    """The bound the node's policy declares for this feature's value, if any.

    ``count`` features and features of other aggregates without a declared
    bound fall back to the whole-table bound.
    """
    column = table.column(feature.column)
    if column is None or feature.aggregate == "count":
        return None
    if feature.aggregate == "sum":
        return column.score_sum_bound
    return column.score_bound


def _table_bound(feature: FeatureSpec, source: TableSource, table: TableInfo) -> float:
    """The whole-table bound of a feature's value, its filter ignored."""
    column = table.column(feature.column)
    key = table.column(feature.key)
    assert column is not None and key is not None  # check_features ran first
    value = exp.column(column.name, quoted=True)
    if feature.aggregate in ("sum", "count"):
        inner = (
            exp.Count(this=value)
            if feature.aggregate == "count"
            else exp.Sum(this=exp.Abs(this=exp.cast(value, "DOUBLE")))
        )
        per_key = (
            exp.select(exp.alias_(inner, "b", quoted=True))
            .from_(exp.table_(source.sql_name, quoted=True))
            .group_by(exp.column(key.name, quoted=True))
        )
        query = exp.select(exp.Max(this=exp.column("b", quoted=True))).from_(
            exp.alias_(exp.paren(per_key), "per_key")
        )
        found = source.run(query.sql(source.dialect))[0][0]
    else:
        found = source.max_abs(column.name)
    if found is None:
        return 0.0
    bound = float(found)
    if not math.isfinite(bound):
        # No power of two bounds it; the same refusal a score of that value gets.
        raise EncodingOverflowError(
            f"feature {table.name}.{column.name} ({feature.aggregate or 'value'}) is not finite "
            "for some entity"
        )
    return bound


class FeatureScaling:
    """A holder's feature exponents, computed once per feature shape and kept.

    The cache key leaves out the filter and the default on purpose: neither
    changes the table-wide bound (the default is applied afterwards).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bounds: dict[tuple[str, str, str, str], float] = {}

    def exponents(
        self,
        features: Sequence[FeatureSpec],
        sources: dict[str, TableSource],
        tables: dict[str, TableInfo],
    ) -> list[int]:
        """Per feature, ``e`` with every value the feature can take at most ``2^e``."""
        out = []
        for feature in features:
            if feature.transform == "log1p":
                out.append(max(LOG1P_EXPONENT, exponent_of(abs(feature.default))))
                continue
            shape = (
                feature.table.lower(),
                feature.column.lower(),
                feature.key.lower(),
                feature.aggregate,
            )
            with self._lock:
                bound = self._bounds.get(shape)
            if bound is None:
                bound = declared_bound(feature, tables[feature.table.lower()])
            if bound is None:
                name = feature.table.lower()
                bound = _table_bound(feature, sources[name], tables[name])
                with self._lock:
                    self._bounds[shape] = bound
            out.append(exponent_of(max(bound, abs(feature.default))))
        return out
