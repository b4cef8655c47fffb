"""Attacker: the coordinator (no key) of a class-weighted training job. Each
round it relays the bank's ``Enc(c)`` to the holders and receives back each
holder's ``Enc(c)·(x_i·w/4)``. A ciphertext-plaintext product is deterministic:
holding ``Enc(c)``, the coordinator could recompute ``Enc(c)·p'`` for a guess
``p'`` of a holder's partial scores and compare bytes — a match confirms the
guess (a holder's scores under its secret weights, per entity).

It must learn nothing: the holder re-randomises each product before it leaves,
so even the right guess does not reproduce it, in either of the ciphertext's
polynomials. The bank, who decrypts the residual, still gets the exact value.
"""

from __future__ import annotations

import numpy as np
import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.training.vertical_lr import (
    BankTrainer,
    HolderTrainer,
    Layout,
    TrainSpec,
    batch_indices,
    class_weights,
)


def _polynomial(cipher, index: int) -> list[int]:
    """Every 61st coefficient of one of the ciphertext's polynomials (all limbs)."""
    size = cipher.poly_modulus_degree() * cipher.coeff_modulus_size()
    return [cipher[index * size + i] for i in range(0, size, 61)]


def test_a_right_guess_of_a_holders_partial_does_not_reproduce_its_product(key):
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 3))
    labels = (rng.random(300) < 0.2).astype(float)
    spec = TrainSpec(iterations=3, learning_rate=0.5, negative_weight=0.25)
    holder = HolderTrainer("h0", key.public, features, features[:0], spec, True)
    bank = BankTrainer(key.secret, labels, labels[:0], spec)
    holder.weights = rng.normal(size=3)  # weights the coordinator does not know
    sent = bank.label_part(0)
    weights = sent[len(sent) // 2 :]  # the Enc(c) blocks the coordinator relays
    product = holder.partial(0, weights)[0]

    public = ts.context_from(ckks.public_bytes(key.secret))
    rows = holder.train[batch_indices(len(holder.train), spec, 0)]
    guess = Layout.for_batch(len(rows), ckks.PARAMS.slots).spread(rows @ holder.weights / 4.0)
    recomputed = ts.ckks_vector_from(public, weights[0]) * guess.tolist()
    # The same guess does reproduce a product: the attack is real.
    again = ts.ckks_vector_from(public, weights[0]) * guess.tolist()
    assert again.serialize() == recomputed.serialize()

    theirs = ts.ckks_vector_from(public, product).ciphertext()[0]
    ours = recomputed.ciphertext()[0]
    assert ours.parms_id() == theirs.parms_id()  # same level: the comparison is fair
    assert _polynomial(ours, 0) != _polynomial(theirs, 0)
    assert _polynomial(ours, 1) != _polynomial(theirs, 1)
    # ... and yet the holder's product is the right value for the bank.
    c = class_weights(labels, spec, labels)
    expected = c * (holder.whitening.apply(features) @ holder.weights) / 4
    assert np.allclose(ckks.decrypt(key.secret, product)[:300], expected, atol=1e-6)
