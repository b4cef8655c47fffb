"""Prometheus metrics of one node: what it was asked, how it answered, how loaded it is.

Every node (holder or coordinator) started with ``--metrics HOST:PORT``
serves ``/metrics`` over HTTP with:

- ``unseen_requests_total{rpc, code}``: calls by RPC method and gRPC status;
- ``unseen_request_seconds{rpc}``: latency histogram per RPC method (until the
  last streamed message);
- ``unseen_refusals_total{reason}``: calls that ended in an error, by status
  class (``permission_denied``, ``invalid_argument``, ``resource_exhausted`` ...);
- ``unseen_voucher_quota_left{voucher}`` and ``unseen_voucher_rho_left{voucher}``
  (holders): queries left in a voucher's quota and zCDP privacy budget
  (rho) left, updated as the ledger charges them, for the vouchers most
  recently used (at most :data:`MAX_VOUCHERS`, so the label set is bounded);
- gauges the node registers for its caches (registered keys, models).

Labels are method names, status codes and voucher ids only (a voucher id is
the issuer's name for the voucher, 1-128 letters, digits and ``. _ : -``; only
vouchers a trusted issuer signed are gauged), values are counts, budgets and
seconds: never a table value, a literal, a weight or a key. Each node has
a registry of its own, so several nodes in one process do not mix.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["MAX_VOUCHERS", "NodeMetrics"]

# Vouchers gauged at once; the least recently charged ones drop out of the scrape
# (their ledger entries stay the record), so a busy node's label set stays bounded.
MAX_VOUCHERS = 1024

# From a cached catalog lookup (ms) to a large score request (minutes).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class NodeMetrics:
    """One node's metrics and the gRPC interceptor that records them."""

    def __init__(self, role: str, name: str):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "unseen_requests",
            "RPCs handled, by method and gRPC status code",
            ["rpc", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "unseen_request_seconds",
            "RPC latency in seconds, by method",
            ["rpc"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "unseen_refusals",
            "RPCs that ended in an error, by status class",
            ["reason"],
            registry=self.registry,
        )
        self.voucher_gauges = {
            "quota": Gauge(
                "unseen_voucher_quota_left",
                "Queries left in a voucher's quota at this holder",
                ["voucher"],
                registry=self.registry,
            ),
            "rho": Gauge(
                "unseen_voucher_rho_left",
                "Privacy budget (zCDP rho) left to a voucher at this holder",
                ["voucher"],
                registry=self.registry,
            ),
        }
        self._vouchers: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._vouchers_lock = threading.Lock()
        info = Gauge(
            "unseen_node_info", "The node's role and name", ["role", "name"], registry=self.registry
        )
        info.labels(role=role, name=name).set(1)
        self._http: Any = None

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (cache sizes and the like)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def voucher_left(self, kind: str, voucher_id: str, left: float) -> None:
        """Set what is left of a voucher's ``kind`` (``"quota"`` or ``"rho"``).

        Called by the holder's governance each time it ledgers a charge.
        """
        gauge = self.voucher_gauges[kind]
        with self._vouchers_lock:
            gauge.labels(voucher=voucher_id).set(left)
            self._vouchers[(kind, voucher_id)] = None
            self._vouchers.move_to_end((kind, voucher_id))
            while len(self._vouchers) > MAX_VOUCHERS:
                (old_kind, old_id), _ = self._vouchers.popitem(last=False)
                self.voucher_gauges[old_kind].remove(old_id)

    def interceptor(self) -> grpc.ServerInterceptor:
        """The server interceptor recording every call on this node."""
        return _Metered(self)

    def serve(self, address: str) -> int:
        """Serve ``/metrics`` on ``HOST:PORT`` (port 0 picks one); returns the port."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(int(port), host.strip("[]"), registry=self.registry)
        self._http = server
        return int(server.server_port)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def record(self, rpc: str, code: grpc.StatusCode | None, started: float) -> None:
        status = code or grpc.StatusCode.OK
        self.requests.labels(rpc=rpc, code=status.name).inc()
        self.latency.labels(rpc=rpc).observe(time.perf_counter() - started)
        if status is not grpc.StatusCode.OK:
            self.refusals.labels(reason=status.name.lower()).inc()


def _code(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode | None:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if failed else None


class _Metered(grpc.ServerInterceptor):
    """Wrap each handler so its outcome and duration are recorded."""

    def __init__(self, metrics: NodeMetrics):
        self._metrics = metrics

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        rpc = str(handler_call_details.method).rsplit("/", 1)[-1]
        record = self._metrics.record

        def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
                started, failed = time.perf_counter(), True
                try:
                    response = behavior(request, context)
                    failed = False
                    return response
                finally:
                    record(rpc, _code(context, failed), started)

            return wrapped

        def streaming(behavior: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
            def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started, failed = time.perf_counter(), True
                try:
                    yield from behavior(request, context)
                    failed = False
                finally:
                    record(rpc, _code(context, failed), started)

            return wrapped

        kinds = {
            "unary_unary": (grpc.unary_unary_rpc_method_handler, unary),
            "unary_stream": (grpc.unary_stream_rpc_method_handler, streaming),
            "stream_unary": (grpc.stream_unary_rpc_method_handler, unary),
            "stream_stream": (grpc.stream_stream_rpc_method_handler, streaming),
        }
        for attribute, (make, wrap) in kinds.items():
            behavior = getattr(handler, attribute)
            if behavior is not None:
                return make(
                    wrap(behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler
