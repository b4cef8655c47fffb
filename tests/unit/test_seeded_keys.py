"""Public keys in seeded form: what nodes accept, what they refuse, and old keys' upgrade."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from unseen.engine.crypto import bfv, ckks, registration, seeded
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import CryptoError


def _second_polynomial(ctx: ts.Context) -> list[int]:
    key = ctx.public_key().data.data()
    size = key.poly_modulus_degree() * key.coeff_modulus_size()
    return [key[size + i] for i in range(0, size, 97)]


def test_a_seeded_ckks_key_encrypts_what_the_analyst_decrypts(key):
    ctx = ckks.load_public_context(key.public)
    values = np.linspace(-3.0, 3.0, ckks.PARAMS.slots)
    cipher = bytes(ckks.encrypt(ctx, values).serialize())
    assert np.allclose(ckks.decrypt(key.secret, cipher), values, atol=1e-6)


def test_a_seeded_bfv_key_encrypts_what_the_analyst_decrypts(key):
    ctx = bfv.load_public_context(registration.split(key.public).bfv)
    values = np.arange(-2048, 2048, dtype=np.int64)
    (cipher,) = bfv.encrypt_all(ctx, [values])
    assert bfv.decrypt(key.aggregate_secret, cipher).tolist() == values.tolist()


def test_the_key_carries_a_seed_not_its_random_half(key):
    part = registration.split(key.public).ckks
    blob = seeded.public_key_field(part)
    seeded.check_seeded(blob)
    degree = ckks.PARAMS.poly_modulus_degree
    limbs = len(ckks.PARAMS.coeff_mod_bit_sizes)
    # One polynomial of 8-byte words plus headers and a 65-byte seed record: half a key.
    assert degree * limbs * 8 < len(blob) < degree * limbs * 8 + 1024
    # Two keys of the same secret have different seeds, hence different random halves.
    other = ckks.load_public_context(ckks.public_bytes(key.secret))
    assert _second_polynomial(other) != _second_polynomial(ckks.load_public_context(part))


def test_a_changed_seed_expands_to_another_key_that_no_longer_decrypts(key):
    """The seed is what SEAL expands: the analyst cannot pair its own a with it."""
    part = registration.split(key.public).ckks
    blob = seeded.public_key_field(part)
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    ctx = ckks.load_public_context(seeded.with_public_key(_without_key(part), flipped))
    assert _second_polynomial(ctx) != _second_polynomial(ckks.load_public_context(part))
    cipher = bytes(ckks.encrypt(ctx, np.ones(ckks.PARAMS.slots)).serialize())
    assert not np.allclose(ckks.decrypt(key.secret, cipher), 1.0, atol=1e-3)


def _without_key(part: bytes) -> bytes:
    ctx = ts.context_from(part)
    return bytes(ctx.serialize(save_public_key=False, save_relin_keys=False))


@pytest.mark.parametrize(
    "mangle, reason",
    [
        # The random half appended in full after the seeded one: no longer the seeded form.
        (lambda blob: blob + b"\x00" * 16, "stored in full"),
        # An unknown PRNG type would not expand.
        (lambda blob: blob[:-65] + b"\x00" + blob[-64:], "stored in full"),
        # Not in NTT form, as SEAL keeps keys (header 16 bytes, then the 32-byte parms_id).
        (lambda blob: blob[:48] + b"\x00" + blob[49:], "stored in full"),
        # Compressed: its layout could not be checked.
        (lambda blob: blob[:5] + b"\x02" + blob[6:], "stored in full"),
    ],
)
def test_malformed_seeded_keys_are_refused(key, mangle, reason):
    blob = seeded.public_key_field(registration.split(key.public).ckks)
    with pytest.raises(CryptoError, match=reason):
        seeded.check_seeded(mangle(blob))


def test_a_registration_from_before_seeded_keys_is_refused_in_one_line(key):
    parts = registration.split(key.public)
    full = bytes(key.secret.serialize(save_secret_key=False, save_relin_keys=False))
    legacy = b"".join(
        (
            registration.LEGACY_MAGIC,
            struct.pack(">I", len(full)),
            full,
            struct.pack(">I", len(parts.bfv)),
            parts.bfv,
        )
    )
    for refuse in (registration.split, ckks.load_public_context, KeyStore().register):
        with pytest.raises(CryptoError, match="predates seeded public keys") as refused:
            refuse(legacy)
        assert "\n" not in str(refused.value)


def test_a_key_directory_with_an_old_registration_is_upgraded_once(tmp_path, key):
    directory = tmp_path / "k"
    key.save(directory)
    full = bytes(key.secret.serialize(save_secret_key=False, save_relin_keys=False))
    bfv_full = bytes(key.aggregate_secret.serialize(save_secret_key=False, save_relin_keys=False))
    legacy = b"".join(
        (
            registration.LEGACY_MAGIC,
            struct.pack(">I", len(full)),
            full,
            struct.pack(">I", len(bfv_full)),
            bfv_full,
        )
    )
    (directory / "public.tenseal").write_bytes(legacy)
    upgraded = AnalystKey.load(directory)
    assert upgraded.public.startswith(registration.MAGIC)
    store = KeyStore()
    kid = store.register(upgraded.public)  # what every node now accepts
    assert kid == upgraded.key_id != ckks.key_id(legacy)
    assert AnalystKey.load(directory).key_id == upgraded.key_id  # upgraded once
    # The upgraded key keeps the analyst's secrets: it still decrypts what nodes encrypt.
    ctx = store.get(kid)
    cipher = bytes(ckks.encrypt(ctx, np.full(ckks.PARAMS.slots, 2.5)).serialize())
    assert np.allclose(ckks.decrypt(upgraded.secret, cipher), 2.5, atol=1e-6)
    assert upgraded.aggregate_secret.serialize(save_secret_key=True) == (
        key.aggregate_secret.serialize(save_secret_key=True)
    )


def test_sealapi_still_cannot_hand_out_a_seeded_key():
    """Why :mod:`unseen.engine.crypto.seeded` rebuilds the seed: the binding of
    ``create_public_key()`` returns a type pybind11 cannot convert. If this starts
    passing, use SEAL's own ``Serializable<PublicKey>`` instead."""
    ctx = ckks.new_secret_context()
    generator = sealapi.KeyGenerator(ctx.seal_context().data, ctx.secret_key().data)
    with pytest.raises(TypeError):
        generator.create_public_key()


def test_the_key_tenseal_loads_must_be_the_seed_checked(key, monkeypatch):
    """Second line of defence: were the single-key check fooled into checking one key
    while TenSEAL loads another (protobuf merges repeated fields, the last key wins),
    the comparison with SEAL's expansion of the checked seed still refuses."""
    good = registration.split(key.public).ckks
    full = bytes(key.secret.serialize(save_secret_key=False, save_relin_keys=False))
    _, start, _, end = next(f for f in seeded._fields(full) if f[0] == 2)
    monkeypatch.setattr(
        seeded, "_only", lambda fields, number: next(f for f in fields if f[0] == number)
    )
    with pytest.raises(CryptoError, match="not the one expanded from its seed"):
        seeded.load_context(good + full[start:end])
