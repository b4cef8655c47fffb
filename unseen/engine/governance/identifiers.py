"""Which columns may key entities in quick-start mode: identifiers, not dimensions.

A score's per-entity aggregate keyed by a dimension (a city, an industry) is a
group aggregate that skips the minimum group size — a 3-row city sum that an
aggregate query would suppress. So without a config file a column keys
entities only when its values name subjects. The rule (documented in
docs/threat-model.md): a column of text or integers that is

* nearly unique: at most ``FEW_ROWS`` (4) rows per value on average (a
  registry: one row per company; a small table of a few transfers per
  account), or
* high-cardinality and thin: more distinct values than a published domain may
  have (``max_domain``) and at most ``MAX_ROWS_PER_ENTITY`` (64) rows per value
  on average (a fact table: monthly readings per company).

Anything else (a published, groupable dimension; a column with many rows per
value) is refused as a key; a config file declares keys explicitly with the
``entity`` use.
"""

from __future__ import annotations

from sqlglot import exp

from unseen.engine.data.source import TableSource
from unseen.engine.query.types import SqlType

__all__ = ["FEW_ROWS", "MAX_ROWS_PER_ENTITY", "is_identifier", "not_an_identifier"]

FEW_ROWS = 4
MAX_ROWS_PER_ENTITY = 64
_KINDS = ("VARCHAR", "INTEGER")


def is_identifier(source: TableSource, column: str, sql_type: SqlType, max_domain: int) -> bool:
    """Whether ``column`` of ``source`` looks like an identifier by the rule above."""
    if sql_type.kind not in _KINDS:
        return False
    col = exp.column(column, quoted=True)
    query = exp.select(exp.Count(this=exp.Distinct(expressions=[col])), exp.Count(this=col)).from_(
        exp.table_(source.sql_name, quoted=True)
    )
    distinct, rows = (int(v or 0) for v in source.run(query.sql(source.dialect))[0])
    if distinct == 0:
        return False
    if rows <= FEW_ROWS * distinct:
        return True
    return distinct > max_domain and rows <= MAX_ROWS_PER_ENTITY * distinct


def not_an_identifier(table: str, column: str) -> str:
    """The refusal for a non-identifier key, pointing at the query that fits."""
    return (
        f"column {table}.{column} may not key entities (the holder's policy does not "
        f"count it as an identifier); for per-{column} figures use an aggregate query "
        f"with GROUP BY {column}"
    )
