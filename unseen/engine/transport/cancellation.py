"""The lifetime of the call being served: local work stops when its caller stops waiting.

A caller whose deadline passes (or who hangs up) gets its status from gRPC at
once, but the thread serving it would go on computing: a heavy local query
kept burning CPU and memory long after anyone could use its answer. Each
served call therefore runs inside a :class:`CallScope` (set by
``unseen.engine.transport.admission`` around every handler); the transport cancels the scope
when the call ends, and work that can take long registers how to interrupt
itself (:func:`interruptible`: DuckDB's and SQLite's ``interrupt``) or checks
in between steps (:func:`checkpoint`). Outside a served call (the library
used directly, tests) there is no scope and both are no-ops.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from unseen.engine.errors import CallCancelled

__all__ = ["CallScope", "checkpoint", "current", "interruptible", "serving"]

log = logging.getLogger(__name__)

_CURRENT: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "unseen_call_scope", default=None
)


class CallScope:
    """One served call: cancelled once, from any thread; interrupts what is running."""

    def __init__(self, method: str = "call"):
        self.method = method
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._interrupts: list[Callable[[], object]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Mark the call over and interrupt the engine work registered for it. Idempotent."""
        with self._lock:
            if self._cancelled.is_set():
                return
            self._cancelled.set()
            interrupts = list(self._interrupts)
        for interrupt in interrupts:
            try:
                interrupt()
            except Exception as exc:  # noqa: BLE001 - an engine that already finished
                log.debug("interrupting %s failed: %s", self.method, type(exc).__name__)

    def check(self) -> None:
        if self._cancelled.is_set():
            raise CallCancelled(f"{self.method} was stopped: its caller is no longer waiting")

    @contextmanager
    def interruptible(self, interrupt: Callable[[], object]) -> Iterator[None]:
        """Run the body with ``interrupt`` registered; a cancelled call raises CallCancelled,
        whatever error the interrupted engine raised (chained)."""
        with self._lock:
            self.check()
            self._interrupts.append(interrupt)
        try:
            yield
        except Exception as exc:
            if self._cancelled.is_set():
                raise CallCancelled(
                    f"{self.method} was stopped: its caller is no longer waiting"
                ) from exc
            raise
        finally:
            with self._lock:
                self._interrupts.remove(interrupt)
        self.check()


def current() -> CallScope | None:
    """The scope of the call this thread serves, if any."""
    return _CURRENT.get()


@contextmanager
def serving(scope: CallScope) -> Iterator[CallScope]:
    """Make ``scope`` the current one for the body (the transport wraps each handler)."""
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        # A response generator abandoned by gRPC is closed later, by the garbage
        # collector, in another context: there is nothing of ours to undo there.
        with contextlib.suppress(ValueError):
            _CURRENT.reset(token)


def checkpoint() -> None:
    """Raise CallCancelled if the call being served has ended; else nothing."""
    scope = _CURRENT.get()
    if scope is not None:
        scope.check()


@contextmanager
def interruptible(interrupt: Callable[[], object]) -> Iterator[None]:
    """Register ``interrupt`` with the current call for the body (no-op outside a call)."""
    scope = _CURRENT.get()
    if scope is None:
        yield
        return
    with scope.interruptible(interrupt):
        yield
