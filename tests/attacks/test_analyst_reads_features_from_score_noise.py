"""Attacker: the analyst. It holds the secret key and the weight ciphertexts its
model registered, so it can recompute the holder's products for any guess of the
holder's features and decrypt them: the error of ``Enc(w)·x`` depends on ``x``,
not only on the score ``Σ w·x``. It sends an ordinary score request for entities
whose two features it knows up to a swap (``a, b`` or ``b, a`` — the same score
under its equal weights), decrypts the partial score, and compares it, below the
score's own precision, with the decryption of the products for each guess.

It must learn nothing beyond the scores: the holder floods every partial score
with fresh uniform noise in the coefficient domain (unseen.engine.crypto.flooding),
at s >= 30 bits with the default (N = 16384) key, so the two guesses fit the
answer equally well: the statistic is standard normal. The attacker works below
the decoded score (subtracting ciphertexts, decoding at scale 1), where the
computed error lives at the smudging key's 2^181 output scale. Without flooding (main before
issue 11) the right guess fits better by dozens of standard deviations, because
re-randomisation adds noise only as large as the computed error itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto import ckks
from unseen.engine.crypto.partials import PartialScorer
from unseen.engine.query.model import parse_model

COUNT = 400
SCHEMA = [("account", "VARCHAR"), ("a", "DOUBLE"), ("b", "DOUBLE")]
_rng = np.random.default_rng(20261129)
_A = _rng.uniform(1.0, 1000.0, COUNT).round(3)
_B = _rng.uniform(1.0, 1000.0, COUNT).round(3)
# The same largest value in both columns: both features get the same exponent,
# so a swap leaves every score unchanged.
_B[np.argmax(_B)] = float(np.max(_A))
ROWS = [(f"acct-{i:04d}", float(x), float(y)) for i, (x, y) in enumerate(zip(_A, _B, strict=True))]
MODEL = {
    "entity": "account",
    "features": [
        {"table": "ledger", "column": "a", "weight": 0.5},
        {"table": "ledger", "column": "b", "weight": 0.5},
    ],
}
# How many standard deviations apart the attacker needs the two guesses to be.
DECISIVE = 5.0


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = write_shard(tmp_path_factory.mktemp("noise") / "ledger.csv", SCHEMA, ROWS)
    fed = start_federation({"bank": {"ledger": path}})
    yield fed
    fed.close()


def _residual(key, answer: bytes, guess: bytes) -> np.ndarray:
    """``answer - guess`` below the score: the two ciphertexts subtracted, decrypted and
    decoded at scale 1, so the difference (some 2^100 coefficient units at the
    smudging key's output scale of 2^181) is not lost in the doubles of a decoded
    score. Real and imaginary parts both: the flood must cover both."""
    seal = key.secret.seal_context().data
    ours = ts.ckks_vector_from(key.secret, answer).ciphertext()[0]
    theirs = ts.ckks_vector_from(key.secret, guess).ciphertext()[0]
    diff = sealapi.Ciphertext(seal)
    sealapi.Evaluator(seal).sub(ours, theirs, diff)
    diff.scale = 1.0
    plain = sealapi.Plaintext()
    sealapi.Decryptor(seal, key.secret.secret_key().data).decrypt(diff, plain)
    values = np.array(sealapi.CKKSEncoder(seal).decode_complex(plain))
    return np.concatenate([values.real, values.imag])


def _separation(key, model, answer: bytes, ids: list[str]) -> float:
    """The attacker's statistic: how much better the right guess explains the answer,
    in standard deviations of the residual (about ``||delta|| / 2 sigma`` plus unit noise)."""
    public = ts.context_from(ckks.public_bytes(key.secret))
    weights = [ts.ckks_vector_from(public, w) for w in model.weights]
    scorer = PartialScorer(public, weights)
    slots = ckks.PARAMS.slots
    scaled = np.exp2(-np.asarray(model.exponents, dtype=np.float64))
    guesses = []
    for first, second in ((_A, _B), (_B, _A)):
        block = np.zeros((slots, 2))
        block[: len(ids), 0] = first[: len(ids)] * scaled[0]
        block[: len(ids), 1] = second[: len(ids)] * scaled[1]
        guesses.append(scorer.unmasked(block, slots))
    right = _residual(key, answer, guesses[0])
    # wrong - right, computed exactly (wrong @ wrong - right @ right would cancel
    # catastrophically under a flood some 2^45 times the difference).
    delta = _residual(key, guesses[0], guesses[1])
    sigma = float(np.std(right))
    return float((2.0 * right @ delta + delta @ delta) / (2.0 * sigma * np.linalg.norm(delta)))


def test_the_noise_of_a_partial_score_does_not_tell_two_feature_guesses_apart(bank, key):
    ids = [r[0] for r in ROWS]
    client = bank.client(key)
    model_id, _ = client.register_model(parse_model(MODEL), ids)
    node = bank.holders["bank"]
    model = node._models[model_id]
    assert model.exponents[0] == model.exponents[1]  # the swap keeps every score
    blocks, _ = node.score(key.key_id, model_id, ids)
    answer = next(iter(blocks))
    # The answer is right (the scores are all the attacker may learn) ...
    values = ckks.decrypt(key.secret, answer)
    assert np.allclose(values[:COUNT], 0.5 * (_A + _B), atol=1e-6)
    # ... and its noise no longer separates the true features from the swapped ones.
    assert abs(_separation(key, model, answer, ids)) < DECISIVE


def test_without_the_flood_the_attack_reads_the_features(bank, key, monkeypatch):
    """The statistic is sharp: with the flood switched off (the holder re-randomises
    only, as before issue 11) the same request tells the guesses apart decisively."""
    from unseen.engine.crypto.flooding import Flooder

    monkeypatch.setattr(Flooder, "flood", lambda self, cipher, bits, key=None: None)
    ids = [r[0] for r in ROWS]
    client = bank.client(key)
    model_id, _ = client.register_model(parse_model(MODEL), ids)
    node = bank.holders["bank"]
    blocks, _ = node.score(key.key_id, model_id, ids)
    separation = _separation(key, node._models[model_id], next(iter(blocks)), ids)
    assert separation > DECISIVE
