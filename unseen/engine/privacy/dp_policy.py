"""A table's differential-privacy policy and what it implies for one query's quantities.

A holder may serve a table in ``dp`` mode (``[tables.T.dp]`` in its config):

``unit``
    The privacy-unit column (a person or enterprise id). Neighbouring
    databases differ by all rows of one unit.
``max_rows``
    Contribution bound: at most this many rows per unit reach one query
    (the pushdown keeps a random ``max_rows`` of each unit's filtered rows,
    :mod:`unseen.engine.privacy.contribution`).
``bounds``
    Public clamping bounds ``[lower, upper]`` per aggregatable column; values
    are clamped before summing, and the bounds appear in the catalog.
``rho``
    The zCDP cost rho of one query on this table, whatever it asks: the cost is
    split evenly over the quantities the query publishes per group (see
    :func:`quantities`), so more measures mean more noise per quantity, not a
    higher cost. Groups do not multiply the cost: the contribution bound holds
    across all groups of a query, so each quantity's vector over the groups has
    one L2 sensitivity (:func:`quantities`).
``unit_holders``
    At how many holders one unit may have rows (default 1: a unit's rows live
    at one holder, such as a person's insurance record in one city). A unit
    then changes up to ``max_rows * unit_holders`` rows of the federation.
``honest_holders``
    How many of the holders serving the table the owners assume follow the
    protocol (add their noise share). Each holder adds a share of variance
    ``sigma^2 / honest_holders``, so any ``unit_holders``
    At how many holders one unit may have rows (default 1: a unit's rows live
    at one holder, such as a person's insurance record in one city). A unit
    then changes up to ``max_rows * unit_holders`` rows of the federation.
``honest_holders`` of them already carry
    the full calibrated noise. The default, 1, is the safe choice: every holder
    alone adds the full noise.

In dp mode the noisy counts replace the ``k`` threshold: suppressing a small
group is itself a data-dependent disclosure that differential privacy does
not account for, so dp tables publish every group of the (public) domain,
noisy. Everything here is public; nothing reads data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

__all__ = ["DpPolicy"]


@dataclass(frozen=True)
class DpPolicy:
    """The public dp policy of one table (see the module docstring)."""

    unit: str
    max_rows: int
    rho: Fraction
    bounds: Mapping[str, tuple[Fraction, Fraction]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    honest_holders: int = 1
    unit_holders: int = 1

    def bound(self, column: str) -> tuple[Fraction, Fraction] | None:
        """The clamping bounds of ``column`` (case-insensitive), or None."""
        for name, pair in self.bounds.items():
            if name.lower() == column.lower():
                return pair
        return None
