"""All gRPC plumbing in one place: servers, channels, deadlines, error mapping.

Servers come from :func:`create_server` (health checking and reflection
included); channels from :func:`create_channel`. Each channel option below
says why it is set. Domain errors become gRPC statuses in exactly one place
(:func:`servicer_errors`), and statuses become domain errors in exactly one
place (:func:`remote_error`).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from unseen.engine.errors import ConfigError, PlanError, RemoteError, UnseenError
from unseen.engine.transport.admission import BoundedCalls, CallBounds
from unseen.engine.transport.tls import (
    TlsFiles,
    channel_credentials,
    is_loopback,
    server_credentials,
)

__all__ = [
    "DEADLINES",
    "MAX_MESSAGE_BYTES",
    "create_channel",
    "create_server",
    "remote_error",
    "servicer_errors",
]

log = logging.getLogger(__name__)

# A CKKS ciphertext is ~370 KB and a public context ~0.5 MB; 16 MiB leaves
# room for both with large group domains while still bounding what a hostile
# peer can make a node buffer per message. Bigger payloads (Galois keys) are
# chunked by the protocol rather than raising this limit.
MAX_MESSAGE_BYTES = 16 << 20

# Seconds. Every call carries one of these; nothing waits forever on a peer.
DEADLINES = {
    "catalog": 15.0,
    "catalog_fetch": 3.0,  # the coordinator asking one holder for its catalog
    "register_key": 60.0,
    "has_key": 10.0,
    "aggregate": 120.0,
    "prepare_model": 120.0,
    "score": 600.0,
    "health": 5.0,
    "align": 300.0,  # PSI: ~3 ms per id on one core at the holder (openmined-psi, P-256)
    "train": 300.0,  # one step of a training job (a round over 100k entities takes seconds)
}

_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                # Only small read-only calls are retried, and only on UNAVAILABLE.
                # Never Aggregate, PrepareModel, Score or ReadLedger: a retried
                # stream would wait out its deadline when a holder dies mid-call,
                # and a repeat could be logged (and charged to a quota) twice.
                "name": [
                    {"service": f"unseen.v1.{service}", "method": method}
                    for service in ("Holder", "Coordinator")
                    for method in ("GetCatalog", "HasKey", "HasModel")
                ]
                + [{"service": "grpc.health.v1.Health", "method": "Check"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Detect a dead peer on an idle long-lived channel within about a minute.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", _RETRY_SERVICE_CONFIG),
]

_SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Accept the clients' keepalive pings without calling them abusive.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


def create_server(
    address: str,
    register: Iterable[Callable[[grpc.Server], None]],
    service_names: Iterable[str],
    tls: TlsFiles | None = None,
    max_concurrent: int = 64,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    bounds: CallBounds | None = None,
) -> tuple[grpc.Server, int]:
    """Start a server on ``address`` (port 0 picks one); returns (server, port).

    ``register`` are the generated ``add_XServicer_to_server`` calls bound to
    their servicers; health checking and reflection are added for
    ``service_names``. With ``tls`` the server requires client certificates
    (mTLS); without, it serves plaintext only on a loopback address. Beyond
    ``max_concurrent`` calls in flight, new calls are shed with
    RESOURCE_EXHAUSTED instead of queueing without bound; ``bounds`` (default:
    from the environment) limits each caller's share of those calls, cancels
    silent request streams and stops a call's work when it ends
    (``unseen.engine.transport.admission``). ``interceptors`` run after the malformed-request
    guard (the node's metrics, ``unseen.engine.transport.telemetry``).
    """
    if tls is None and not is_loopback(address):
        raise ConfigError(
            f"refusing to serve plaintext on {address}: give TLS files (see unseen certs) "
            "or listen on a loopback address"
        )
    # One thread per admitted call: with fewer threads than admitted calls, a
    # handful of slow streams would freeze the node instead of being shed.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_concurrent + 4, thread_name_prefix="rpc"),
        options=_SERVER_OPTIONS,
        maximum_concurrent_rpcs=max_concurrent,
        # Outermost first: a call is admitted (and watched) before its bytes are decoded.
        interceptors=[BoundedCalls(bounds), _MalformedRequests(), *interceptors],
    )
    for add in register:
        add(server)
    names = list(service_names)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    if tls is not None:
        port = server.add_secure_port(address, server_credentials(tls))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise UnseenError(f"cannot listen on {address}")
    server.start()
    return server, port


def create_channel(address: str, tls: TlsFiles | None = None) -> grpc.Channel:
    """A channel to ``address`` with message limits, keepalive and retries set.

    With ``tls``, mutual TLS; without, plaintext, and only to a loopback address.
    """
    if tls is not None:
        return grpc.secure_channel(address, channel_credentials(tls), options=_CHANNEL_OPTIONS)
    if not is_loopback(address):
        raise ConfigError(
            f"refusing a plaintext channel to {address}: give TLS files (see unseen certs)"
        )
    return grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)


def remote_error(exc: grpc.RpcError, peer: str = "") -> RemoteError:
    """Translate a failed call into a :class:`RemoteError` with a readable reason."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = code.name if code is not None else "UNKNOWN"
    # A status our own servers set carries their reason (it names the holder);
    # one gRPC raised itself (connection refused, deadline) gets the peer named here.
    ours = bool(details) and details.startswith("holder ")
    if code == grpc.StatusCode.UNAVAILABLE and not ours:
        reason = f"{peer or 'peer'} is unavailable ({details})"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and details in ("", "Deadline Exceeded"):
        reason = f"{peer or 'peer'} did not answer before the deadline"
    else:
        reason = details or name
    return RemoteError(name, reason)


class _MalformedRequests(grpc.ServerInterceptor):
    """Answer undecodable request bytes with INVALID_ARGUMENT, not INTERNAL.

    gRPC decodes a request before any of our code runs and answers a decode
    failure with INTERNAL (and a logged traceback). Here every handler takes
    raw bytes and decodes them itself: a unary request that does not parse is
    refused at once; in a request stream the bad message raises PlanError in
    the servicer's loop, which ``servicer_errors`` maps like any plan error.
    """

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        ours = details.method.startswith("/unseen.v1.")

        def decode(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as exc:  # protobuf raises DecodeError and others
                raise PlanError(
                    f"malformed request message for {details.method.rsplit('/', 1)[-1]}"
                ) from exc

        def unary_request(behavior: Any) -> Any:
            def run(data: bytes, context: grpc.ServicerContext) -> Any:
                try:
                    message = decode(data)
                except PlanError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                return behavior(message, context)

            return run

        def stream_request(behavior: Any) -> Any:
            def run(stream: Any, context: grpc.ServicerContext) -> Any:
                def messages() -> Any:
                    for data in stream:
                        try:
                            yield decode(data)
                        except PlanError as exc:
                            if ours:
                                raise  # our servicers map it to INVALID_ARGUMENT
                            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

                return behavior(messages(), context)

            return run

        serialize = handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary_request(handler.unary_unary), response_serializer=serialize
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                unary_request(handler.unary_stream), response_serializer=serialize
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                stream_request(handler.stream_unary), response_serializer=serialize
            )
        return grpc.stream_stream_rpc_method_handler(
            stream_request(handler.stream_stream), response_serializer=serialize
        )


_F = TypeVar("_F", bound=Callable[..., Any])


def _abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, grpc.RpcError):
        # The caller went away (cancelled, or its stream broke): not our bug.
        log.info("%s ended by the peer", method)
        context.abort(grpc.StatusCode.CANCELLED, f"{method} was cancelled")
    if isinstance(exc, UnseenError):
        code = getattr(grpc.StatusCode, exc.grpc_code, grpc.StatusCode.INTERNAL)
        log.info("%s refused: %s", method, type(exc).__name__)
        context.abort(code, str(exc))
    # A bug, not a client error. The log line carries the type only: exception
    # texts from engines can quote data values, and logs must never hold those.
    log.error("%s failed with an internal %s", method, type(exc).__name__)
    # The traceback only at DEBUG, which operators enable knowingly (docs/operations.md).
    log.debug("%s traceback", method, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the server log")


def servicer_errors(method: _F) -> _F:
    """Map exceptions raised by a servicer method (plain or streaming) to statuses.

    Servicer methods never call ``context.abort`` themselves; they raise, and
    this wrapper is the only place that aborts.
    """
    name = method.__name__

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - the one translation point
                _abort(context, exc, name)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - the one translation point
            _abort(context, exc, name)
            return None

    return unary  # type: ignore[return-value]
