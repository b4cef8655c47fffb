"""Who may hold a node's call slots, and for how long: per-caller admission and idle streams.

gRPC's own limit (``maximum_concurrent_rpcs`` in ``unseen.engine.transport.rpc.create_server``)
is global: before this module, one caller holding 64 request streams that
never finished locked everyone else out for as long as it liked. Every call
now passes :class:`BoundedCalls`, which

* limits the calls in flight **per caller** (the verified certificate's name
  and role under mTLS, the peer's IP address otherwise), so one caller cannot
  take every slot. A verified coordinator relays many analysts (each of whom
  the coordinator limits in turn), so it gets a larger share;
* cancels a **request stream that sends nothing** for ``idle_seconds``, and
  any call older than ``max_call_seconds`` (a caller that sets no deadline, or
  never reads its answer, holds its thread no longer than that);
* runs the handler inside a :class:`~unseen.engine.transport.cancellation.CallScope` that is
  cancelled when the call ends for any reason, so a holder stops local work
  (SQL, encryption) once its caller's deadline has passed.

The bounds come from the environment (``UNSEEN_MAX_CALLS_PER_CALLER``,
``UNSEEN_STREAM_IDLE_SECONDS``, ``UNSEEN_MAX_CALL_SECONDS``; see
docs/operations.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from unseen.engine.errors import ConfigError
from unseen.engine.transport.cancellation import CallScope, serving
from unseen.engine.transport.tls import caller_identity

__all__ = ["BoundedCalls", "CallBounds", "caller_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallBounds:
    """How much of a node one caller may hold, and for how long."""

    # Calls in flight from one caller. Quick-start nodes see every loopback
    # caller as one (127.0.0.1), so this is also what a plaintext node admits.
    per_caller: int = 16
    # A verified coordinator multiplexes all its analysts (limited per analyst
    # at the coordinator); it may use most, never all, of a holder's slots.
    coordinator_share: int = 48
    # A request stream silent this long is cancelled. Honest clients send
    # their chunks back to back; the slowest honest producer (a coordinator
    # relaying an analyst's entity stream) adds only its own network time.
    idle_seconds: float = 20.0
    # No call holds a slot longer than this, deadline or not (the longest
    # honest call is a 1M-entity score, DEADLINES["score"] = 600 s).
    max_call_seconds: float = 900.0

    @classmethod
    def from_env(cls) -> CallBounds:
        """The defaults, overridden by ``UNSEEN_*`` variables where set."""
        defaults = cls()
        return cls(
            per_caller=int(_env("UNSEEN_MAX_CALLS_PER_CALLER", defaults.per_caller)),
            coordinator_share=defaults.coordinator_share,
            idle_seconds=_env("UNSEEN_STREAM_IDLE_SECONDS", defaults.idle_seconds),
            max_call_seconds=_env("UNSEEN_MAX_CALL_SECONDS", defaults.max_call_seconds),
        )

    def limit_for(self, caller: str) -> int:
        return self.coordinator_share if caller.startswith("coordinator:") else self.per_caller


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {raw!r}")
    return value


def caller_of(context: grpc.ServicerContext) -> str:
    """The identity a call is counted against: ``role:name`` of a verified certificate,
    else the peer's IP address (its port changes with every connection, so it is dropped)."""
    name, role = caller_identity(context)
    if name:
        return f"{role or 'unknown'}:{name}"
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = rest.rpartition(":")
        return f"{kind}:{host}"
    return peer


class _Call:
    """One admitted call as the watch sees it."""

    __slots__ = ("caller", "context", "method", "scope", "started", "waiting_since")

    def __init__(self, caller: str, method: str, context: grpc.ServicerContext):
        self.caller = caller
        self.method = method
        self.context = context
        self.scope = CallScope(method)
        self.started = time.monotonic()
        self.waiting_since: float | None = None  # set while waiting for the next request


