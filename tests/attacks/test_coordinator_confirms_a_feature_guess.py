"""Attacker: the coordinator (no key; possibly colluding with the analyst). It sees
each holder's encrypted weights ``Enc(w·2^e)`` and each partial score the holder
returns. Products of ciphertexts by plaintexts are deterministic, so without fresh
randomness it could recompute ``Enc(w·2^e) · (x'·2^-e)`` for a guess ``x'`` of a
holder's features and compare ciphertexts: a match confirms the guess.

It must learn nothing: every partial score leaves the holder re-randomised, so no
recomputation from a guess — even the right one — reproduces it, in either of the
ciphertext's two polynomials (flooding changes only the first: a holder that
flooded without re-randomising would still hand out the products' second one). The analyst, who
decrypts, must see zeros in every slot past the last requested entity.
"""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto import ckks
from unseen.engine.crypto.partials import PartialScorer
from unseen.engine.query.model import parse_model

SCHEMA = [("account", "VARCHAR"), ("kwh", "DOUBLE")]
ROWS = [(f"acct-{i:03d}", 100.0 + 3 * i) for i in range(150)]
MODEL = {"entity": "account", "features": [{"table": "power", "column": "kwh", "weight": 0.5}]}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    path = write_shard(tmp_path_factory.mktemp("guess") / "power.csv", SCHEMA, ROWS)
    fed = start_federation({"grid": {"power": path}})
    yield fed
    fed.close()


def _partial(grid, key, ids):
    client = grid.client(key)
    model_id, _ = client.register_model(parse_model(MODEL), ids)
    node = grid.holders["grid"]
    blocks, _ = node.score(key.key_id, model_id, ids)
    return node._models[model_id], list(blocks)


def _polynomial(cipher, index: int) -> list[int]:
    """Every 61st coefficient of one of the ciphertext's polynomials (all limbs)."""
    size = cipher.poly_modulus_degree() * cipher.coeff_modulus_size()
    return [cipher[index * size + i] for i in range(0, size, 61)]


def test_a_right_guess_of_the_features_does_not_reproduce_the_partial(grid, key):
    ids = [r[0] for r in ROWS[:40]]
    model, blocks = _partial(grid, key, ids)
    public = ts.context_from(ckks.public_bytes(key.secret))
    scorer = PartialScorer(public, [ts.ckks_vector_from(public, model.weights[0])])
    guess = np.zeros((ckks.PARAMS.slots, 1))
    guess[: len(ids), 0] = np.array([r[1] for r in ROWS[:40]]) * 2.0 ** -model.exponents[0]
    recomputed = scorer.unmasked(guess, ckks.PARAMS.slots)
    theirs = ts.ckks_vector_from(public, blocks[0]).ciphertext()[0]
    ours = ts.ckks_vector_from(public, recomputed).ciphertext()[0]
    assert ours.parms_id() == theirs.parms_id()  # same level: the comparison is fair
    assert recomputed != blocks[0]
    assert _polynomial(ours, 0) != _polynomial(theirs, 0)
    assert _polynomial(ours, 1) != _polynomial(theirs, 1)
    # The same guess does reproduce the unmasked products: the attack is real.
    assert scorer.unmasked(guess, ckks.PARAMS.slots) == recomputed
    # ... and yet the holder's answer is the right one.
    values = ckks.decrypt(key.secret, blocks[0])
    assert np.allclose(values[:40], 0.5 * np.array([r[1] for r in ROWS[:40]]), atol=1e-6)


def test_slots_past_the_last_entity_decrypt_to_zero(grid, key):
    ids = [r[0] for r in ROWS[:7]]
    _, blocks = _partial(grid, key, ids)
    values = ckks.decrypt(key.secret, blocks[0])
    assert np.allclose(values[:7], 0.5 * np.array([r[1] for r in ROWS[:7]]), atol=1e-6)
    assert np.max(np.abs(values[7:])) < 1e-6
