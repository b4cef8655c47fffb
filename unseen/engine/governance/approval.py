"""Approved models: the issuer encrypts a model's real weights and signs their digests.

Holders multiply whatever weight ciphertext arrives, and an analyst who holds
the secret key can craft anything: a weight of ``w + i·c`` (CKKS slots are
complex) returns ``Σ c·x`` in the imaginary part beside the score, and any
weight isolates features. So under vouchers the *issuer* — who reviews the
model as a data owner reviews code — encrypts ``w_j · 2^e_j`` (a real number
replicated over every slot) under the analyst's public key, and puts the
digests in the voucher it signs (:class:`ModelApproval`). A holder computes
only with weight ciphertexts whose digest, bound to the feature it computes
and its scaling exponent, the voucher names. The analyst cannot substitute a
weight (the digest would differ) and never encrypts one itself.

The issuer sees the model (weights, features, link) and the analyst's public
key; it sees no data and cannot decrypt anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unseen.engine.errors import ConfigError, PolicyError

__all__ = [
    "ApprovedWeights",
    "ModelApproval",
    "approve_model",
    "encrypt_weights",
    "feature_digest",
]

_FEATURE_TAG = b"unseen.model.feature.v1\n"


def feature_digest(spec: bytes, exponent: int, weight: bytes) -> str:
    """What an approval names per feature: the feature as computed, its exponent, its weight.

    ``spec`` is the feature's canonical wire form (``unseen.engine.transport.serde.feature_bytes``),
    ``weight`` the serialised ciphertext ``Enc(w * 2^exponent)``.
    """
    h = hashlib.sha256(_FEATURE_TAG)
    for part in (spec, str(int(exponent)).encode(), hashlib.sha256(weight).digest()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelApproval:
    """The model part of a voucher: the approved link and per-feature digests."""

    link: str
    features: frozenset[str]

    def __post_init__(self) -> None:
        if self.link not in ("identity", "logistic"):
            raise ConfigError(f"approved model link {self.link!r} is not identity or logistic")
        digests = frozenset(self.features)
        if not digests or not all(_is_hex(d) for d in digests):
            raise ConfigError("an approved model names one or more 64-hex-digit feature digests")
        object.__setattr__(self, "features", digests)

    def to_dict(self) -> dict[str, Any]:
        return {"link": self.link, "features": sorted(self.features)}

    @classmethod
    def from_dict(cls, data: Any) -> ModelApproval:
        if not isinstance(data, dict) or set(data) != {"link", "features"}:
            raise ValueError("model must be {link, features}")
        if not isinstance(data["features"], list):
            raise ValueError("model.features must be a list")
        return cls(str(data["link"]), frozenset(data["features"]))

    def require(self, voucher_id: str, digests: Iterable[str] | None) -> None:
        """Refuse a score whose weights (feature digests) the approval does not name."""
        if digests is None:
            raise PolicyError(f"voucher {voucher_id}: the request names no approved model")
        missing = [d for d in digests if d not in self.features]
        if missing:
            raise PolicyError(
                f"voucher {voucher_id} does not approve {len(missing)} of the model's weight "
                "ciphertexts at this holder; only weights its issuer encrypted may be used"
            )


def _is_hex(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class ApprovedWeights:
    """What the issuer hands the analyst: the exponents and the encrypted weights, in
    model order, for the analyst's key."""

    key_id: str
    exponents: tuple[int, ...]
    weights: tuple[bytes, ...]

    def save(self, path: Path) -> None:
        data = {
            "key_id": self.key_id,
            "exponents": list(self.exponents),
            "weights": [base64.b64encode(w).decode("ascii") for w in self.weights],
        }
        Path(path).write_text(json.dumps(data) + "\n", encoding="ascii")

    @classmethod
    def load(cls, path: Path) -> ApprovedWeights:
        try:
            data = json.loads(Path(path).read_text(encoding="ascii"))
            return cls(
                str(data["key_id"]),
                tuple(int(e) for e in data["exponents"]),
                tuple(base64.b64decode(w, validate=True) for w in data["weights"]),
            )
        except OSError as exc:
            raise ConfigError(f"cannot read approved weights {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"approved weights file {path} is malformed: {exc}") from exc


def encrypt_weights(
    public: bytes, weights: Sequence[float], exponents: Sequence[int]
) -> ApprovedWeights:
    """The issuer's step: ``Enc(w_j * 2^e_j)`` of real weights under the analyst's public key.

    Refuses a context that carries a secret key (the issuer never holds one).
    """
    import numpy as np

    from unseen.engine.crypto import ckks  # TenSEAL is only needed by the issuer's tool

    if len(weights) != len(exponents):
        raise ConfigError("one exponent per feature is needed")
    from unseen.engine.crypto.flooding import check_weight_bound

    check_weight_bound(weights, exponents)
    ctx = ckks.load_public_context(public)
    slots = ckks.PARAMS.slots  # a score block's size, whatever the key's ring degree
    scale = ckks.weight_scale(ctx, len(weights))
    encrypted = tuple(
        bytes(ckks.encrypt(ctx, np.full(slots, float(w) * 2.0**e), scale).serialize())
        for w, e in zip(weights, exponents, strict=True)
    )
    return ApprovedWeights(ckks.key_id(public), tuple(int(e) for e in exponents), encrypted)


def approve_model(
    link: str,
    specs: Sequence[bytes],
    weights: Sequence[float],
    exponents: Sequence[int],
    public: bytes,
    encrypted: ApprovedWeights | None = None,
) -> tuple[ModelApproval, ApprovedWeights]:
    """Encrypt a reviewed model's weights and name them: what an issuer puts in a voucher
    (the approval) and hands the analyst (the weights).

    ``specs`` are the features' canonical bytes (``unseen.engine.transport.serde.feature_bytes`` of
    the
    client's ``feature_specs``), in model order, like ``weights`` and ``exponents``.
    ``encrypted`` reuses the issuer's own earlier encryption (vouchers for several
    holders must name the same ciphertexts); its exponents must match.
    """
    if len(specs) != len(weights):
        raise ConfigError("one feature spec per weight is needed")
    if encrypted is None:
        encrypted = encrypt_weights(public, weights, exponents)
    elif list(encrypted.exponents) != [int(e) for e in exponents] or len(encrypted.weights) != len(
        specs
    ):
        raise ConfigError("the existing weights file was made for other exponents or features")
    digests = frozenset(
        feature_digest(spec, e, w)
        for spec, e, w in zip(specs, encrypted.exponents, encrypted.weights, strict=True)
    )
    return ModelApproval(link, digests), encrypted
