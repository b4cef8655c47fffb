"""Primary suppression: which groups of a holder's answer may not be published.

One function, :func:`failing_groups`, holds every suppression rule a holder
applies to its own per-group moments (today the minimum group size ``k``:
a group with ``0 < rows < k`` fails). Holders report their failing groups in
the first round of a masked aggregate and zero the union of everyone's
failing groups before they encrypt, so a suppressed group's slots carry
nothing that depends on any holder's data.
"""

from __future__ import annotations

from collections.abc import Mapping

from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.layout import GroupMoments

__all__ = ["failing_groups"]


def failing_groups(moments: Mapping[int, GroupMoments], table: TableInfo) -> frozenset[int]:
    """Indices of the groups this holder's policy forbids publishing."""
    k = table.min_group_size
    return frozenset(index for index, group in moments.items() if 0 < group.rows < k)
