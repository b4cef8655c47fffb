"""Attacker: the analyst, calling one holder directly (quick-start, loopback).

It registers its public key with holder ``h0`` and sends it the same aggregate
plan a coordinator would (the old one-round protocol), then the two masked
rounds itself, listing the real peers' published mask keys; it decrypts what
comes back with its own secret key. It must learn nothing about ``h0``'s
rows: in particular not the 40-row subtotal of ``Alpha``, a group the
federation suppresses (40 + 40 + 3 rows, k = 5). Listing ``h0`` alone is
refused (fewer than two participants).
"""

from __future__ import annotations

import os

import grpc
import numpy as np
import pytest

from tests.attacks._city import SQL, alpha_truth, decrypt_moments, read_stream, write_city
from unseen.engine.crypto import bfv
from unseen.engine.errors import CryptoError
from unseen.engine.privacy.masks import MASK_BITS, reduce_slots
from unseen.engine.query.layout import layout_for
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.v1 import catalog_pb2, holder_pb2_grpc


@pytest.fixture
def attack(tmp_path, federation_factory, key):  # type: ignore[no-untyped-def]
    fed = federation_factory(write_city(tmp_path))
    client = fed.client(key)
    plan = client.compile(SQL).plan
    legit = {row[0]: row[1:] for row in client.query(SQL).rows}
    assert legit["Alpha"] == [None, None]  # suppressed: 3 rows at h2
    stubs = {
        name: holder_pb2_grpc.HolderStub(create_channel(address))
        for name, address in fed.holder_addresses.items()
    }
    stubs["h0"].RegisterKey(serde.key_chunks(key.public), timeout=30)
    return plan, stubs


def _masked_round(key, plan, stubs, names):  # type: ignore[no-untyped-def]
    """Round 1 and round 2 at h0 with the published mask keys of ``names``."""
    query_id = os.urandom(8).hex()
    request = serde.aggregate_request(key.key_id, plan, request_id=query_id)
    stubs["h0"].PrepareAggregate(request, timeout=60)
    keys = [
        serde.catalog_from_proto(
            stubs[n].GetCatalog(catalog_pb2.GetCatalogRequest(), timeout=10)
        ).mask_key
        for n in names
    ]
    masked = serde.mask_round_request(key.key_id, query_id, os.urandom(32), keys, [])
    return read_stream(stubs["h0"].Aggregate(masked, timeout=60))


def test_the_unmasked_one_round_protocol_is_refused(attack, key):
    plan, stubs = attack
    request = serde.aggregate_request(key.key_id, plan)
    with pytest.raises(grpc.RpcError) as info:
        read_stream(stubs["h0"].Aggregate(request, timeout=60))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_masked_answer_alone_is_uniformly_random(attack, key):
    plan, stubs = attack
    ciphertexts = _masked_round(key, plan, stubs, ["h0", "h1", "h2"])
    slots = np.concatenate([bfv.decrypt(key.aggregate_secret, c) for c in ciphertexts])
    layout = layout_for(plan)
    used = reduce_slots(slots)[: layout.total_slots]
    rows, _ = alpha_truth(0)
    alpha = plan.groups[0].domain.index("Alpha")
    record = used[alpha * layout.record_width : (alpha + 1) * layout.record_width]
    assert record[0] != rows  # the low limb of Alpha's row count
    # Every used slot reads as a uniform value modulo t, not a 20-bit limb: with
    # 24 slots, all of them below 2^20 in magnitude would happen with chance 2^-288.
    assert np.sum(np.abs(used) >= 2**20) >= layout.total_slots // 2
    assert np.max(np.abs(used)) < 2 ** (MASK_BITS - 1) + 1


def test_a_holder_does_not_answer_alone(attack, key):
    plan, stubs = attack
    with pytest.raises(grpc.RpcError) as info:
        _masked_round(key, plan, stubs, ["h0"])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "at least 2" in info.value.details()


def test_old_style_decryption_of_a_masked_answer_fails(attack, key):
    plan, stubs = attack
    ciphertexts = _masked_round(key, plan, stubs, ["h0", "h1"])
    try:
        moments = decrypt_moments(key, plan, ciphertexts)
    except CryptoError:
        return  # masked slots are not near small integers: nothing to recombine
    alpha = plan.groups[0].domain.index("Alpha")
    assert (moments[alpha].rows, moments[alpha].measures[-1].total) != alpha_truth(0)
