"""Catalogs: what each holder publishes about its tables, and their merge.

A holder's catalog names its tables, their columns and types, the uses its
policy permits per column (``filter``, ``group``, ``aggregate``, ``score``,
``entity``), the minimum group size ``k`` and, for groupable columns whose
domain it publishes, that domain. The coordinator merges the holders'
catalogs into one view of the federation; a table hosted by several holders
must have one schema, and a merged column permits only what every host permits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from unseen.engine.errors import PlanError
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.masks import Participant
from unseen.engine.privacy.suppression import DEFAULT_P
from unseen.engine.query.expr import LiteralValue
from unseen.engine.query.types import SqlType, widen

__all__ = [
    "USES",
    "Catalog",
    "CatalogConflict",
    "ColumnInfo",
    "TableInfo",
    "coarse_bounds",
    "merge",
    "merge_bounds",
    "sort_domain",
    "strictest_grade",
]

USES = ("filter", "group", "aggregate", "score", "entity")


class CatalogConflict(PlanError):
    """Holders disagree about a table's schema."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: SqlType
    uses: frozenset[str] = frozenset()
    domain: tuple[LiteralValue, ...] | None = None
    # A date column's published range (coarse: whole years), from which the
    # domains of EXTRACT(year ...) and date_trunc(...) group keys are derived.
    bounds: tuple[LiteralValue, LiteralValue] | None = None
    # The column's classification grade from the table's asset registration.
    grade: str | None = None
    # A tighter p for measures reading this column (unseen.engine.privacy.suppression); the
    # holder's own.
    dominance_p: float | None = None
    # Policy-declared bounds of score features (unseen.engine.data.scaling); holder-local.
    score_bound: float | None = None
    score_sum_bound: float | None = None

    def allows(self, use: str) -> bool:
        return use in self.uses


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[ColumnInfo, ...]
    min_group_size: int = 5
    holders: tuple[str, ...] = ()
    # Holder-local policy, not published: distinct entities a score must name.
    min_score_batch: int = 1
    # Ids of the asset registrations behind this table (one per registered host).
    assets: tuple[str, ...] = ()
    # Served with differential privacy (unseen.engine.privacy.dp_policy); None: exact mode.
    dp: DpPolicy | None = None
    # The p of the p% dominance rule (unseen.engine.privacy.suppression); a holder's own, not
    # published.
    dominance_p: float = DEFAULT_P
    _index: dict[str, ColumnInfo] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for col in self.columns:
            self._index.setdefault(col.name.lower(), col)

    def column(self, name: str) -> ColumnInfo | None:
        """The column named ``name``, matched case-insensitively as DuckDB does."""
        return self._index.get(name.lower())


@dataclass(frozen=True)
class Catalog:
    holder: str
    tables: tuple[TableInfo, ...]
    vouchers_required: bool = False
    # Tables whose hosts disagree, with the reason; queries on them are refused.
    conflicts: tuple[tuple[str, str], ...] = ()
    # The holder's mask key (unseen.engine.privacy.masks); None in a merged catalog.
    mask_key: Participant | None = None
    # Hierarchy (issue 14.1): a city coordinator serving as a holder relays its
    # leaf holders' mask keys instead of a key of its own; masks are pairwise
    # between leaves, so no coordinator holds a mask key (unseen.nodes.city).
    leaves: tuple[Participant, ...] = ()

    @property
    def mask_participants(self) -> tuple[Participant, ...]:
        """The mask keys taking part for this catalog's publisher: its own, or its leaves'."""
        if self.leaves:
            return self.leaves
        return () if self.mask_key is None else (self.mask_key,)

    def table(self, name: str) -> TableInfo | None:
        for table in self.tables:
            if table.name.lower() == name.lower():
                return table
        return None

    def conflict(self, name: str) -> str | None:
        for table, reason in self.conflicts:
            if table.lower() == name.lower():
                return reason
        return None


def _domain_key(value: LiteralValue) -> tuple[int, str, object]:
    # NULL sorts last, as DuckDB's default NULLS LAST; mixed kinds by kind name.
    if value is None:
        return (1, "", 0)
    kind = (
        "number"
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else (type(value).__name__)
    )
    return (0, kind, value)


def sort_domain(values: Iterable[LiteralValue]) -> tuple[LiteralValue, ...]:
    """Distinct values in a stable, engine-like order (NULL last)."""
    unique: dict[object, LiteralValue] = {}
    for value in values:
        unique.setdefault((type(value).__name__, value), value)
    return tuple(sorted(unique.values(), key=_domain_key))


def coarse_bounds(low: LiteralValue, high: LiteralValue) -> tuple[dt.date, dt.date] | None:
    """A date column's range widened to whole years: says little, and is all grouping needs."""
    if not isinstance(low, dt.date) or not isinstance(high, dt.date):
        return None
    return dt.date(low.year, 1, 1), dt.date(high.year, 12, 31)


def merge_bounds(
    bounds: Sequence[tuple[LiteralValue, LiteralValue] | None],
) -> tuple[LiteralValue, LiteralValue] | None:
    """The range covering every host's; None unless every host publishes one."""
    if not bounds or any(b is None for b in bounds):
        return None
    lows = [b[0] for b in bounds if b is not None]
    highs = [b[1] for b in bounds if b is not None]
    try:
        return min(lows), max(highs)  # type: ignore[type-var]
    except TypeError:
        return None


