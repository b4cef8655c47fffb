"""Signed one-line tokens: the envelope asset registrations, subject registries and consents share.

A token is ``<prefix>.<base64url(payload)>.<base64url(signature)>`` where the
payload is :func:`unseen.engine.governance.signing.canonical_json` of a JSON object and the
signature is Ed25519 over ``<tag> + payload``. Vouchers use the same shape
(:mod:`unseen.engine.governance.voucher`); the records added for issue 16 share this one
implementation so that each needs only its own fields and checks. Each record
kind has its own tag, so a signature made for a consent can never pass as a
registration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
)

__all__ = ["MAX_TOKEN_BYTES", "Token", "seal"]

# Registrations list columns and registries list subjects: generous, but bounded
# so that a hostile file cannot make a holder parse gigabytes.
MAX_TOKEN_BYTES = 4 << 20


@dataclass(frozen=True)
class Token:
    """A decoded token: its payload bytes, the parsed object and the signature."""

    prefix: str
    payload: bytes
    signature: bytes
    data: dict[str, Any]

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the payload: how vouchers and ledgers name the record."""
        return hashlib.sha256(self.payload).hexdigest()

    def encode(self) -> str:
        return f"{self.prefix}.{b64encode(self.payload)}.{b64encode(self.signature)}"

    def signature_valid(self, key: PublicKey, tag: bytes) -> bool:
        return key.is_valid(self.signature, tag + self.payload)

    @classmethod
    def decode(cls, text: str | bytes, prefix: str) -> Token:
        """Parse strictly (canonical payload, 64-byte signature); raises PolicyError."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        if len(text) > 2 * MAX_TOKEN_BYTES:
            raise PolicyError(f"the {prefix} token is too large")
        parts = text.strip().split(".")
        if len(parts) != 3 or parts[0] != prefix:
            raise PolicyError(f"not a {prefix} token (expected {prefix}.<payload>.<signature>)")
        try:
            payload, signature = b64decode(parts[1]), b64decode(parts[2])
            data = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise PolicyError(f"the {prefix} token is malformed: {exc}") from exc
        if not isinstance(data, dict) or canonical_json(data) != payload:
            raise PolicyError(f"the {prefix} token is malformed: payload not canonical")
        if len(signature) != 64:
            raise PolicyError(f"the {prefix} token is malformed: signature is not 64 bytes")
        return cls(prefix, payload, signature, data)

    @classmethod
    def load(cls, path: Path | str, prefix: str) -> Token:
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            return cls.decode(text, prefix)
        except PolicyError as exc:
            raise ConfigError(f"{path}: {exc}") from exc


def seal(key: SigningKey, prefix: str, tag: bytes, data: dict[str, Any]) -> Token:
    """Sign ``data`` (a JSON object without floats) as a token."""
    payload = canonical_json(data)
    return Token(prefix, payload, key.sign(tag + payload), json.loads(payload))
