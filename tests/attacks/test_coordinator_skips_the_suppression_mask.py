"""Attacker: a coordinator colluding with the analyst (it shares every ciphertext it sees).

What it sends: the analyst's plan to every holder's round 1 (``PrepareAggregate``),
then round 2 (``Aggregate`` with the mask round) once with an EMPTY suppressed
set, hoping the holders encrypt the small group after all, and once with the
honest union; it adds the holders' ciphertexts itself and hands the sum to
the analyst, who decrypts it with its key.

What it must learn: nothing about a suppressed group. A holder refuses a
round 2 whose suppressed set misses a group failing its own rules
(unseen.engine.privacy.suppression: here the power sums fail ``moments``), and with the
honest union every holder zeroes the group before it masks and encrypts, so
its slots in the sum decrypt to zero, whatever the data. The reasons reach
the coordinator from round 1 only (``failing_reasons``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.attacks.small_group import SQL, start_small_group
from unseen.engine.crypto import bfv
from unseen.engine.errors import RemoteError
from unseen.engine.privacy.masks import NONCE_BYTES, reduce_slots
from unseen.engine.query.layout import layout_for, unpack
from unseen.engine.transport.peers import HolderPeer


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    fed, reference = start_small_group(tmp_path_factory.mktemp("mask"))
    yield fed, reference
    fed.close()


def _round_one(peers, key, plan, query_id):
    failing = {}
    for peer in peers:
        groups, _ = peer.prepare_aggregate(key.key_id, plan, query_id)
        failing.update(groups)
    return failing


def test_raw_holder_answers_hold_nothing_of_a_suppressed_group(federation, key):
    fed, _ = federation
    plan = fed.client(key).compile(SQL).plan
    layout = layout_for(plan)
    small = plan.groups[0].domain.index("Small")
    peers = [HolderPeer(address) for address in fed.holder_addresses.values()]
    participants = []
    for peer in peers:
        mask_key = peer.catalog().mask_key
        assert mask_key is not None
        participants.append(mask_key)
        peer.register_key(key.public)

    # Round 2 without the small group in the suppressed set: the holder that has it refuses.
    failing = _round_one(peers, key, plan, "q-skip")
    assert failing == {small: "moments"}
    nonce = os.urandom(NONCE_BYTES)
    with pytest.raises(RemoteError) as info:
        for peer in peers:
            peer.masked_aggregate(key.key_id, "q-skip", nonce, participants, [])
    assert "suppression rules are not in the suppressed set" in str(info.value)

    # The honest union: the sum of every answer holds nothing of the small group.
    failing = _round_one(peers, key, plan, "q-honest")
    nonce = os.urandom(NONCE_BYTES)
    total = np.zeros(layout.ciphertexts * plan.codec.slots, dtype=np.int64)
    for peer in peers:
        answer = peer.masked_aggregate(key.key_id, "q-honest", nonce, participants, sorted(failing))
        assert answer.suppressed == (small,)
        total += np.concatenate([bfv.decrypt(key.aggregate_secret, c) for c in answer.ciphertexts])
    moments = unpack(plan, layout, reduce_slots(total))
    assert moments[small].rows == 0
    assert all(m.count == 0 and not m.total for m in moments[small].measures)
    big = plan.groups[0].domain.index("Big")
    assert moments[big].rows == 120
