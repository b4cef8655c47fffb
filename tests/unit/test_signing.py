"""Ed25519 keys on disk, signatures, and the canonical bytes that signatures cover."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.signing import (
    PublicKey,
    SignatureError,
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
    is_key_id,
    key_id,
    parse_utc,
    utc_text,
)

UTC = dt.UTC


def test_key_id_is_sha256_of_the_raw_public_key():
    key = SigningKey.generate()
    assert key.key_id == hashlib.sha256(key.public_key.raw).hexdigest()
    assert key.key_id == key_id(key.public_key.raw)
    assert is_key_id(key.key_id)
    assert not is_key_id(key.key_id.upper())
    assert key.key_id[:16] in repr(key) and "PRIVATE" not in repr(key)


def test_save_and_load_round_trip_with_private_mode(tmp_path):
    key = SigningKey.generate()
    public_path = key.save(tmp_path / "keys" / "holder.key")
    assert public_path == tmp_path / "keys" / "holder.key.pub"
    assert (tmp_path / "keys" / "holder.key").stat().st_mode & 0o777 == 0o600
    loaded = SigningKey.load(tmp_path / "keys" / "holder.key")
    assert loaded.key_id == key.key_id
    assert PublicKey.load(public_path) == key.public_key
    # Signatures from the loaded key verify under the saved public key.
    PublicKey.load(public_path).verify(loaded.sign(b"x"), b"x")


def test_save_refuses_to_overwrite_a_key(tmp_path):
    SigningKey.generate().save(tmp_path / "k")
    with pytest.raises(ConfigError, match="already exists"):
        SigningKey.generate().save(tmp_path / "k")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_load_refuses_a_key_others_can_read(tmp_path, mode):
    SigningKey.generate().save(tmp_path / "k")
    os.chmod(tmp_path / "k", mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        SigningKey.load(tmp_path / "k")


def test_load_refuses_missing_garbage_and_foreign_keys(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        SigningKey.load(tmp_path / "nope")
    (tmp_path / "junk").write_bytes(b"not a key")
    os.chmod(tmp_path / "junk", 0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM"):
        SigningKey.load(tmp_path / "junk")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec").write_bytes(pem)
    os.chmod(tmp_path / "ec", 0o600)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        SigningKey.load(tmp_path / "ec")
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        PublicKey.from_pem(public_pem)


def test_signature_errors_are_clear_policy_errors():
    key = SigningKey.generate()
    other = SigningKey.generate()
    signature = key.sign(b"grant")
    key.public_key.verify(signature, b"grant")
    assert key.public_key.is_valid(signature, b"grant")
    with pytest.raises(SignatureError, match="voucher signature is not valid for key"):
        key.public_key.verify(signature, b"grant!", "voucher signature")
    with pytest.raises(PolicyError):
        other.public_key.verify(signature, b"grant")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not key.public_key.is_valid(flipped, b"grant")


def test_public_key_text_form_round_trips():
    key = SigningKey.generate().public_key
    text = key.to_text()
    assert text.startswith("ed25519:") and "\n" not in text
    assert PublicKey.from_text(text) == key
    assert PublicKey.from_text(key.to_pem().decode()) == key
    for bad in ("ed25519:", "ed25519:!!!!", "rsa:AAAA", key.to_text() + "A"):
        with pytest.raises(ConfigError):
            PublicKey.from_text(bad)


def test_canonical_json_is_one_byte_string():
    a = canonical_json({"b": [1, 2], "a": {"z": None, "y": "名"}})
    b = canonical_json({"a": {"y": "名", "z": None}, "b": [1, 2]})
    assert a == b == '{"a":{"y":"名","z":null},"b":[1,2]}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"t": dt.datetime.now(UTC)})
    with pytest.raises(ValueError):
        canonical_json({"s": "\ud800"})  # a lone surrogate has no UTF-8 form


def test_utc_text_is_canonical_and_strict():
    moment = dt.datetime(2026, 11, 20, tzinfo=UTC)
    assert utc_text(moment) == "2026-11-20T00:00:00Z"
    east = dt.timezone(dt.timedelta(hours=8))
    assert utc_text(dt.datetime(2026, 11, 20, 8, tzinfo=east)) == "2026-11-20T00:00:00Z"
    assert utc_text(moment.replace(microsecond=5)) == "2026-11-20T00:00:00.000005Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_text(dt.datetime(2026, 1, 1))
    for bad in (
        "2026-11-20T00:00:00",
        "2026-11-20T00:00:00+00:00",
        "2026-11-20T00:00:00.000000Z",
        "2026-11-20 00:00:00Z",
        "2026-02-30T00:00:00Z",
        20261120,
    ):
        with pytest.raises(ValueError):
            parse_utc(bad)


@given(st.datetimes(timezones=st.just(UTC)))
def test_utc_text_round_trips(moment):
    assert parse_utc(utc_text(moment)) == moment
    assert utc_text(parse_utc(utc_text(moment))) == utc_text(moment)


@given(st.binary(max_size=200))
def test_b64_round_trips(data):
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data


@pytest.mark.parametrize("bad", ["a", "ab=", "a+b/", "ab cd", "AB\n"])
def test_b64_is_strict(bad):
    with pytest.raises(ValueError):
        b64decode(bad)
