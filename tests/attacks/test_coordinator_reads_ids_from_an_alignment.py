"""Attacker: the coordinator, which relays every PSI message of an alignment.

It keeps the bank's request and the holder's reply (setup and response) and
looks for the ids in them, in the clear or hashed (SHA-256), to learn which
enterprises were the bank's borrowers or which the holder has. It must learn
only sizes: every id travels blinded under a key the coordinator never holds.
"""

from __future__ import annotations

import hashlib

from unseen.engine.training.psi import psi_answer, psi_intersection, psi_request


def test_relayed_alignment_messages_carry_no_id():
    bank = [f"91440000{i:04d}X" for i in range(40)]
    holder = [f"91440000{i:04d}X" for i in range(20, 90)]
    client, request = psi_request(bank)
    answer = psi_answer(holder, request)
    relayed = request + answer.setup + answer.response
    for entity in {*bank, *holder}:
        raw = entity.encode()
        assert raw not in relayed
        assert hashlib.sha256(raw).digest() not in relayed
        assert hashlib.sha256(raw).hexdigest().encode() not in relayed
    # ... while the bank, holding the blinding key, still aligns exactly.
    assert psi_intersection(client, answer) == bank[20:]


def test_two_alignments_of_the_same_ids_cannot_be_linked():
    ids = [f"acct-{i}" for i in range(30)]
    _, first = psi_request(ids)
    _, second = psi_request(ids)
    # Fresh blinding keys: not one blinded item repeats across requests.
    assert first[:64] != second[:64]
    chunks = {first[i : i + 33] for i in range(0, len(first) - 33, 33)}
    assert not any(second[i : i + 33] in chunks for i in range(0, len(second) - 33, 33))
