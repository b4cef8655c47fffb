"""Attacker: the analyst, holding vouchers for a governed federation. It scores with
weight ciphertexts the issuer did not approve:

* a voucher that approves no model at all;
* its own encryption of the approved real weights (a substitution the holders
  cannot tell apart by looking: same features, same values, different ciphertext);
* a crafted complex weight ``w + i·c`` (CKKS slots are complex), which would return
  ``Σ w·x`` in the real part and the raw feature ``Σ c·x`` in the imaginary part.

It must learn nothing beyond the approved model's scores: every holder refuses a
weight ciphertext whose digest the voucher does not name (PERMISSION_DENIED, logged).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tenseal.sealapi as sealapi

from tests.governance_fixtures import ACCOUNTS, build_world, entries, start_in_process
from unseen.engine.crypto import ckks
from unseen.engine.errors import RemoteError
from unseen.engine.governance.approval import ApprovedWeights
from unseen.engine.query.model import parse_model
from unseen.oracle.plaintext import plaintext_scores

MODEL = {
    "entity": "account",
    "features": [{"table": "power", "column": "kwh", "weight": -2e-4, "default": 123.0}],
    "intercept": 0.3,
    "link": "identity",
}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    federation = start_in_process(build_world(tmp_path_factory.mktemp("approval")))
    yield federation
    federation.close()


def _complex_weight(key, real: float, imag_slot: int) -> bytes:
    """``Enc(real + i·[slot == imag_slot])`` as a TenSEAL vector, crafted through SEAL."""
    context = key.secret.seal_context().data
    plain = sealapi.Plaintext()
    values = [complex(real, 1.0 if i == imag_slot else 0.0) for i in range(ckks.PARAMS.slots)]
    # At the scale holders require (ckks.weight_scale): only the digest check is left.
    scale = ckks.weight_scale(key.secret, 1)
    sealapi.CKKSEncoder(context).encode(values, scale, plain)
    cipher = sealapi.Ciphertext(context)
    sealapi.Encryptor(context, key.secret.public_key().data).encrypt(plain, cipher)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c")
        cipher.save(path)
        raw = Path(path).read_bytes()
    # TenSEAL's vector message: packed size (field 1), SEAL ciphertext (2), scale (3).
    template = bytes(ckks.encrypt(key.secret, np.zeros(ckks.PARAMS.slots), scale).serialize())
    head = template[: template.index(b"\x12")]
    scale = template[-9:]
    return head + b"\x12" + _varint(len(raw)) + raw + scale


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _refused(call, *args):
    with pytest.raises(RemoteError) as info:
        call(*args)
    assert info.value.code == "PERMISSION_DENIED", str(info.value)
    return info.value


def test_a_voucher_without_an_approved_model_admits_no_score(fed, key):
    world = fed.world
    client = fed.client(key, world.vouchers(key.key_id, ["grid"]))
    err = _refused(client.score, parse_model(MODEL), ACCOUNTS[:3])
    assert "approves no model" in str(err)


def test_the_approved_model_scores_and_matches_numpy(fed, key):
    world = fed.world
    model = parse_model(MODEL)
    client = fed.client(key, world.vouchers(key.key_id, ["grid"]))
    approval, weights = world.approve(client, model)
    client.vouchers = world.vouchers(key.key_id, ["grid"], model=approval)
    result = client.score(model, ACCOUNTS[:5], weights)
    expected = plaintext_scores(world.reference, model, ACCOUNTS[:5])
    assert np.max(np.abs(np.array([r[1] for r in result.rows]) - expected)) < 1e-6


@pytest.mark.parametrize("crafted", ["own-encryption", "complex-weight"])
def test_weights_the_issuer_did_not_encrypt_are_refused(fed, key, crafted):
    world = fed.world
    model = parse_model(MODEL)
    client = fed.client(key, world.vouchers(key.key_id, ["grid"]))
    approval, approved = world.approve(client, model)
    weight = model.features[0].weight * 2.0 ** approved.exponents[0]
    if crafted == "own-encryption":
        scale = ckks.weight_scale(key.secret, 1)
        forged = bytes(
            ckks.encrypt(key.secret, np.full(ckks.PARAMS.slots, weight), scale).serialize()
        )
    else:
        # Slot 0's imaginary part would carry entity 0's raw kwh.
        forged = _complex_weight(key, weight, 0)
    swapped = ApprovedWeights(key.key_id, approved.exponents, (forged,))
    client.vouchers = world.vouchers(key.key_id, ["grid"], model=approval)
    before = entries(world.ledgers["grid"])
    err = _refused(client.score, model, ACCOUNTS[:5], swapped)
    assert "only weights its issuer encrypted may be used" in str(err)
    logged = entries(world.ledgers["grid"])[len(before) :]
    assert [(e.kind, e.outcome) for e in logged] == [("score", "refused")]
    # The refusal is about the weights: the issuer's own ciphertexts still score.
    assert len(client.score(model, ACCOUNTS[:5], approved).rows) == 5
