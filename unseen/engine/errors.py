"""The one exception tree of unseen; every failure a person can act on is one of these.

Tree::

    UnseenError                      root; ``str()`` is one readable line
    ├── QueryError                   the analyst's question cannot be answered as asked
    │   ├── SqlSyntaxError           SQL that does not parse
    │   ├── UnsupportedError         valid SQL outside what additive HE can answer
    │   └── PlanError                a plan that does not fit the catalog or the codec
    ├── PolicyError                  a holder's policy forbids the request
    │   ├── SignatureError           a signature does not verify under the key it should
    │   └── LoggedRefusal            ... and the refusal is already in the holder's ledger
    ├── CryptoError                  a context or ciphertext is malformed, insecure or foreign
    │   └── UnknownKeyError          a key id that was never registered (or was evicted)
    ├── EncodingOverflowError        a value does not fit the agreed slot codec
    ├── SourceError                  a holder's data source failed or is misconfigured
    ├── ConfigError                  bad command-line flags or configuration files
    ├── CallCancelled                the caller stopped waiting (deadline, hang-up); work stopped
    ├── BusyError                    the node holds too much for other calls; retry later
    ├── RemoteError                  a peer answered with a gRPC error status
    │   └── HolderError              ... and that peer was a named holder
    └── VerificationError            an encrypted answer disagrees with its plaintext check

Each class names the gRPC status it maps to (``grpc_code``) so that the one
translation point (``unseen.engine.transport.rpc``) needs no table of its own, while this module
stays free of grpc imports.

The DB-API driver adds PEP 249's classes under the same root (``Warning`` and
``Error`` subclass ``UnseenError``) and translates these into them at its one
boundary; see ``unseen/dbapi/errors.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BusyError",
    "CallCancelled",
    "ConfigError",
    "CryptoError",
    "EncodingOverflowError",
    "HolderError",
    "LoggedRefusal",
    "PlanError",
    "PolicyError",
    "QueryError",
    "RemoteError",
    "SignatureError",
    "SourceError",
    "SqlSyntaxError",
    "UnknownKeyError",
    "UnseenError",
    "UnsupportedError",
    "VerificationError",
    "WeakKeyError",
]


class UnseenError(Exception):
    """Root of every error unseen raises on purpose."""

    grpc_code = "INTERNAL"


class QueryError(UnseenError):
    """The question cannot be answered as asked."""

    grpc_code = "INVALID_ARGUMENT"


class SqlSyntaxError(QueryError):
    """SQL text that does not parse."""


class UnsupportedError(QueryError):
    """A construct unseen cannot answer; the message names it, where it is, why and what
    to write instead (``instead``), so the analyst can act on it."""

    def __init__(
        self,
        construct: str,
        position: tuple[int, int] | None = None,
        why: str = "",
        instead: str = "",
    ):
        self.construct = construct
        self.position = position
        self.why = why
        self.instead = instead
        where = f" at line {position[0]}, column {position[1]}" if position else ""
        reason = f": {why}" if why else ""
        hint = f"; instead, {instead}" if instead else ""
        super().__init__(f"{construct} is not supported{where}{reason}{hint}")


class PlanError(QueryError):
    """A plan that does not fit the catalog, the policy's shape or the codec."""


class PolicyError(UnseenError):
    """A holder's column policy or voucher check refuses the request."""

    grpc_code = "PERMISSION_DENIED"


class SignatureError(PolicyError):
    """A signature does not verify under the key it should have been made with.

    A :class:`PolicyError` because the one place it reaches a caller over the
    wire is a holder refusing a forged voucher, which is a
    ``PERMISSION_DENIED``. Verifiers of ledgers and receipts catch it and
    report the problem instead.
    """


class LoggedRefusal(PolicyError):
    """A refusal that is already in the ledger; ``receipt`` names its entry.

    Still a :class:`PolicyError` (``PERMISSION_DENIED``) with the reason as
    its message, chained from the original refusal.
    """

    def __init__(self, message: str, receipt: Any):
        super().__init__(message)
        # An unseen.engine.governance.ledger.Receipt; typed loosely because this module imports
        # nothing of ours.
        self.receipt = receipt


class CryptoError(UnseenError):
    """A public context or ciphertext is malformed, insecure or not ours."""

    grpc_code = "INVALID_ARGUMENT"


class UnknownKeyError(CryptoError):
    """The request names a key id this node has not registered."""

    grpc_code = "NOT_FOUND"


class WeakKeyError(CryptoError):
    """The registered key (or the weights' scale) leaves no room for a flood of the
    required statistical security; the holder refuses to score rather than flood weakly."""

    grpc_code = "FAILED_PRECONDITION"


class EncodingOverflowError(UnseenError):
    """A sum or count exceeds the range the slot codec can carry exactly."""

    grpc_code = "OUT_OF_RANGE"


class SourceError(UnseenError):
    """A holder's data source failed (missing file, engine error)."""

    grpc_code = "FAILED_PRECONDITION"


class ConfigError(UnseenError):
    """Invalid flags or configuration: the message names the offending item."""

    grpc_code = "INVALID_ARGUMENT"


class CallCancelled(UnseenError):
    """The call being served ended (its deadline passed or its caller hung up), so the
    holder stopped the work; nobody is left to read the status."""

    grpc_code = "CANCELLED"


class BusyError(UnseenError):
    """The node is at a shared bound (memory held across calls); the same request may
    succeed later."""

    grpc_code = "RESOURCE_EXHAUSTED"


class RemoteError(UnseenError):
    """A peer answered with an error status; ``code`` is the gRPC status name."""

    def __init__(self, code: str, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(reason)

    @property
    def grpc_code(self) -> str:  # type: ignore[override]
        return self.code


class HolderError(RemoteError):
    """A named holder failed; the message starts with the holder's name."""

    def __init__(self, holder: str, code: str, reason: str):
        self.holder = holder
        self.detail = reason  # without the holder prefix, for re-wrapping
        # A reason that names the holder already (a peer's own translation) is not prefixed twice.
        prefix = f"holder {holder}"
        super().__init__(code, reason if reason.startswith(prefix) else f"{prefix}: {reason}")


class VerificationError(UnseenError):
    """An encrypted result disagrees with the same question answered in plaintext."""
