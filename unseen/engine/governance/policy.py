"""Column policies: what each column of a served table may be used for.

Quick-start mode (``--table`` without a config file) derives a permissive
policy from the data, as the design's contract states: every column may be
used to filter and to aggregate (COUNT of any column, SUM and the moments of
numeric ones); identifier-like columns (``unseen.engine.governance.identifiers``) key entities;
numeric columns may feed scores; columns with few distinct values (at most
``max_domain`` of them, and not floating point) are groupable with their
domain published; other non-float columns are groupable only with a domain
the query supplies (``WHERE c IN (...)``). ``k`` defaults to 5. A config
file (governance) narrows all of this.
"""

from __future__ import annotations

from unseen.engine.data.source import TableSource
from unseen.engine.governance.identifiers import is_identifier
from unseen.engine.query.catalog import ColumnInfo, TableInfo, coarse_bounds, sort_domain
from unseen.engine.query.types import normalize_value

__all__ = ["DEFAULT_K", "DEFAULT_MAX_DOMAIN", "DEFAULT_MIN_SCORE_BATCH", "quickstart_table"]

DEFAULT_K = 5
DEFAULT_MAX_DOMAIN = 100
# A bank scoring one loan applicant is a legitimate use, so one entity is enough
# unless the table's config asks for more (docs/threat-model.md).
DEFAULT_MIN_SCORE_BATCH = 1


def quickstart_table(
    source: TableSource, k: int = DEFAULT_K, max_domain: int = DEFAULT_MAX_DOMAIN
) -> TableInfo:
    """The permissive quick-start catalog entry for one served table."""
    columns = []
    for name, sql_type in source.schema():
        uses = {"filter", "aggregate"}
        domain = None
        if sql_type.kind == "OTHER":
            uses = set()
        else:
            if sql_type.numeric:
                uses.add("score")
            if is_identifier(source, name, sql_type, max_domain):
                uses.add("entity")
            if sql_type.kind != "FLOAT":
                uses.add("group")
                values = source.distinct_values(name, max_domain)
                if values is not None:
                    domain = sort_domain(normalize_value(v, sql_type) for v in values)
        bounds = None
        if sql_type.kind in ("DATE", "TIMESTAMP") and "filter" in uses:
            low, high = source.min_max(name)
            bounds = coarse_bounds(normalize_value(low, sql_type), normalize_value(high, sql_type))
        columns.append(ColumnInfo(name, sql_type, frozenset(uses), domain, bounds))
    return TableInfo(source.name, tuple(columns), min_group_size=k)
