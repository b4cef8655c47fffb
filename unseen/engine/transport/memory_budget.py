"""A node-wide budget for request data held in memory across concurrent calls.

Per-request limits (a million entity ids, 64 MiB of them) bound one call; a
caller with 16 calls in flight could still make a holder hold 16 of them at
once. The budget bounds the sum: each call charges what it buffers as the
stream arrives (:meth:`MemoryBudget.account`) and gives it back when it ends,
and a charge past the budget is refused with RESOURCE_EXHAUSTED (retry later)
before the data is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from unseen.engine.errors import BusyError

__all__ = ["ENTITY_OVERHEAD", "MemoryBudget", "entity_id_budget"]

# What CPython spends on one short string in a list besides its characters
# (object header, hash, list slot): charged per entity id.
ENTITY_OVERHEAD = 64


class MemoryBudget:
    """``limit`` bytes shared by every call of a node; charged and returned per call."""

    def __init__(self, limit: int, what: str = "request data"):
        self.limit = limit
        self.what = what
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    @contextmanager
    def account(self) -> Iterator[Callable[[int], None]]:
        """A ``charge(bytes)`` function for one call; everything charged is returned at exit."""
        held = 0

        def charge(size: int) -> None:
            nonlocal held
            with self._lock:
                if self._used + size > self.limit:
                    raise BusyError(
                        f"this node holds too much {self.what} for other calls right now "
                        f"(at most {self.limit >> 20} MiB at once); retry later"
                    )
                self._used += size
                held += size

        try:
            yield charge
        finally:
            with self._lock:
                self._used -= held


def entity_id_budget() -> MemoryBudget:
    """The entity ids one node holds at once over all its calls: two million-entity
    requests of 18-character codes (~82 MB each as Python strings) fit."""
    return MemoryBudget(192 << 20, "entity ids")
