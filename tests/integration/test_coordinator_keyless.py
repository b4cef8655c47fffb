"""The coordinator never receives a secret key or a plaintext value."""

from __future__ import annotations

import grpc
import pytest
import tenseal as ts

from tests.shards import write_shard
from unseen.engine.crypto import registration
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.v1 import coordinator_pb2_grpc


@pytest.fixture
def fed(tmp_path, federation_factory):
    rows = [("a", i) for i in range(20)]
    holders = {
        f"h{i}": {
            "t": write_shard(tmp_path / f"h{i}.csv", [("g", "VARCHAR"), ("v", "BIGINT")], rows)
        }
        for i in range(2)
    }
    return federation_factory(holders)


def test_everything_the_coordinator_received_is_public(fed, key, monkeypatch):
    received: list[bytes] = []
    original = fed.coordinator.keys.register

    def spy(public: bytes) -> str:
        received.append(public)
        return original(public)

    monkeypatch.setattr(fed.coordinator.keys, "register", spy)
    ciphertexts: list[bytes] = []
    real_aggregate = fed.coordinator.aggregate

    def spy_aggregate(*args, **kwargs):
        answer = real_aggregate(*args, **kwargs)
        ciphertexts.extend(answer.ciphertexts)
        return answer

    monkeypatch.setattr(fed.coordinator, "aggregate", spy_aggregate)
    result = fed.client(key).query("SELECT g, SUM(v) FROM t WHERE g = 'a' GROUP BY g")
    assert result.rows == [["a", 2 * sum(range(20))]]
    # Registration may repeat (a retry after a restart); every copy is the public part.
    assert received and set(received) == {key.public}
    parts = registration.split(received[0])
    assert parts.bfv and not ts.context_from(parts.ckks).has_secret_key()
    assert not ts.context_from(parts.bfv).has_secret_key()
    for entry in fed.coordinator.keys._contexts.values():
        for ctx in (entry.ckks, entry.aggregate):
            assert not ctx.has_secret_key() and not ctx.is_private()
    # What passed through are BFV ciphertexts: without the key they do not decrypt.
    public_ctx = ts.context_from(parts.bfv)
    with pytest.raises(ValueError):
        ts.bfv_vector_from(public_ctx, ciphertexts[0]).decrypt()
    assert str(2 * sum(range(20))).encode() not in b"".join(ciphertexts)


def test_a_secret_context_sent_to_the_coordinator_is_refused(fed, key):
    stub = coordinator_pb2_grpc.CoordinatorStub(create_channel(fed.address))
    secret = bytes(key.secret.serialize(save_secret_key=True))
    with pytest.raises(grpc.RpcError) as info:
        stub.RegisterKey(serde.key_chunks(secret), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "secret key" in info.value.details()
    assert len(fed.coordinator.keys._contexts) == 0
