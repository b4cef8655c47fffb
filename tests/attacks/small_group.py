"""A table with one small group (six rows) beside a large one, at two holders.

Shared by the attacks that try to read the small group: its power sums
(``SQL``) would determine its six values, so it is suppressed.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Federation, start_federation
from tests.shards import Reference, write_shards

__all__ = ["POWERS", "SMALL", "SQL", "start_small_group"]

SCHEMA = [("city", "VARCHAR"), ("v", "BIGINT")]
SMALL = [100, 101, 102, 103, 104, 105]
POWERS = 6
SQL = (
    "SELECT city, "
    + ", ".join(f"SUM({' * '.join(['v'] * p)})" for p in range(1, POWERS + 1))
    + ", COUNT(*) FROM t GROUP BY city ORDER BY city"
)


def start_small_group(root: Path) -> tuple[Federation, Reference]:
    """Holder h0 (Parquet) has the small group and half the large one; h1 (SQLite) the rest."""
    big = [("Big", 200 + i % 50) for i in range(60)]
    holders, reference = write_shards(
        SCHEMA,
        {
            "h0": (root / "h0.parquet", [("Small", v) for v in SMALL] + big),
            "h1": (root / "h1.sqlite", big),
        },
    )
    return start_federation(holders), reference