class _Watch:
    """One thread per server that ends idle streams and over-long calls."""

    def __init__(self, bounds: CallBounds):
        self._bounds = bounds
        self._lock = threading.Lock()
        self._calls: set[_Call] = set()
        self._thread: threading.Thread | None = None
        # Check often enough that an idle limit is kept to within a fraction of itself.
        self._period = min(0.5, bounds.idle_seconds / 4)

    def add(self, call: _Call) -> None:
        with self._lock:
            self._calls.add(call)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rpc-watch", daemon=True)
                self._thread.start()

    def remove(self, call: _Call) -> None:
        with self._lock:
            self._calls.discard(call)

    def _run(self) -> None:
        while True:
            time.sleep(self._period)
            now = time.monotonic()
            with self._lock:
                calls = list(self._calls)
            for call in calls:
                self._inspect(call, now)

    def _inspect(self, call: _Call, now: float) -> None:
        reason = None
        waiting = call.waiting_since
        if waiting is not None and now - waiting > self._bounds.idle_seconds:
            reason = f"sent nothing for {self._bounds.idle_seconds:g} s"
        elif now - call.started > self._bounds.max_call_seconds:
            reason = f"ran past {self._bounds.max_call_seconds:g} s"
        if reason is None:
            return
        log.warning("cancelled a %s call that %s", call.method, reason)
        # The scope first: gRPC may end a cancelled request stream as if it were complete,
        # and the reader must know it was cut (the call's callback cancels it again, later).
        call.scope.cancel()
        call.context.cancel()
        self.remove(call)


class BoundedCalls(grpc.ServerInterceptor):
    """Admit a call only within its caller's share; watch it while it runs."""

    def __init__(self, bounds: CallBounds | None = None):
        self.bounds = bounds or CallBounds.from_env()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._watch = _Watch(self.bounds)

    def in_flight(self) -> dict[str, int]:
        """Calls in flight per caller (for tests and diagnostics)."""
        with self._lock:
            return dict(self._in_flight)

    def _enter(self, context: grpc.ServicerContext, method: str) -> _Call:
        caller = caller_of(context)
        limit = self.bounds.limit_for(caller)
        with self._lock:
            count = self._in_flight.get(caller, 0)
            admitted = count < limit
            if admitted:
                self._in_flight[caller] = count + 1
        if not admitted:
            log.info("shed a %s call: its caller has %d calls in flight", method, limit)
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls at once from this caller (at most {limit}); retry later",
            )
        call = _Call(caller, method, context)
        # Whatever ends the call (deadline, hang-up, our own cancel) stops its work;
        # a call that ended before it got here has nothing to start.
        if not context.add_callback(call.scope.cancel):
            call.scope.cancel()
        self._watch.add(call)
        return call

    def _leave(self, call: _Call) -> None:
        self._watch.remove(call)
        with self._lock:
            left = self._in_flight[call.caller] - 1
            if left:
                self._in_flight[call.caller] = left
            else:
                del self._in_flight[call.caller]

    def _requests(self, call: _Call, stream: Iterator[Any]) -> Iterator[Any]:
        """The request stream, with the time spent waiting for each message watched."""
        while True:
            call.waiting_since = time.monotonic()
            try:
                message = next(stream)
            except StopIteration:
                call.scope.check()  # a stream we cut is not a complete request
                return
            finally:
                call.waiting_since = None
            yield message

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = str(details.method).rsplit("/", 1)[-1]

        def unary_in(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                call = self._enter(context, method)
                try:
                    with serving(call.scope):
                        return behavior(request, context)
                finally:
                    self._leave(call)

            return run

        def unary_in_stream_out(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                call = self._enter(context, method)
                try:
                    with serving(call.scope):
                        yield from behavior(request, context)
                finally:
                    self._leave(call)

            return run

        def stream_in(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(stream: Iterator[Any], context: grpc.ServicerContext) -> Any:
                call = self._enter(context, method)
                try:
                    with serving(call.scope):
                        return behavior(self._requests(call, stream), context)
                finally:
                    self._leave(call)

            return run

        def stream_in_stream_out(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def run(stream: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                call = self._enter(context, method)
                try:
                    with serving(call.scope):
                        yield from behavior(self._requests(call, stream), context)
                finally:
                    self._leave(call)

            return run

        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary_in(handler.unary_unary), **options)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                unary_in_stream_out(handler.unary_stream), **options
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(stream_in(handler.stream_unary), **options)
        return grpc.stream_stream_rpc_method_handler(
            stream_in_stream_out(handler.stream_stream), **options
        )
