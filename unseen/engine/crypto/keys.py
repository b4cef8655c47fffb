"""The analyst's CKKS key pair on disk.

A key directory holds ``secret.tenseal`` (the full context, mode 0600),
``public.tenseal`` (what is sent to the federation) and ``key.json`` (key id
and parameters). The secret file never leaves the analyst's machine; the
public bytes are written once and always sent verbatim, so the key id (their
SHA-256) is stable across runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.errors import ConfigError
from unseen.engine.governance.signing import write_atomic

__all__ = ["AnalystKey", "default_key_dir", "load_or_create"]

SECRET_FILE = "secret.tenseal"  # noqa: S105 - a file name, not a secret
PUBLIC_FILE = "public.tenseal"
META_FILE = "key.json"
SALT_FILE = "salt.bin"  # keys model fingerprints (unseen.engine.query.model.model_fingerprint)


def default_key_dir() -> Path:
    """``$XDG_CONFIG_HOME/unseen/keys/default`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "unseen" / "keys" / "default"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise key creation between processes sharing a key directory."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class AnalystKey:
    secret: ts.Context
    public: bytes
    salt: bytes = b""

    def __post_init__(self) -> None:
        if not self.salt:
            self.salt = os.urandom(32)

    @functools.cached_property
    def key_id(self) -> str:
        # Cached: hashing the 0.5 MB public context costs a millisecond each time.
        return ckks.key_id(self.public)

    @classmethod
    def generate(cls, params: ckks.CkksParams = ckks.PARAMS) -> AnalystKey:
        ctx = ckks.new_secret_context(params)
        return cls(ctx, ckks.public_bytes(ctx))

    def save(self, directory: Path) -> None:
        """Write the key files; refuses to overwrite an existing key."""
        with _locked(directory):
            self._save_unlocked(directory)

    def _save_unlocked(self, directory: Path) -> None:
        if (directory / SECRET_FILE).exists():
            raise ConfigError(f"a key already exists in {directory}")
        secret = bytes(self.secret.serialize(save_secret_key=True))
        write_atomic(directory / SECRET_FILE, secret, 0o600)
        write_atomic(directory / PUBLIC_FILE, self.public, 0o644)
        write_atomic(directory / SALT_FILE, self.salt, 0o600)
        meta = {
            "key_id": self.key_id,
            "scheme": "CKKS",
            "poly_modulus_degree": ckks.PARAMS.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(ckks.PARAMS.coeff_mod_bit_sizes),
            "scale_bits": ckks.PARAMS.scale_bits,
        }
        write_atomic(directory / META_FILE, json.dumps(meta, indent=2).encode(), 0o644)

    @classmethod
    def load(cls, directory: Path) -> AnalystKey:
        secret_path = directory / SECRET_FILE
        if not secret_path.exists():
            raise ConfigError(
                f"no key in {directory}; create one with: unseen keys new --out {directory}"
            )
        mode = secret_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{secret_path} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        try:
            secret_bytes = secret_path.read_bytes()
            secret = ts.context_from(secret_bytes)
            public = (directory / PUBLIC_FILE).read_bytes()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the key in {directory} is damaged: {exc}") from exc
        if not secret.has_secret_key():
            raise ConfigError(f"{secret_path} holds no secret key")
        salt_path = directory / SALT_FILE
        salt = (
            salt_path.read_bytes()
            if salt_path.exists()
            else hashlib.sha256(b"unseen-salt" + secret_bytes).digest()
        )
        return cls(secret, public, salt)


def load_or_create(directory: Path | None) -> AnalystKey:
    """Load the key in ``directory``; with None, the default key, created on first use."""
    if directory is not None:
        return AnalystKey.load(directory)
    directory = default_key_dir()
    with _locked(directory):
        if not (directory / SECRET_FILE).exists():
            key = AnalystKey.generate()
            key._save_unlocked(directory)
            return key
    return AnalystKey.load(directory)
