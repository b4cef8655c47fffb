"""Per-caller admission, idle request streams and call scopes, on a real gRPC server.

The server is ``unseen.engine.transport.rpc.create_server`` with a small generic service whose
handlers block
until released or cancelled, so each bound can be observed from both ends.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from unseen.engine.errors import CallCancelled, ConfigError
from unseen.engine.transport.admission import CallBounds, caller_of
from unseen.engine.transport.cancellation import checkpoint, current
from unseen.engine.transport.rpc import create_server

SERVICE = "test.Bounded"


class Service:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered: queue.Queue[str] = queue.Queue()
        self.outcomes: queue.Queue[str] = queue.Queue()

    def hold(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Wait for release, checking the call scope; report how the wait ended."""
        self.entered.put("hold")
        try:
            for _ in range(600):
                if self.release.wait(0.1):
                    self.outcomes.put("released")
                    return b"done"
                checkpoint()
            self.outcomes.put("timed out")
        except CallCancelled:
            self.outcomes.put("cancelled")
        return b""

    def drain(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        try:
            count = sum(1 for _ in requests)
        except (grpc.RpcError, CallCancelled):
            self.outcomes.put("stream cancelled")
            return b""
        self.outcomes.put(f"read {count}")
        return b"done"

    def scope(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"yes" if current() is not None else b"no"


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[grpc.Server] = []

    def start(bounds: CallBounds) -> tuple[Service, grpc.Channel]:
        service = Service()
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Hold": grpc.unary_unary_rpc_method_handler(service.hold),
                "Drain": grpc.stream_unary_rpc_method_handler(service.drain),
                "Scope": grpc.unary_unary_rpc_method_handler(service.scope),
            },
        )
        server, port = create_server(
            "127.0.0.1:0",
            [lambda s: s.add_generic_rpc_handlers((handler,))],
            [SERVICE],
            bounds=bounds,
        )
        started.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return service, channel

    channels: list[grpc.Channel] = []
    yield start
    for channel in channels:
        channel.close()
    for server in started:
        server.stop(None).wait()


def _hold(channel: grpc.Channel) -> grpc.Future:
    return channel.unary_unary(f"/{SERVICE}/Hold").future(b"", timeout=60)


def test_a_caller_beyond_its_share_is_shed_while_others_are_not(serve):
    service, channel = serve(CallBounds(per_caller=2))
    held = [_hold(channel) for _ in range(2)]
    assert [service.entered.get(timeout=30) for _ in held] == ["hold", "hold"]
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(f"/{SERVICE}/Scope")(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 2" in (info.value.details() or "")
    service.release.set()
    assert [f.result() for f in held] == [b"done", b"done"]
    # The share is given back when calls end.
    assert channel.unary_unary(f"/{SERVICE}/Scope")(b"", timeout=10) == b"yes"


def test_the_work_of_a_call_stops_when_its_deadline_passes(serve):
    service, channel = serve(CallBounds())
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(f"/{SERVICE}/Hold")(b"", timeout=2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert service.entered.get(timeout=30) == "hold"  # the work had started
    assert service.outcomes.get(timeout=30) == "cancelled"


def test_a_silent_request_stream_is_cancelled(serve):
    service, channel = serve(CallBounds(idle_seconds=0.5))
    stop = threading.Event()

    def parts() -> Iterator[bytes]:
        yield b"one"
        stop.wait(60)

    try:
        with pytest.raises(grpc.RpcError) as info:
            channel.stream_unary(f"/{SERVICE}/Drain")(parts(), timeout=60)
    finally:
        stop.set()
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert service.outcomes.get(timeout=30) == "stream cancelled"


def test_a_call_past_the_longest_allowed_is_cancelled(serve):
    service, channel = serve(CallBounds(max_call_seconds=0.5))
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(f"/{SERVICE}/Hold")(b"", timeout=60)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert service.outcomes.get(timeout=30) == "cancelled"


def test_a_stream_that_keeps_sending_is_not_idle(serve):
    service, channel = serve(CallBounds(idle_seconds=0.5))

    def parts() -> Iterator[bytes]:
        for _ in range(8):
            time.sleep(0.2)  # slower in total than the idle limit, never silent that long
            yield b"part"

    assert channel.stream_unary(f"/{SERVICE}/Drain")(parts(), timeout=60) == b"done"
    assert service.outcomes.get(timeout=5) == "read 8"


class _Context:
    def __init__(self, peer: str, auth: dict[str, list[bytes]] | None = None):
        self._peer = peer
        self._auth = auth or {}

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def test_callers_are_counted_by_address_without_their_port():
    a = caller_of(_Context("ipv4:127.0.0.1:50001"))  # type: ignore[arg-type]
    b = caller_of(_Context("ipv4:127.0.0.1:50002"))  # type: ignore[arg-type]
    assert a == b == "ipv4:127.0.0.1"
    assert caller_of(_Context("ipv6:[::1]:7")) == "ipv6:[::1]"  # type: ignore[arg-type]
    assert caller_of(_Context("ipv4:10.0.0.2:7")) != a  # type: ignore[arg-type]


def test_a_coordinator_gets_a_larger_share_than_an_analyst():
    bounds = CallBounds()
    assert bounds.limit_for("coordinator:coord") == bounds.coordinator_share
    assert bounds.limit_for("analyst:mallory") == bounds.per_caller
    assert bounds.limit_for("ipv4:127.0.0.1") == bounds.per_caller
    assert bounds.per_caller < bounds.coordinator_share < 64


def test_bounds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("UNSEEN_MAX_CALLS_PER_CALLER", "4")
    monkeypatch.setenv("UNSEEN_STREAM_IDLE_SECONDS", "2.5")
    bounds = CallBounds.from_env()
    assert (bounds.per_caller, bounds.idle_seconds) == (4, 2.5)
    monkeypatch.setenv("UNSEEN_STREAM_IDLE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="UNSEEN_STREAM_IDLE_SECONDS must be a number"):
        CallBounds.from_env()
    monkeypatch.setenv("UNSEEN_STREAM_IDLE_SECONDS", "0")
    with pytest.raises(ConfigError, match="must be positive"):
        CallBounds.from_env()
