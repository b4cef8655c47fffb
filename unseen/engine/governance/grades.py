"""Classification grades: the one table mapping a column's grade to the uses it allows.

A registered asset grades each column in the manner of the national data
classification and grading rules: ``public``, ``internal``, ``sensitive``,
``core``. The grade is a *floor* under the holder's own config: the uses a
column finally has are the config's uses intersected with the grade's
(:func:`clamp_uses`), and the minimum group size never drops below the
grade's (:func:`clamp_k`). A holder also checks every request against the
grades (:func:`check_grades`) so that a refusal names the grade.

===========  ===========================================================
grade        what the column may be used for
===========  ===========================================================
public       any use the config gives it
internal     any use the config gives it; aggregates keep k >= 5 (and
             dominance, where the holder runs it)
sensitive    filter and entity key only; aggregate only in dp mode; score
             only with an approved model
core         nothing: never leaves the holder, not even encrypted
===========  ===========================================================

dp mode and approved models are not in this branch: until they land,
``sensitive`` refuses aggregates and scores with a reason that says what
would admit them (see :func:`check_grades`'s ``dp`` and ``approved_model``).
"""

from __future__ import annotations

from collections.abc import Mapping

from unseen.engine.errors import PolicyError
from unseen.engine.governance.policy import DEFAULT_K
from unseen.engine.governance.voucher import Scope
from unseen.engine.query.catalog import USES

__all__ = ["GRADES", "check_grades", "clamp_k", "clamp_uses", "grade_uses"]

GRADES = ("public", "internal", "sensitive", "core")

_ALL = frozenset(USES)
# The one table (docs/governance.md repeats it). Uses outside a grade's set may
# still be admitted by a condition: see _CONDITIONAL.
_USES: Mapping[str, frozenset[str]] = {
    "public": _ALL,
    "internal": _ALL,
    "sensitive": frozenset({"filter", "entity"}),
    "core": frozenset(),
}
_MIN_K: Mapping[str, int] = {"public": 1, "internal": DEFAULT_K, "sensitive": DEFAULT_K, "core": 0}
# (grade, use) -> the condition that admits it and the words a refusal uses.
_CONDITIONAL: Mapping[tuple[str, str], tuple[str, str]] = {
    ("sensitive", "aggregate"): ("dp", "aggregates only in dp mode"),
    ("sensitive", "score"): ("approved_model", "scores only with an approved model"),
}


def grade_uses(grade: str, *, dp: bool = False, approved_model: bool = False) -> frozenset[str]:
    """The uses ``grade`` allows, given whether the table runs in dp mode and the
    score's model is approved."""
    if grade not in _USES:
        raise ValueError(f"unknown grade {grade!r} (grades: {', '.join(GRADES)})")
    held = {"dp": dp, "approved_model": approved_model}
    extra = {use for (g, use), (cond, _) in _CONDITIONAL.items() if g == grade and held[cond]}
    return _USES[grade] | frozenset(extra)


def clamp_uses(uses: frozenset[str], grade: str, *, dp: bool = False) -> frozenset[str]:
    """The config's ``uses`` narrowed to what ``grade`` allows (as published in the catalog).

    ``score`` on a sensitive column stays published when dp is off: whether a
    score is admitted depends on its model, which only the request shows.
    """
    allowed = grade_uses(grade, dp=dp, approved_model=True)
    return uses & allowed


def clamp_k(k: int, grades: Mapping[str, str]) -> int:
    """The table's minimum group size: the config's, raised to the strictest grade's floor."""
    return max([k, *(_MIN_K[g] for g in grades.values())])


def check_grades(
    reads: Scope,
    grades: Mapping[str, Mapping[str, str]],
    *,
    dp: Mapping[str, bool] | None = None,
    approved_model: bool = False,
) -> None:
    """Refuse a request that uses a column beyond its grade; the reason names the grade.

    Args:
        reads: tables -> columns -> uses, as the request reads them.
        grades: tables -> columns -> grade, lower-case (registered tables only;
            a table without grades is not checked here).
        dp: tables -> whether the table runs in dp mode.
        approved_model: whether a score's model is approved by its voucher.

    Raises:
        PolicyError: ``column tax.revenue is graded sensitive: aggregates only in dp mode``.
    """
    for table in sorted(reads):
        graded = grades.get(table)
        if graded is None:
            continue
        for column in sorted(reads[table]):
            grade = graded.get(column, "core")  # an ungraded column is not registered
            allowed = grade_uses(
                grade, dp=bool((dp or {}).get(table)), approved_model=approved_model
            )
            for use in sorted(reads[table][column] - allowed):
                why = _CONDITIONAL.get((grade, use), ("", f"no {use}"))[1]
                if grade == "core":
                    why = "it never leaves the holder, not even encrypted"
                raise PolicyError(f"column {table}.{column} is graded {grade}: {why}")
