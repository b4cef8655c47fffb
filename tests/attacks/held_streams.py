"""Request streams that send one message and then nothing, as a hostile caller holds them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import TracebackType

import grpc

from tests.hostile import method_path
from unseen.engine.transport import serde


class HeldStreams:
    """``count`` RegisterKey streams to ``target`` at ``address`` that send their first key
    chunk and then wait, until released (or cancelled by the server).

    The calls are spread over several connections so that no HTTP/2 stream limit on one
    connection hides calls from the server. ``codes()`` waits for every call to end and
    returns each one's status name.
    """

    def __init__(
        self,
        address: str,
        target: str,
        public: bytes,
        count: int = 64,
        credentials: grpc.ChannelCredentials | None = None,
        deadline: float = 120.0,
    ):
        first = next(serde.key_chunks(public)).SerializeToString()
        self.release = threading.Event()

        def parts() -> Iterator[bytes]:
            yield first
            self.release.wait(deadline)

        options = [("grpc.use_local_subchannel_pool", 1)]
        self.channels = [
            grpc.secure_channel(address, credentials, options=options)
            if credentials is not None
            else grpc.insecure_channel(address, options=options)
            for _ in range(4)
        ]
        self.calls = []
        for i in range(count):
            call = self.channels[i % len(self.channels)].stream_unary(
                method_path(target, "RegisterKey"),
                request_serializer=None,
                response_deserializer=None,
            )
            self.calls.append(call.future(parts(), timeout=deadline))

    def codes(self, finished_only: bool = False) -> list[str]:
        """Each call's status name (waiting for all to end unless ``finished_only``);
        ``"CANCELLED_HERE"`` for calls this side cancelled."""
        out = []
        for call in self.calls:
            if finished_only and not call.done():
                continue
            if call.cancelled():
                out.append("CANCELLED_HERE")
                continue
            exc = call.exception()
            out.append("OK" if exc is None else exc.code().name)
        return out

    def running(self) -> int:
        return sum(not call.done() for call in self.calls)

    def __enter__(self) -> HeldStreams:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            channel.close()
