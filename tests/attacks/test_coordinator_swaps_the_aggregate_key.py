"""Attacker: a certified coordinator colluding with another analyst, Mallory.

Governed federation (mTLS from one CA, vouchers granted to Alice's key id and
bound to her certificate name). Aggregates are encrypted under a BFV key,
scores under a CKKS key. The coordinator registers at the holders, before
Alice ever does, a registration made of Alice's CKKS public context and
*Mallory's* BFV public context, then runs both aggregate rounds itself with
Alice's vouchers and certificate name, hoping the holders encrypt Alice's
answer under a key Mallory can decrypt. Were an analyst's key id the hash of
its CKKS context alone (the BFV key a second, unbound registration), the
swapped registration would carry Alice's key id and every voucher would
match: Mallory would read the city totals. The key id is the SHA-256 of the
whole registration (``unseen.engine.crypto.registration``), so the swapped one
has its own id, which no voucher names: every holder refuses, and asking
under Alice's real key id gets answers Mallory cannot read.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tests.attacks._city import SQL, decrypt_moments, write_city
from unseen.engine.crypto import bfv, registration
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import CryptoError, RemoteError
from unseen.engine.governance.access import Governance
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.privacy.masks import NONCE_BYTES
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport.peers import HolderPeer
from unseen.engine.transport.tls import make_bundle
from unseen.nodes.holder import HolderNode, serve_holder


@pytest.fixture
def governed(tmp_path, key):  # type: ignore[no-untyped-def]
    files = make_bundle(
        tmp_path / "pki",
        [("h0", "holder"), ("h1", "holder"), ("h2", "holder"), ("coord", "coordinator")],
    )
    issuer = SigningKey.generate()
    servers, peers = [], []
    for name, tables in write_city(tmp_path / "data").items():
        node = HolderNode.quickstart(name, tables)
        node.governance = Governance(
            name, VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key})
        )
        server, port = serve_holder(node, "127.0.0.1:0", files[name])
        servers.append(server)
        peers.append(HolderPeer(f"localhost:{port}", files["coord"], timeout=60))
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    vouchers = [
        issue(
            issuer,
            grantee=key.key_id,
            holder=name,
            scope={"loans": {"city": ["group"], "amount": ["aggregate"]}},
            purpose="attack test",
            not_after=until,
            grantee_subject="alice",
        ).encode()
        for name in ("h0", "h1", "h2")
    ]
    yield peers, vouchers
    for peer in peers:
        peer.close()
    for server in servers:
        server.stop(None).wait()


def _both_rounds(peers, key_id, plan, vouchers):  # type: ignore[no-untyped-def]
    """The coordinator's protocol, run by hand: returns the summed answers' ciphertexts."""
    participants = [peer.catalog().mask_key for peer in peers]
    query_id = os.urandom(8).hex()
    failing: set[int] = set()
    for peer in peers:
        groups, _ = peer.prepare_aggregate(key_id, plan, query_id, vouchers, subject="alice")
        failing.update(groups)
    nonce = os.urandom(NONCE_BYTES)
    return [
        peer.masked_aggregate(
            key_id, query_id, nonce, participants, sorted(failing), subject="alice"
        ).ciphertexts
        for peer in peers
    ]


def test_a_swapped_aggregate_key_gets_no_answer_mallory_can_read(governed, key):
    peers, vouchers = governed
    mallory = AnalystKey.generate()
    swapped = registration.join(
        registration.split(key.public).ckks, registration.split(mallory.public).bfv
    )
    ids = {peer.register_key(swapped) for peer in peers}
    (swapped_id,) = ids
    assert swapped_id != key.key_id  # the id commits to the BFV key too
    plan = compile_sql(SQL, peers[0].catalog()).plan

    # Under the swapped registration's id: no voucher names it.
    with pytest.raises(RemoteError) as info:
        _both_rounds(peers, swapped_id, plan, vouchers)
    assert info.value.code == "PERMISSION_DENIED"

    # Under Alice's id the holders encrypt under Alice's own BFV key: noise to Mallory.
    for peer in peers:
        peer.register_key(key.public)
    answers = _both_rounds(peers, key.key_id, plan, vouchers)
    ctx = key.aggregate_secret
    summed = [
        bfv.serialize(bfv.add_all([bfv.load_ciphertext(ctx, c, bfv.PARAMS.slots) for c in cs]))
        for cs in zip(*answers, strict=True)
    ]
    with pytest.raises(CryptoError, match="out of the limbs' range"):
        decrypt_moments(mallory, plan, summed)
    # The same sum is Alice's answer: the holders did answer, to her key only.
    moments = decrypt_moments(key, plan, summed)
    assert moments[plan.groups[0].domain.index("Beta")].rows == 30
