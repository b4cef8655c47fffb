"""The analyst's key pairs on disk: CKKS for scores and training, BFV for aggregates.

A key directory holds ``secret.tenseal`` (the full CKKS context, mode 0600),
``aggregate-secret.tenseal`` (the full BFV context, 0600), ``public.tenseal``
(the registration sent to the federation: both public contexts,
:mod:`unseen.engine.crypto.registration`) and ``key.json`` (key id and
parameters). The secret files never leave the analyst's machine; the public
bytes are written once and always sent verbatim, so the key id (their
SHA-256) is stable across runs.

A directory written before aggregates moved to BFV has no BFV key, and one
written before issue 11's seeded keys registers its public keys in full
rather than in seeded form (:mod:`unseen.engine.crypto.seeded`; nodes refuse
that): loading either rewrites the registration (adding a BFV key if
missing), which changes its key id (vouchers issued to the old id must be
issued again); it is logged once. A directory whose CKKS key is too small to
flood partial scores at s >= 30 (the N = 8192 keys made before issue 11) is
refused with a one-line message to run ``unseen keys new``: holders would
refuse every score with it, and a new CKKS key means a new key id anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tenseal as ts

from unseen.engine.crypto import bfv, ckks, registration
from unseen.engine.errors import ConfigError, CryptoError
from unseen.engine.governance.signing import write_atomic

__all__ = ["AnalystKey", "default_key_dir", "load_or_create"]

log = logging.getLogger(__name__)

SECRET_FILE = "secret.tenseal"  # noqa: S105 - a file name, not a secret
AGGREGATE_SECRET_FILE = "aggregate-secret.tenseal"  # noqa: S105 - a file name, not a secret
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
    """``secret``: CKKS (scores, training); ``aggregate``: BFV; ``public``: the registration."""

    secret: ts.Context
    public: bytes
    salt: bytes = b""
    aggregate: ts.Context | None = None

    def __post_init__(self) -> None:
        if not self.salt:
            self.salt = os.urandom(32)

    @functools.cached_property
    def key_id(self) -> str:
        # Cached: hashing the 0.5 MB public context costs a millisecond each time.
        return ckks.key_id(self.public)

    @property
    def aggregate_secret(self) -> ts.Context:
        """The BFV secret context that decrypts aggregates."""
        if self.aggregate is None:
            raise ConfigError("this key has no BFV part for aggregates: unseen keys new")
        return self.aggregate

    @classmethod
    def generate(cls, params: ckks.CkksParams = ckks.PARAMS) -> AnalystKey:
        ctx = ckks.new_secret_context(params)
        aggregate = bfv.new_secret_context()
        public = registration.join(ckks.public_bytes(ctx), bfv.public_bytes(aggregate))
        return cls(ctx, public, aggregate=aggregate)

    def save(self, directory: Path) -> None:
        """Write the key files; refuses to overwrite an existing key."""
        with _locked(directory):
            self._save_unlocked(directory)

    def _save_unlocked(self, directory: Path) -> None:
        if (directory / SECRET_FILE).exists():
            raise ConfigError(f"a key already exists in {directory}")
        secret = bytes(self.secret.serialize(save_secret_key=True))
        write_atomic(directory / SECRET_FILE, secret, 0o600)
        write_atomic(directory / SALT_FILE, self.salt, 0o600)
        self._save_public(directory)

    def _save_public(self, directory: Path) -> None:
        aggregate = bytes(self.aggregate_secret.serialize(save_secret_key=True))
        write_atomic(directory / AGGREGATE_SECRET_FILE, aggregate, 0o600)
        write_atomic(directory / PUBLIC_FILE, self.public, 0o644)
        # The key's own parameters, read from its context (not ckks.PARAMS: a key
        # generated with other parameters, or written before they changed, is
        # described as it is).
        params = ckks.params_of(self.secret)
        meta = {
            "key_id": self.key_id,
            "scheme": "CKKS",
            "poly_modulus_degree": params.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(params.coeff_mod_bit_sizes),
            "scale_bits": params.scale_bits,
            "aggregates": {
                "scheme": "BFV",
                "poly_modulus_degree": bfv.PARAMS.poly_modulus_degree,
                "plain_modulus": bfv.PARAMS.plain_modulus,
            },
        }
        write_atomic(directory / META_FILE, json.dumps(meta, indent=2).encode(), 0o644)

    @classmethod
    def load(cls, directory: Path) -> AnalystKey:
        secret_path = directory / SECRET_FILE
        if not secret_path.exists():
            raise ConfigError(
                f"no key in {directory}; create one with: unseen keys new --out {directory}"
            )
        aggregate_path = directory / AGGREGATE_SECRET_FILE
        for path in (secret_path, aggregate_path):
            mode = path.stat().st_mode & 0o777 if path.exists() else 0
            if mode & 0o077:
                raise ConfigError(
                    f"{path} is readable by others (mode {mode:o}); run chmod 600 on it"
                )
        try:
            secret_bytes = secret_path.read_bytes()
            secret = ts.context_from(secret_bytes)
            public = (directory / PUBLIC_FILE).read_bytes()
            aggregate = (
                ts.context_from(aggregate_path.read_bytes()) if aggregate_path.exists() else None
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the key in {directory} is damaged: {exc}") from exc
        if not secret.has_secret_key() or not (aggregate is None or aggregate.has_secret_key()):
            raise ConfigError(f"{directory} holds no secret key")
        if ckks.weight_scale(secret, 1) is None:
            # A key made before scoring floods at s >= 30 (N = 8192): holders refuse
            # to score with it, so say so here, once, before any request.
            degree = ckks.params_of(secret).poly_modulus_degree
            raise ConfigError(
                f"the key in {directory} (CKKS N={degree}) is too small for flooded scores; "
                f"move it away and create a new one with: unseen keys new --out {directory} "
                "(its key id changes: vouchers must be issued again)"
            )
        salt_path = directory / SALT_FILE
        salt = (
            salt_path.read_bytes()
            if salt_path.exists()
            else hashlib.sha256(b"unseen-salt" + secret_bytes).digest()
        )
        key = cls(secret, public, salt, aggregate)
        # What _current reads from disk, from the bytes just read.
        if aggregate is None or not public.startswith(registration.MAGIC):
            key = _upgrade_registration(directory, key)
        return key


def _current(directory: Path) -> bool:
    """Whether the key in ``directory`` has a BFV part and a registration of this version."""
    if not (directory / AGGREGATE_SECRET_FILE).exists():
        return False
    with open(directory / PUBLIC_FILE, "rb") as handle:
        return handle.read(len(registration.MAGIC)) == registration.MAGIC


def _ckks_part(old: AnalystKey) -> bytes:
    """The old registration's CKKS context if nodes would still load it, else a seeded one."""
    try:
        part = registration.split(old.public).ckks
        ckks.load_public_context(part)
    except CryptoError:
        return ckks.public_bytes(old.secret)
    return part


def _upgrade_registration(directory: Path, old: AnalystKey) -> AnalystKey:
    """Rewrite an old key's registration: seeded public keys, a BFV part (a new key id)."""
    try:
        with _locked(directory):
            if _current(directory):
                return AnalystKey.load(directory)  # another process did it first
            aggregate = old.aggregate or bfv.new_secret_context()
            public = registration.join(_ckks_part(old), bfv.public_bytes(aggregate))
            key = AnalystKey(old.secret, public, old.salt, aggregate)
            key._save_public(directory)
    except OSError as exc:
        raise ConfigError(
            f"the key in {directory} predates this version's registration and cannot be "
            f"upgraded there ({exc.strerror}); create a new key with: unseen keys new"
        ) from exc
    log.warning(
        "key in %s had an old registration (public keys in full or no BFV part): rewrote it; "
        "its key id is now %s (was %s): vouchers for the old id must be issued again",
        directory,
        key.key_id[:16],
        old.key_id[:16],
    )
    return key


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
