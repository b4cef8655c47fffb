"""Attacker: an analyst colluding with the provincial coordinator, against a city's subtotal.

The province (governed: mTLS from one CA, every leaf requiring vouchers that
name all the province's leaves as the federation) has 2 cities over 2 holders
each. The colluder holds the analyst's secret key, its vouchers and the
provincial coordinator's certificate, so it sees every ciphertext the province
sees and can call a city coordinator's holder service directly. It tries:

1. to decrypt each city's answer, as relayed to the province: it must read
   uniformly random values modulo 2^32 (every slot, not only the used ones),
   while the sum over the cities decrypts to small, exact limbs;
2. to ask one city with a mask round listing only that city's leaves, whose
   masks would then cancel inside the city: every leaf must refuse;
3. to ask the city's own coordinator service for the city's total as an
   analyst: refused the same way;
4. to read the group that is small at one leaf (2 rows of ``aerospace``) by
   leaving it out of round 2's suppressed set: that leaf must refuse.

It must learn nothing beyond the province's suppressed, combined answer.
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from unseen.engine.crypto import bfv
from unseen.engine.errors import RemoteError
from unseen.engine.privacy.masks import reduce_slots
from unseen.engine.query.catalog import merge
from unseen.engine.query.plan import SlotCodec
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport.peers import HolderPeer
from unseen.nodes.vouchers import route_vouchers, vouchers_for
from unseen.province import SMALL_INDUSTRY, start_province, write_province

# Limbs are signed 20-bit per holder: a true sum over four leaves stays below 2^22.
SMALL = 1 << 22


@pytest.fixture(scope="module")
def province(tmp_path_factory, key):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("colluder")
    data = write_province(work / "data", cities=2, holders=lambda i: 2)
    running = start_province(data, work, governed=True, analyst=key)
    peers = {
        city: HolderPeer(address, running.tls["province"])
        for city, address in running.city_addresses.items()
    }
    yield data, running, peers
    for peer in peers.values():
        peer.close()
    running.close()


def _rounds(province, key, sql, participants_of, suppressed_of):  # type: ignore[no-untyped-def]
    """Run both rounds at every city as the colluding province; the cities' ciphertexts."""
    _, running, peers = province
    catalogs = {city: peer.catalog() for city, peer in peers.items()}
    plan = compile_sql(sql, merge(list(catalogs.values())), SlotCodec(slots=bfv.PARAMS.slots)).plan
    routed = route_vouchers(running.vouchers)
    query_id = secrets.token_hex(16)
    failing = {}
    for city, peer in peers.items():
        peer.register_key(key.public)
        names = {leaf.holder for leaf in catalogs[city].leaves}
        failing[city], _ = peer.prepare_aggregate(
            key.key_id, plan, query_id, vouchers_for(names, routed), subject="analyst"
        )
    nonce = os.urandom(32)
    every_leaf = [leaf for catalog in catalogs.values() for leaf in catalog.leaves]
    answers = {}
    for city, peer in peers.items():
        answers[city] = peer.masked_aggregate(
            key.key_id,
            query_id,
            nonce,
            participants_of(city, catalogs, every_leaf),
            suppressed_of(failing),
            subject="analyst",
        ).ciphertexts
    return answers


def _slots(key, ciphertexts) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([bfv.decrypt(key.aggregate_secret, c) for c in ciphertexts])


SQL = "SELECT city, COUNT(*), SUM(kwh) FROM power GROUP BY city"


def _union(failing):  # type: ignore[no-untyped-def]
    return sorted({i for groups in failing.values() for i in groups})


def test_each_city_answer_decrypts_to_noise_and_only_their_sum_to_limbs(province, key):
    answers = _rounds(province, key, SQL, lambda city, cats, every: every, _union)
    per_city = {city: reduce_slots(_slots(key, cts)) for city, cts in answers.items()}
    for city, slots in per_city.items():
        small = np.mean(np.abs(slots) < SMALL)
        # Uniform modulo t (~2^40) puts 2^-17 of the slots below 2^22; a subtotal puts all.
        assert small < 0.01, f"{city}'s answer is readable: {small:.1%} of slots are small"
    total = reduce_slots(sum(_slots(key, cts) for cts in answers.values()))
    assert np.all(np.abs(total) < SMALL)  # the attack's own rounds are the honest protocol


def test_a_mask_round_of_one_citys_leaves_is_refused(province, key):
    def own_leaves(city, catalogs, every):  # type: ignore[no-untyped-def]
        return list(catalogs[city].leaves)

    with pytest.raises(RemoteError) as info:
        _rounds(province, key, SQL, own_leaves, _union)
    assert info.value.code == "PERMISSION_DENIED"
    assert "not the holders the voucher names" in info.value.reason


def test_the_city_coordinator_asked_directly_refuses_the_citys_total(province, key):
    data, running, _ = province
    city = next(iter(data.cities))
    with (
        running.client(key, address=running.city_addresses[city]) as client,
        pytest.raises(RemoteError) as info,
    ):
        client.query(SQL)
    assert info.value.code == "PERMISSION_DENIED"
    assert "not the holders the voucher names" in info.value.reason


def test_a_group_small_at_one_leaf_cannot_be_left_unsuppressed(province, key):
    sql = "SELECT industry, COUNT(*), SUM(kwh) FROM power GROUP BY industry"
    with pytest.raises(RemoteError) as info:
        _rounds(province, key, sql, lambda city, cats, every: every, lambda failing: [])
    assert info.value.code == "PERMISSION_DENIED"
    assert "not in the suppressed set" in info.value.reason
    # The group really is small at that leaf: the honest province suppresses it.
    _, running, _ = province
    with running.client(key) as client:
        rows = {r[0]: r[1:] for r in client.query(sql).rows}
    assert rows[SMALL_INDUSTRY] == [None, None]


def test_the_analyst_alone_may_not_call_a_citys_holder_service(province, key):
    """Without the province's certificate, the city's holder face is closed to the analyst."""
    data, running, _ = province
    city = next(iter(data.cities))
    peer = HolderPeer(running.city_addresses[city], running.tls["analyst"])
    try:
        catalog = peer.catalog()  # public, as a holder's
        plan = compile_sql(SQL, catalog, SlotCodec(slots=bfv.PARAMS.slots)).plan
        with pytest.raises(RemoteError) as info:
            peer.prepare_aggregate(key.key_id, plan, secrets.token_hex(16), running.vouchers)
    finally:
        peer.close()
    assert info.value.code == "PERMISSION_DENIED"
    assert "only to a coordinator" in info.value.reason
