"""Attacker: the analyst, calling one holder directly (quick-start, loopback).

It registers its public key with holder ``h0`` and sends it the same aggregate
plan a coordinator would, then decrypts the answer with its own secret key. It
must learn nothing about ``h0``'s rows: in particular not the 40-row subtotal
of ``Alpha``, a group the federation suppresses (40 + 40 + 3 rows, k = 5).
"""

from __future__ import annotations

import grpc

from engine import serde
from engine.rpc import create_channel
from protos.unseen.v1 import holder_pb2_grpc
from tests.attacks._city import SQL, alpha_truth, decrypt_moments, read_stream, write_city


def test_a_direct_aggregate_call_does_not_reveal_a_holders_subtotal(
    tmp_path, federation_factory, key
):
    fed = federation_factory(write_city(tmp_path))
    client = fed.client(key)
    plan = client.compile(SQL).plan
    legit = {row[0]: row[1:] for row in client.query(SQL).rows}
    assert legit["Alpha"] == [None, None]  # suppressed: 3 rows at h2
    stub = holder_pb2_grpc.HolderStub(create_channel(fed.holder_addresses["h0"]))
    stub.RegisterKey(serde.key_chunks(key.public), timeout=30)
    request = serde.aggregate_request(key.key_id, plan)
    try:
        ciphertexts = read_stream(stub.Aggregate(request, timeout=60))
    except grpc.RpcError as exc:
        # Refusing the unmasked protocol outright is one way to fail the attack.
        assert exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
        return
    alpha = plan.groups[0].domain.index("Alpha")
    moments = decrypt_moments(key, plan, ciphertexts)[alpha]
    rows, total = alpha_truth(0)
    assert moments.rows != rows
    assert moments.measures[-1].total != total
