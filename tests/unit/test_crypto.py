"""Analyst keys on disk and the vetting of public contexts."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import tenseal as ts

from unseen.engine.crypto import bfv, ckks, registration
from unseen.engine.crypto.keys import AnalystKey, default_key_dir, load_or_create
from unseen.engine.crypto.keystore import KeyStore
from unseen.engine.errors import ConfigError, CryptoError, UnknownKeyError


def test_key_files_are_private_and_reload_to_the_same_id(tmp_path, key):
    directory = tmp_path / "k"
    key.save(directory)
    assert stat.S_IMODE((directory / "secret.tenseal").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "aggregate-secret.tenseal").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    again = AnalystKey.load(directory)
    assert again.key_id == key.key_id
    assert again.secret.has_secret_key() and again.aggregate_secret.has_secret_key()
    with pytest.raises(ConfigError, match="already exists"):
        key.save(directory)


@pytest.mark.parametrize("name", ["secret.tenseal", "aggregate-secret.tenseal"])
def test_world_readable_secret_is_refused(tmp_path, key, name):
    key.save(tmp_path / "k")
    os.chmod(tmp_path / "k" / name, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        AnalystKey.load(tmp_path / "k")


def test_a_key_written_before_bfv_aggregates_gets_its_bfv_part_once(tmp_path, key):
    directory = tmp_path / "k"
    key.save(directory)
    ckks_only = registration.split(key.public).ckks
    (directory / "aggregate-secret.tenseal").unlink()
    (directory / "public.tenseal").write_bytes(ckks_only)
    upgraded = AnalystKey.load(directory)
    assert upgraded.key_id != key.key_id  # the id commits to the new BFV key
    assert registration.split(upgraded.public).ckks == ckks_only
    assert json.loads((directory / "key.json").read_text())["key_id"] == upgraded.key_id
    assert AnalystKey.load(directory).key_id == upgraded.key_id


def test_key_json_records_the_keys_own_parameters(tmp_path, key):
    # Not ckks.PARAMS whatever the key: a key of other (still wide) parameters says so.
    key.save(tmp_path / "default")
    meta = json.loads((tmp_path / "default" / "key.json").read_text())
    assert meta["poly_modulus_degree"] == 16384 and meta["scale_bits"] == 50
    assert tuple(meta["coeff_mod_bit_sizes"]) == ckks.PARAMS.coeff_mod_bit_sizes
    other = AnalystKey.generate(ckks.CkksParams(16384, (60, 60, 60, 60, 60), 45))
    other.save(tmp_path / "other")
    meta = json.loads((tmp_path / "other" / "key.json").read_text())
    assert meta["coeff_mod_bit_sizes"] == [60, 60, 60, 60, 60] and meta["scale_bits"] == 45


def test_an_old_n8192_key_directory_is_refused_with_what_to_run(tmp_path):
    # Holders would refuse every score with it (no room to flood at s >= 30).
    old = AnalystKey.generate(_SMALL_CKKS)
    old.save(tmp_path / "old")
    with pytest.raises(ConfigError, match=r"N=8192.*unseen keys new --out") as info:
        AnalystKey.load(tmp_path / "old")
    assert "\n" not in str(info.value)


def test_default_key_is_created_once_on_first_use():
    first = load_or_create(None)
    assert (default_key_dir() / "secret.tenseal").exists()
    assert load_or_create(None).key_id == first.key_id


def test_missing_explicit_key_dir_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="unseen keys new --out"):
        load_or_create(tmp_path / "none")


def test_public_bytes_carry_no_secret_and_no_galois_keys(key):
    parts = registration.split(key.public)
    for data in (parts.ckks, parts.bfv):
        ctx = ts.context_from(data)
        assert not ctx.has_secret_key() and not ctx.has_galois_keys()
        assert not ctx.has_relin_keys()
    assert bfv.load_public_context(parts.bfv) and ckks.load_public_context(key.public)
    # The registration budget per holder: the N = 16384 CKKS public key (about 1.5 MB,
    # the price of flooding at s >= 30) and the BFV one (134 KB).
    assert len(key.public) < 2_000_000


@pytest.mark.parametrize(
    "data, reason",
    [
        (registration.MAGIC + b"\x00\x00\x00\x09abc", "truncated"),
        (registration.join(b"a", b"b") + b"!", "trailing"),
        (registration.join(b"a", b""), "empty"),
    ],
)
def test_malformed_registrations_are_refused(data, reason):
    with pytest.raises(CryptoError, match=reason):
        registration.split(data)


# A CKKS key small enough for the BFV loader's size check, so its scheme check speaks.
_SMALL_CKKS = ckks.CkksParams(8192, (60, 50, 50, 58), 50)


def _bfv_public(**kwargs) -> bytes:
    ctx = ts.context(ts.SCHEME_TYPE.BFV, **kwargs)
    return bytes(ctx.serialize(save_secret_key=False, save_relin_keys=False))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda k: bytes(k.aggregate_secret.serialize(save_secret_key=True)), "secret key"),
        (lambda k: ckks.public_bytes(ckks.new_secret_context(_SMALL_CKKS)), "use BFV"),
        (
            lambda k: _bfv_public(poly_modulus_degree=8192, plain_modulus=bfv.PARAMS.plain_modulus),
            "ring degree",
        ),
        # Another t: holders' masks modulo unseen's t would not cancel under it.
        (lambda k: _bfv_public(poly_modulus_degree=4096, plain_modulus=1032193), "plaintext"),
        (
            lambda k: bytes(
                k.aggregate_secret.serialize(save_secret_key=False, save_relin_keys=True)
            ),
            "Galois or relinearisation",
        ),
        (lambda k: b"\x00" * 100, "does not parse"),
    ],
)
def test_unsafe_aggregate_contexts_are_refused(key, make, reason):
    with pytest.raises(CryptoError, match=reason):
        bfv.load_public_context(make(key))


def test_bfv_sums_are_exact_modulo_t_and_centred(key):
    ctx = bfv.load_public_context(registration.split(key.public).bfv)
    t = bfv.PARAMS.plain_modulus
    rng = np.random.default_rng(3)
    values = [rng.integers(-(t // 2), t // 2, bfv.PARAMS.slots) for _ in range(5)]
    vectors = [bfv.load_ciphertext(ctx, c, 4096) for c in bfv.encrypt_all(ctx, values)]
    got = bfv.decrypt(key.aggregate_secret, bfv.serialize(bfv.add_all(vectors)))
    want = (sum(v.astype(object) for v in values) + t // 2) % t - t // 2
    assert got.tolist() == want.tolist()


def test_foreign_or_malformed_bfv_ciphertexts_are_refused(key):
    ctx = bfv.load_public_context(registration.split(key.public).bfv)
    good = bfv.encrypt_all(ctx, [np.ones(4096, dtype=np.int64)])[0]
    with pytest.raises(CryptoError, match="claims 10 slots"):
        bfv.load_ciphertext(ctx, bytes(ts.bfv_vector(ctx, [1] * 10).serialize()), 4096)
    with pytest.raises(CryptoError, match="does not parse"):
        bfv.load_ciphertext(ctx, good[: len(good) // 2], 4096)
    with pytest.raises(CryptoError):  # a CKKS ciphertext is no aggregate answer
        ckks_ctx = ckks.load_public_context(key.public)
        bfv.load_ciphertext(ctx, bytes(ckks.encrypt(ckks_ctx, [1.0] * 4096).serialize()), 4096)


def test_keystore_keeps_both_contexts_under_one_id(key):
    store = KeyStore()
    kid = store.register(key.public)
    assert bfv.slot_count(store.aggregate_context(kid)) == 4096
    assert ckks.slot_count(store.get(kid)) == ckks.PARAMS.slots == 8192
    assert store.public_bytes(kid) == key.public
    assert store.aggregate_public(kid) == registration.split(key.public).bfv
    # A registration is vetted whole: a good CKKS part does not carry an unsafe BFV part.
    other_t = _bfv_public(poly_modulus_degree=4096, plain_modulus=1032193)
    with pytest.raises(CryptoError, match="plaintext"):
        store.register(registration.join(registration.split(key.public).ckks, other_t))
    legacy = store.register(registration.split(AnalystKey.generate().public).ckks)
    assert store.get(legacy) is not None
    with pytest.raises(CryptoError, match="no BFV part"):
        store.aggregate_context(legacy)


def _with_relin_keys(key):
    # At N = 8192: the default key's relinearisation keys alone pass the size limit,
    # which would refuse them first.
    ctx = ckks.new_secret_context(_SMALL_CKKS)
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


def test_a_read_only_key_written_before_bfv_says_what_to_do(tmp_path, key, monkeypatch):
    directory = tmp_path / "k"
    key.save(directory)
    (directory / "aggregate-secret.tenseal").unlink()
    (directory / "public.tenseal").write_bytes(registration.split(key.public).ckks)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("unseen.engine.crypto.keys.write_atomic", refuse)
    with pytest.raises(ConfigError, match="unseen keys new"):
        AnalystKey.load(directory)
