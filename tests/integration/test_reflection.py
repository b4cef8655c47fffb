"""Server reflection and health as a generic client (grpcurl, Postman) uses them.

The client below knows nothing of unseen: no generated module, no .proto file.
It lists the services a server offers, resolves every method and message type
through reflection (grpc_reflection's ProtoReflectionDescriptorDatabase feeding
a DescriptorPool), builds request classes with ``message_factory`` and calls
every RPC of the Holder and the Coordinator. Each call must reach our code:
a proper answer or a proper refusal, never UNIMPLEMENTED or INTERNAL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.running import Running
from tests.shards import write_shard

# What a call with an empty (or one empty message) request may be answered with.
PROPER = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
}
EXPECTED_METHODS = {
    "unseen.v1.Holder": {
        "GetCatalog",
        "RegisterKey",
        "HasKey",
        "PrepareAggregate",
        "Aggregate",
        "PrepareModel",
        "RegisterModel",
        "HasModel",
        "Score",
        "ReadLedger",
        # joint modelling (issue 15)
        "Align",
        "Train",
    },
    "unseen.v1.Coordinator": {
        "GetCatalog",
        "RegisterKey",
        "HasKey",
        "Aggregate",
        "PrepareModel",
        "RegisterModel",
        "HasModel",
        "Score",
        # joint modelling (issue 15)
        "Align",
        "Train",
    },
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, str]]:
    shard = write_shard(
        tmp_path_factory.mktemp("reflect") / "t.csv",
        [("g", "VARCHAR"), ("v", "BIGINT")],
        [("a", 1)],
    )
    running = Running()
    holder = running.holder("h", {"t": shard})
    coordinator = running.coordinator([holder])
    yield {"unseen.v1.Holder": holder, "unseen.v1.Coordinator": coordinator}
    running.close()


class GenericClient:
    """A client built from the server's reflection service alone."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.database = ProtoReflectionDescriptorDatabase(self.channel)
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def services(self) -> list[str]:
        return list(self.database.get_services())

    def call(self, service: str, method: str, fields: dict[str, Any] | None = None) -> Any:
        """Call ``method`` with a request built from ``fields``; streams get one message."""
        descriptor = self.pool.FindServiceByName(service).methods_by_name[method]
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        reply_class = message_factory.GetMessageClass(descriptor.output_type)
        request = request_class(**(fields or {}))
        path = f"/{service}/{method}"
        kwargs = {
            "request_serializer": request_class.SerializeToString,
            "response_deserializer": reply_class.FromString,
        }
        streaming_in = descriptor.client_streaming
        streaming_out = descriptor.server_streaming
        if streaming_in and streaming_out:
            return list(self.channel.stream_stream(path, **kwargs)(iter([request]), timeout=10))
        if streaming_in:
            return self.channel.stream_unary(path, **kwargs)(iter([request]), timeout=10)
        if streaming_out:
            return list(self.channel.unary_stream(path, **kwargs)(request, timeout=10))
        return self.channel.unary_unary(path, **kwargs)(request, timeout=10)

    def close(self) -> None:
        self.channel.close()


@pytest.mark.parametrize("service", sorted(EXPECTED_METHODS))
def test_every_method_and_message_type_resolves_through_reflection(servers, service):
    client = GenericClient(servers[service])
    try:
        assert service in client.services()
        described = client.pool.FindServiceByName(service)
        assert {m.name for m in described.methods} == EXPECTED_METHODS[service]
        for method in described.methods:
            for message in (method.input_type, method.output_type):
                cls = message_factory.GetMessageClass(message)
                assert cls.DESCRIPTOR.full_name.startswith("unseen.v1.")
        # Every message type of every file the service depends on, too.
        seen = set()
        pending = [client.pool.FindFileContainingSymbol(service)]
        while pending:
            file = pending.pop()
            if file.name in seen:
                continue
            seen.add(file.name)
            pending.extend(file.dependencies)
            for name in file.message_types_by_name:
                assert client.pool.FindMessageTypeByName(f"{file.package}.{name}")
        assert len(seen) >= 4  # the service's file and the message files it imports
    finally:
        client.close()


@pytest.mark.parametrize(
    ("service", "method"),
    sorted(
        (service, method) for service, methods in EXPECTED_METHODS.items() for method in methods
    ),
)
def test_every_rpc_is_callable_from_a_reflection_built_client(servers, service, method):
    client = GenericClient(servers[service])
    try:
        try:
            client.call(service, method)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        assert code in PROPER, f"{service}/{method}: {code}"
    finally:
        client.close()


def test_a_reflection_built_client_gets_real_answers(servers):
    client = GenericClient(servers["unseen.v1.Coordinator"])
    try:
        catalog = client.call("unseen.v1.Coordinator", "GetCatalog")
        assert [t.name for t in catalog.tables] == ["t"] and list(catalog.tables[0].holders) == [
            "h"
        ]
        assert client.call("unseen.v1.Coordinator", "HasKey", {"key_id": "0" * 64}).known is False
        with pytest.raises(grpc.RpcError) as info:
            client.call("unseen.v1.Coordinator", "Aggregate", {"key_id": "0" * 64})
        assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    finally:
        client.close()


@pytest.mark.parametrize("service", sorted(EXPECTED_METHODS))
def test_health_is_served_and_described_for_every_service(servers, service):
    client = GenericClient(servers[service])
    try:
        assert "grpc.health.v1.Health" in client.services()
        for name in ("", service):
            reply = client.call("grpc.health.v1.Health", "Check", {"service": name})
            assert (
                client.pool.FindEnumTypeByName("grpc.health.v1.HealthCheckResponse.ServingStatus")
                .values_by_number[reply.status]
                .name
                == "SERVING"
            )
    finally:
        client.close()
