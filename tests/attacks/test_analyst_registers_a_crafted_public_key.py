"""Attacker: an analyst, colluding with the coordinator. It registers, over gRPC in a
quick-start federation, a CKKS public key it crafted from its own secret key:
``(b, a) = (-s, 1)``. It has the right parameters and decrypts correctly, so a check of
parameters passes it. The holder re-randomises each partial score by adding a fresh
encryption of zero under that key, whose second polynomial ``u·a + e1 = u + e1`` is
small and rounds to exactly zero at the score's level: the partial's second
polynomial leaves the holder unhidden. The coordinator, who sees the partial and the
encrypted weights, recomputes ``Enc(w)·x'`` for a guess ``x'`` of the holder's feature
column and compares second polynomials: for the right guess they agree up to rounding,
for a guess off by 1e-3 at one entity they differ near 2^59. Flooding covers the first
polynomial only and does not help.

It must learn nothing: nodes accept a public key only in SEAL's seeded form (its
random half ``a`` is SEAL's expansion of a 64-byte seed, so no analyst can choose it,
:mod:`unseen.engine.crypto.seeded`), and a key stored in full is refused at
registration with a readable reason — before anything reaches data.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto import bfv, ckks, registration
from unseen.engine.crypto.flooding import _header, _saved_version
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.crypto.partials import PartialScorer
from unseen.engine.errors import UnseenError
from unseen.engine.query.model import parse_model

SCHEMA = [("account", "VARCHAR"), ("kwh", "DOUBLE")]
ROWS = [(f"acct-{i:03d}", 100.0 + 3 * i) for i in range(150)]
MODEL = {"entity": "account", "features": [{"table": "power", "column": "kwh", "weight": 0.5}]}
ENTITIES = 40


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    path = write_shard(tmp_path_factory.mktemp("crafted") / "power.csv", SCHEMA, ROWS)
    fed = start_federation({"grid": {"power": path}})
    yield fed
    fed.close()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def _replace_public_key(context: bytes, blob: bytes) -> bytes:
    """TenSEAL context bytes whose field public_context.public_key is ``blob``.

    The context must start with field 1 (encryption parameters), then field 2.
    """
    assert context[0] == 0x0A
    length, at = _read_varint(context, 1)
    at += length
    assert context[at] == 0x12  # public_context
    inner_length, inner_at = _read_varint(context, at + 1)
    inner = context[inner_at : inner_at + inner_length]
    assert inner[0] == 0x0A  # public_key
    key_length, key_at = _read_varint(inner, 1)
    inner = b"\x0a" + _varint(len(blob)) + blob + inner[key_at + key_length :]
    return context[:at] + b"\x12" + _varint(len(inner)) + inner + context[inner_at + inner_length :]


def crafted_key() -> AnalystKey:
    """A key whose registered CKKS public key is ``(-s, 1)``, stored in full."""
    honest = AnalystKey.generate()
    seal = honest.secret.seal_context().data
    key_data = seal.key_context_data()
    moduli = [m.value() for m in key_data.parms().coeff_modulus()]
    degree = key_data.parms().poly_modulus_degree()
    plain = honest.secret.secret_key().data.data()
    s = np.fromiter((plain[i] for i in range(plain.coeff_count())), dtype=np.uint64)
    s = s.reshape(len(moduli), degree)
    b = np.stack([(np.uint64(q) - s[j]) % np.uint64(q) for j, q in enumerate(moduli)])
    a = np.ones_like(b)
    version = _saved_version(sealapi.Ciphertext(seal))
    data = np.concatenate([b.reshape(-1), a.reshape(-1)])
    array = np.uint64(data.size).tobytes() + data.astype("<u8").tobytes()
    array = _header(version, 16 + len(array)) + array
    members = b"".join(
        (
            np.asarray(key_data.parms_id(), dtype="<u8").tobytes(),
            b"\x01",
            np.asarray([2, degree, len(moduli)], dtype="<u8").tobytes(),
            np.float64(1.0).tobytes(),
            np.uint64(1).tobytes(),
            array,
        )
    )
    blob = _header(version, 16 + len(members)) + members
    full = bytes(
        honest.secret.serialize(
            save_public_key=True,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
    )
    context = _replace_public_key(full, blob)
    # It is a valid key: TenSEAL loads it, and what it encrypts the analyst decrypts.
    loaded = ts.context_from(context)
    vector = ts.ckks_vector(loaded, [1.5, -2.5])
    vector.link_context(honest.secret)
    assert np.allclose(vector.decrypt(), [1.5, -2.5], atol=1e-6)
    public = registration.join(context, bfv.public_bytes(honest.aggregate_secret))
    return dataclasses.replace(honest, public=public)


def _second_polynomial_gap(public: ts.Context, theirs: bytes, ours: bytes) -> int:
    """Largest centred coefficient of the difference of the two second polynomials."""
    seal = public.seal_context().data
    a = ts.ckks_vector_from(public, theirs).ciphertext()[0]
    b = ts.ckks_vector_from(public, ours).ciphertext()[0]
    try:
        sealapi.Evaluator(seal).sub_inplace(a, b)
    except RuntimeError as exc:
        # SEAL refuses a difference whose second polynomial is exactly zero.
        assert "transparent" in str(exc)
        return 0
    sealapi.Evaluator(seal).transform_from_ntt_inplace(a)
    moduli = [m.value() for m in seal.get_context_data(a.parms_id()).parms().coeff_modulus()]
    degree = a.poly_modulus_degree()
    worst = 0
    for limb, q in enumerate(moduli):
        for i in range(0, degree, 7):
            value = a[degree * len(moduli) + limb * degree + i]
            worst = max(worst, q - value if value > q // 2 else value)
    return worst


def attack(grid, key: AnalystKey) -> tuple[int, int]:
    """Register ``key``, have the holder score, and compare a right and a wrong guess.

    Returns the gaps (largest coefficient of the second polynomials' difference) of
    the right guess and of a guess off by 1e-3 at one entity.
    """
    ids = [r[0] for r in ROWS[:ENTITIES]]
    model_id, _ = grid.client(key).register_model(parse_model(MODEL), ids)
    node = grid.holders["grid"]
    blocks, _ = node.score(key.key_id, model_id, ids)  # what the coordinator relays
    partial = next(iter(blocks))
    model = node._models[model_id]
    public = ts.context_from(registration.split(key.public).ckks)  # what the coordinator holds
    scorer = PartialScorer(public, [ts.ckks_vector_from(public, model.weights[0])])
    gaps = []
    for off in (0.0, 1e-3):
        values = np.array([r[1] for r in ROWS[:ENTITIES]])
        values[7] += off
        guess = np.zeros((ckks.PARAMS.slots, 1))
        guess[:ENTITIES, 0] = values * 2.0 ** -model.exponents[0]
        gaps.append(
            _second_polynomial_gap(public, partial, scorer.unmasked(guess, ckks.PARAMS.slots))
        )
    return gaps[0], gaps[1]


def test_a_crafted_public_key_is_refused_before_any_score(grid):
    key = crafted_key()
    try:
        right, wrong = attack(grid, key)
    except UnseenError as refused:
        message = str(refused)
        assert "stored in full" in message and "\n" not in message
        assert key.key_id not in grid.holders["grid"].keys
        return
    pytest.fail(
        f"the crafted key was accepted: a right guess leaves a gap of 2^{np.log2(right + 1):.0f}"
        f" in the second polynomial, a wrong one 2^{np.log2(wrong + 1):.0f}"
        + (": the guess is confirmed" if right < 2**20 < wrong else "")
    )


def test_an_honest_key_confirms_no_guess(grid, key):
    """The comparison the attacker runs, under a registered (seeded) key: a right
    guess is as far from the holder's partial as a wrong one."""
    right, wrong = attack(grid, key)
    assert right > 2**40 and wrong > 2**40
