"""Analyst keys on disk and the vetting of public contexts."""

from __future__ import annotations

import os
import stat

import pytest
import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey, default_key_dir, load_or_create
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import ConfigError, CryptoError, UnknownKeyError


def test_key_files_are_private_and_reload_to_the_same_id(tmp_path, key):
    directory = tmp_path / "k"
    key.save(directory)
    assert stat.S_IMODE((directory / "secret.tenseal").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    again = AnalystKey.load(directory)
    assert again.key_id == key.key_id
    assert again.secret.has_secret_key()
    with pytest.raises(ConfigError, match="already exists"):
        key.save(directory)


def test_world_readable_secret_is_refused(tmp_path, key):
    key.save(tmp_path / "k")
    os.chmod(tmp_path / "k" / "secret.tenseal", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        AnalystKey.load(tmp_path / "k")


def test_default_key_is_created_once_on_first_use():
    first = load_or_create(None)
    assert (default_key_dir() / "secret.tenseal").exists()
    assert load_or_create(None).key_id == first.key_id


def test_missing_explicit_key_dir_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="unseen keys new --out"):
        load_or_create(tmp_path / "none")


def test_public_bytes_carry_no_secret_and_no_galois_keys(key):
    ctx = ts.context_from(key.public)
    assert not ctx.has_secret_key() and not ctx.has_galois_keys()
    assert len(key.public) < 1_000_000  # the registration budget per holder


def _with_relin_keys(key):
    ctx = ts.context_from(bytes(key.secret.serialize(save_secret_key=True)))
    return bytes(ctx.serialize(save_secret_key=False, save_relin_keys=True))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda k: bytes(k.secret.serialize(save_secret_key=True)), "secret key"),
        (lambda k: b"\x00" * 1000, "does not parse"),
        (
            lambda k: bytes(
                ts.context(ts.SCHEME_TYPE.BFV, 8192, plain_modulus=1032193).serialize(
                    save_secret_key=False
                )
            ),
            "scheme",
        ),
        (
            lambda k: bytes(
                ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 60]).serialize(
                    save_secret_key=False, save_public_key=False
                )
            ),
            "no public key",
        ),
        (_with_relin_keys, "Galois or relinearisation"),
    ],
)
def test_unsafe_contexts_are_refused(key, make, reason):
    with pytest.raises(CryptoError, match=reason):
        ckks.load_public_context(make(key))


def test_oversized_context_is_refused_before_parsing(key):
    with pytest.raises(CryptoError, match="exceeds"):
        ckks.load_public_context(key.public, max_bytes=1000)


def test_keystore_is_bounded_and_names_keys_by_hash(key):
    store = KeyStore(max_keys=1)
    kid = store.register(key.public)
    assert kid == ckks.key_id(key.public) and kid in store
    other = AnalystKey.generate()
    store.register(other.public)
    assert kid not in store
    with pytest.raises(UnknownKeyError):
        store.get(kid)


def test_foreign_or_malformed_ciphertexts_are_refused(key):
    ctx = ckks.load_public_context(key.public)
    good = ckks.encrypt(ctx, [1.0] * 4096).serialize()
    with pytest.raises(CryptoError, match="claims 10 slots"):
        ckks.load_ciphertext(ctx, ts.ckks_vector(ctx, [1.0] * 10).serialize(), 4096)
    with pytest.raises(CryptoError, match="does not parse"):
        ckks.load_ciphertext(ctx, good[: len(good) // 2], 4096)
    other = ts.context(ts.SCHEME_TYPE.CKKS, 16384, coeff_mod_bit_sizes=[60, 40, 40, 60])
    other.global_scale = 2**40
    with pytest.raises(CryptoError):
        ckks.load_ciphertext(ctx, ts.ckks_vector(other, [1.0] * 4096).serialize(), 4096)


def test_ciphertexts_at_an_unexpected_level_are_refused(key):
    ctx = ckks.load_public_context(key.public)
    fresh = ckks.encrypt(ctx, [1.0] * 4096)
    once = fresh * ([0.5] * 4096)  # one product: one rescale deep
    assert ckks.load_ciphertext(ctx, fresh.serialize(), 4096, depth=0)
    assert ckks.load_ciphertext(ctx, once.serialize(), 4096, depth=1)
    with pytest.raises(CryptoError, match="modulus level"):
        ckks.load_ciphertext(ctx, once.serialize(), 4096, depth=0)
    with pytest.raises(CryptoError, match="modulus level"):
        ckks.load_ciphertext(ctx, fresh.serialize(), 4096, depth=1)