def _merge_table(
    name: str,
    hosted: Sequence[tuple[str, TableInfo]],
    behind: Mapping[str, tuple[str, ...]] | None = None,
) -> TableInfo:
    """One table from its hosts' views; ``behind`` maps a city coordinator to its leaves."""
    behind = behind or {}
    first_holder, first = hosted[0]
    names = [c.name for c in first.columns]
    merged: list[ColumnInfo] = []
    for col in first.columns:
        kind: SqlType | None = col.type
        uses = set(col.uses)
        domains: list[tuple[LiteralValue, ...] | None] = [col.domain]
        bounds: list[tuple[LiteralValue, LiteralValue] | None] = [col.bounds]
        for holder, table in hosted[1:]:
            other = table.column(col.name)
            if other is None:
                raise CatalogConflict(
                    f"table {name}: holder {holder} has no column {col.name} "
                    f"(holder {first_holder} has it)"
                )
            assert kind is not None
            kind = widen(kind, other.type)
            if kind is None:
                raise CatalogConflict(
                    f"table {name}: column {col.name} is {col.type} at holder {first_holder} "
                    f"but {other.type} at holder {holder}"
                )
            uses &= set(other.uses)
            domains.append(other.domain)
            bounds.append(other.bounds)
        assert kind is not None
        domain = None
        if all(d is not None for d in domains):
            domain = sort_domain(v for d in domains if d is not None for v in d)
        merged.append(
            ColumnInfo(
                col.name,
                kind,
                frozenset(uses),
                domain,
                merge_bounds(bounds),
                strictest_grade(t.column(col.name) for _, t in hosted),
            )
        )
    for holder, table in hosted[1:]:
        extra = [c.name for c in table.columns if c.name.lower() not in {n.lower() for n in names}]
        if extra:
            raise CatalogConflict(
                f"table {name}: holder {holder} has column {extra[0]} that holder "
                f"{first_holder} lacks"
            )
    # A city coordinator's table lists the leaf holders behind it: every leaf adds
    # its own noise share, so the count that matters is of leaves, not of catalogs.
    holders = tuple(leaf for h, _ in hosted for leaf in behind.get(h, (h,)))
    leaves = len(holders)
    if first.dp is not None and first.dp.honest_holders > leaves:
        raise CatalogConflict(
            f"table {name}: its dp policy assumes {first.dp.honest_holders} honest holders but "
            f"{leaves} serve it, so the noise would fall short"
        )
    if any(t.dp != first.dp for _, t in hosted[1:]):
        raise CatalogConflict(f"table {name}: its holders publish different dp policies")
    return TableInfo(
        name=first.name,
        dp=first.dp,
        columns=tuple(merged),
        min_group_size=max(t.min_group_size for _, t in hosted),
        holders=holders,
        assets=tuple(sorted({a for _, t in hosted for a in t.assets})),
    )


_GRADE_ORDER = ("public", "internal", "sensitive", "core")


def strictest_grade(columns: Iterable[ColumnInfo | None]) -> str | None:
    """The strictest grade the hosts give a column (None when no host grades it)."""
    grades = [c.grade for c in columns if c is not None and c.grade in _GRADE_ORDER]
    return max(grades, key=_GRADE_ORDER.index) if grades else None


def merge(catalogs: Sequence[Catalog]) -> Catalog:
    """Merge holders' catalogs.

    A table whose hosts disagree is left out and its reason kept in
    ``conflicts``, so one misconfigured shard does not take the other tables
    of the federation down with it.
    """
    by_table: dict[str, list[tuple[str, TableInfo]]] = {}
    behind: dict[tuple[str, str], tuple[str, ...]] = {}
    for catalog in catalogs:
        for table in catalog.tables:
            by_table.setdefault(table.name.lower(), []).append((catalog.holder, table))
            if catalog.leaves and table.holders:  # a city: the leaves hosting the table
                behind[table.name.lower(), catalog.holder] = table.holders
    tables: list[TableInfo] = []
    conflicts: list[tuple[str, str]] = []
    for key, hosted in by_table.items():
        leaves = {h: behind[key, h] for h, _ in hosted if (key, h) in behind}
        try:
            tables.append(_merge_table(hosted[0][1].name, hosted, leaves))
        except CatalogConflict as exc:
            conflicts.append((hosted[0][1].name, str(exc)))
    # A city coordinator's own conflicts stay conflicts above it: leaving the
    # table to the other cities would answer without that city's rows.
    for catalog in catalogs:
        for table_name, reason in catalog.conflicts:
            if all(t.lower() != table_name.lower() for t, _ in conflicts):
                conflicts.append((table_name, f"at {catalog.holder}: {reason}"))
    refused = {t.lower() for t, _ in conflicts}
    return Catalog(
        holder="",
        tables=tuple(
            sorted((t for t in tables if t.name.lower() not in refused), key=lambda t: t.name)
        ),
        vouchers_required=any(c.vouchers_required for c in catalogs),
        conflicts=tuple(conflicts),
    )
