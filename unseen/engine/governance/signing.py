"""Ed25519 keys and signatures for vouchers, ledgers and receipts, and the bytes they cover.

Issuers sign vouchers and holders sign ledger entries with Ed25519 keys
(through ``cryptography``). A key is named by its *key id*: the hex SHA-256 of
the raw 32-byte public key, so a key id can be printed, compared and put in a
voucher without carrying the key itself.

Private keys live in unencrypted PKCS#8 PEM files of mode 0600 (loading refuses
a file that group or others can read, as :mod:`unseen.engine.crypto.keys` does for the
analyst's CKKS secret). Public keys are SubjectPublicKeyInfo PEM files, or the
one-line text form ``ed25519:<base64url of the 32 raw bytes>`` for config files.

Everything that is signed is first turned into exactly one byte string:
:func:`canonical_json` (sorted keys, no whitespace, UTF-8) with times written by
:func:`utc_text`. Each signer prefixes its own domain tag (see
:mod:`unseen.engine.governance.voucher` and :mod:`unseen.engine.governance.ledger`) so that a
signature made for one
purpose can never be replayed as another.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from unseen.engine.errors import ConfigError, SignatureError

__all__ = [
    "PUBLIC_TEXT_PREFIX",
    "PublicKey",
    "SignatureError",
    "SigningKey",
    "b64decode",
    "b64encode",
    "canonical_json",
    "is_hex_digest",
    "is_key_id",
    "key_id",
    "parse_utc",
    "utc_text",
    "write_atomic",
]

PUBLIC_TEXT_PREFIX = "ed25519:"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_UTC = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?Z$")


def key_id(raw_public: bytes) -> str:
    """The name of an Ed25519 public key: hex SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(raw_public).hexdigest()


def is_hex_digest(text: object) -> bool:
    """Whether ``text`` is a hex SHA-256 as this project writes them: 64 lowercase hex digits.

    ``fullmatch``: a ``^...$`` pattern would also admit a trailing newline.
    """
    return isinstance(text, str) and _HEX_DIGEST.fullmatch(text) is not None


def is_key_id(text: object) -> bool:
    """Whether ``text`` is spelled like a key id (a hex SHA-256)."""
    return is_hex_digest(text)


def b64encode(data: bytes) -> str:
    """Unpadded base64url: safe in file names, URLs, TOML strings and one-line tokens."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`; raises ``ValueError`` on anything else.

    Strict on purpose: a token has one spelling, so padding, whitespace and the
    standard alphabet's ``+/`` are refused rather than tolerated.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not unpadded base64url") from exc
    if b64encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON-able value signs as: sorted keys, no spaces, UTF-8.

    Only ``dict``/``list``/``str``/``int``/``bool``/``None`` are expected (no
    floats: their text form is not canonical across implementations); datetimes
    must already be text (:func:`utc_text`). Raises ``ValueError`` otherwise.
    """
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"not canonical JSON: {exc}") from exc


def utc_text(moment: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``: the one spelling of an instant in signed data.

    Microseconds appear only when non-zero, so an instant has exactly one text
    form. Naive datetimes are refused: a signed time must not depend on the
    signer's local zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a signed time must be timezone-aware (use UTC)")
    moment = moment.astimezone(dt.UTC)
    # Not strftime: its %Y drops leading zeros of years before 1000 on glibc.
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse_utc(text: object) -> dt.datetime:
    """Parse :func:`utc_text`'s output (and only it) into an aware UTC datetime."""
    if not isinstance(text, str):
        raise ValueError(f"expected a UTC time string, got {type(text).__name__}")
    match = _UTC.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a UTC time like 2026-01-31T12:00:00Z")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int(match.group(7)) if match.group(7) else 0
    moment = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.UTC)
    if utc_text(moment) != text:
        raise ValueError(f"{text!r} is not in canonical form")
    return moment


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode`` so that readers never see a partial file.

    A temporary file is created with the final mode, fsynced, then renamed: a
    crash never leaves a truncated key or list, and a private key is never
    readable by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PublicKey:
    """An Ed25519 public key: verifies signatures, names itself by :attr:`key_id`."""

    __slots__ = ("_key", "raw")

    def __init__(self, raw: bytes):
        if len(raw) != 32:
            raise ConfigError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
        self.raw = bytes(raw)
        self._key = Ed25519PublicKey.from_public_bytes(self.raw)

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.key_id[:16]}…)"

    # -- text and files ------------------------------------------------------
    def to_text(self) -> str:
        """``ed25519:<base64url>``: one line, for config files and command lines."""
        return PUBLIC_TEXT_PREFIX + b64encode(self.raw)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem(cls, data: bytes, where: str = "public key") -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"{where} is not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{where} is not an Ed25519 key")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @classmethod
    def from_text(cls, text: str, where: str = "public key") -> PublicKey:
        """Parse ``ed25519:<base64url>`` or a PEM block; raises :class:`ConfigError`."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            return cls.from_pem(text.encode("ascii", "replace"), where)
        if not text.startswith(PUBLIC_TEXT_PREFIX):
            raise ConfigError(f"{where} must look like ed25519:<base64url> or be a PEM block")
        try:
            raw = b64decode(text[len(PUBLIC_TEXT_PREFIX) :])
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        return cls(raw)

    @classmethod
    def load(cls, path: Path | str) -> PublicKey:
        """Read a public key file (PEM or the one-line text form)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read public key {path}: {exc.strerror}") from exc
        if data.lstrip().startswith(b"-----BEGIN"):
            return cls.from_pem(data, str(path))
        return cls.from_text(data.decode("ascii", "replace"), str(path))

    def save(self, path: Path | str) -> None:
        write_atomic(Path(path), self.to_pem(), 0o644)

    # -- verification --------------------------------------------------------
    def verify(self, signature: bytes, data: bytes, what: str = "signature") -> None:
        """Check ``signature`` over ``data``; raises :class:`SignatureError` naming ``what``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature as exc:
            raise SignatureError(f"{what} is not valid for key {self.key_id[:16]}") from exc

    def is_valid(self, signature: bytes, data: bytes) -> bool:
        """Like :meth:`verify`, as a boolean, for verifiers that collect problems."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """An Ed25519 private key (an issuer's or a holder's); never printed, never sent."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(
            self._key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id[:16]}…)"

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._key.sign(data)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: Path | str, public_path: Path | str | None = None) -> Path:
        """Write the private key (mode 0600) and its public key (``<path>.pub`` by default).

        Refuses to overwrite an existing private key: losing an issuer's or a
        holder's key orphans every voucher or ledger it signed. Returns the
        public key's path.
        """
        path = Path(path)
        if path.exists():
            raise ConfigError(f"a key already exists at {path}")
        public = (
            Path(public_path) if public_path is not None else path.with_name(path.name + ".pub")
        )
        write_atomic(path, self.to_pem(), 0o600)
        self.public_key.save(public)
        return public

    @classmethod
    def load(cls, path: Path | str) -> SigningKey:
        """Read a private key file; refuses one that group or others may read."""
        path = Path(path)
        try:
            mode = path.stat().st_mode & 0o777
        except OSError as exc:
            raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from exc
        if mode & 0o077:
            raise ConfigError(f"{path} is readable by others (mode {mode:o}); run chmod 600 on it")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 key")
        return cls(key)
