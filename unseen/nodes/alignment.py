"""A holder's side of entity alignment: its ids of one entity column, answered by PSI.

The holder reads the distinct values of an ``entity`` column (policy decides
which columns may be join keys) and answers the bank's blinded ids with
:func:`unseen.engine.training.psi.psi_answer`. The request is governed like any use of data:
checked against the vouchers presented (``entity`` on that column), charged,
and ledgered with the digest of the blinded request (never an id).
"""

from __future__ import annotations

import logging

from unseen.engine.data.source import TableSource
from unseen.engine.errors import PlanError
from unseen.engine.governance.access import Governance, digest
from unseen.engine.governance.voucher import AccessRequest
from unseen.engine.query.catalog import TableInfo
from unseen.engine.training.psi import MAX_PSI_IDS, AlignAsk, PsiAnswer, psi_answer

__all__ = ["IDENTIFIER_KINDS", "align_request", "answer_alignment", "entity_column_ids"]

log = logging.getLogger(__name__)

# Entity ids are text or integers (unseen.engine.governance.voucher.entity_ids says the same).
IDENTIFIER_KINDS = frozenset({"VARCHAR", "INTEGER"})


def align_request(holder: str, ask: AlignAsk, subject: str | None) -> AccessRequest:
    """The access an alignment makes: the entity column, read as a join key."""
    return AccessRequest(
        analyst=ask.key_id,
        holder=holder,
        kind="align",
        plan_digest=digest(f"{ask.table}.{ask.column}\n".encode() + ask.request),
        reads={ask.table: {ask.column: frozenset({"entity"})}},
        subject=subject,
    )


def entity_column_ids(source: TableSource, table: TableInfo, column: str) -> list[str]:
    """The distinct non-null values of an entity column, as text."""
    info = table.column(column)
    if info is None:
        raise PlanError(f"table {table.name} has no column {column}")
    if not info.allows("entity"):
        raise PlanError(f"column {table.name}.{info.name} may not be used as an entity key")
    if info.type.kind not in IDENTIFIER_KINDS:
        # A measure (a float, a date) is no identifier: aligning on it would let
        # the analyst test which exact values the holder has.
        raise PlanError(f"column {table.name}.{info.name} is not an identifier (text or integer)")
    quoted = '"' + info.name.replace('"', '""') + '"'
    name = '"' + source.sql_name.replace('"', '""') + '"'
    rows = source.run(
        f"SELECT DISTINCT CAST({quoted} AS TEXT) FROM {name} "  # noqa: S608 - names from the catalog
        f"WHERE {quoted} IS NOT NULL LIMIT {MAX_PSI_IDS + 1}"
    )
    if len(rows) > MAX_PSI_IDS:
        raise PlanError(f"{table.name}.{info.name} holds more than {MAX_PSI_IDS} ids to align")
    return [str(r[0]) for r in rows]


def answer_alignment(
    gov: Governance,
    source: TableSource,
    table: TableInfo,
    ask: AlignAsk,
    subject: str | None = None,
) -> tuple[PsiAnswer, list[str]]:
    """Check, answer and ledger one alignment request; (answer, receipts)."""
    request = align_request(gov.holder, ask, subject)
    answer, receipts = gov.run(
        request,
        ask.vouchers,
        lambda: psi_answer(entity_column_ids(source, table, ask.column), ask.request),
        lambda a: [a.setup, a.response],
    )
    log.info("aligned %s.%s: %d ids held", table.name, ask.column, answer.holder_size)
    return answer, receipts
