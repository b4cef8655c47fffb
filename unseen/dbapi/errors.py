"""PEP 249's exception classes, rooted in unseen's one exception tree.

Tree (``UnseenError`` is :class:`unseen.engine.errors.UnseenError`)::

    UnseenError
    ├── Warning                       PEP 249: important warnings (none raised today)
    └── Error                         PEP 249: root of the driver's errors
        ├── InterfaceError            closed connection or cursor, bad connect() arguments
        └── DatabaseError             the federation refused or failed
            ├── DataError             a value out of the codec's range, a parameter out of range
            ├── OperationalError      a peer unreachable, late or failing; a holder's source
            ├── IntegrityError        an encrypted answer disagreed with its plaintext check
            ├── InternalError         a malformed answer or ciphertext, an internal status
            ├── ProgrammingError      SQL that does not parse, fit the catalog, or is refused
            └── NotSupportedError     valid SQL outside what additive HE answers; executemany

Why under ``UnseenError`` and not the other way round: PEP 249 asks for its
classes as module attributes and for ``Error`` to be the base of every
driver error; unseen promises one root for everything it raises. Making the
PEP 249 classes subclasses of the root keeps both promises — ``except
unseen.dbapi.Error`` catches every driver error, ``except UnseenError``
still catches everything — without rebasing the engine's classes on PEP
249's vocabulary, which would tie the library (used by servers that speak
gRPC status codes, not DB-API) to a client interface.

The driver translates at one boundary (:func:`translated`): an engine error
becomes the PEP 249 class below, with the same one-line message, the gRPC
status name in ``grpc_code`` and the original chained as ``__cause__`` (so
``exc.__cause__`` is, e.g., the :class:`~unseen.engine.errors.HolderError` naming
the holder). Which class is the psycopg/SQLSTATE habit: refusals by policy
are ``ProgrammingError`` (SQLSTATE class 42, "syntax error or access rule
violation"), unsupported features ``NotSupportedError``, lost peers
``OperationalError``. Exceptions that are not ``UnseenError`` are bugs and
pass through untranslated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from unseen.engine.errors import (
    ConfigError,
    CryptoError,
    EncodingOverflowError,
    PolicyError,
    QueryError,
    RemoteError,
    SourceError,
    UnseenError,
    UnsupportedError,
    VerificationError,
)

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "translate",
    "translated",
]


class Warning(UnseenError):  # PEP 249 names it so (shadows the builtin here)
    """PEP 249 ``Warning``: important warnings; the driver raises none today."""


class Error(UnseenError):
    """PEP 249 ``Error``: the base of every error the driver raises."""


class InterfaceError(Error):
    """The driver was used wrongly: a closed connection or cursor, bad connect() arguments."""

    grpc_code = "INVALID_ARGUMENT"


class DatabaseError(Error):
    """The federation refused or failed to answer."""


class DataError(DatabaseError):
    """A value does not fit: beyond the slot codec's exact range, or a parameter out of range."""

    grpc_code = "OUT_OF_RANGE"


class OperationalError(DatabaseError):
    """A peer was unreachable, late or failing, or a holder's data source failed."""

    grpc_code = "UNAVAILABLE"


class IntegrityError(DatabaseError):
    """An encrypted answer disagreed with the same question answered in plaintext."""


class InternalError(DatabaseError):
    """A malformed answer or ciphertext, or a peer's internal error."""


class ProgrammingError(DatabaseError):
    """SQL that does not parse or fit the catalog, wrong parameters, or a policy refusal."""

    grpc_code = "INVALID_ARGUMENT"


class NotSupportedError(DatabaseError):
    """Valid SQL (or a DB-API method) outside what additive HE can answer."""

    grpc_code = "UNIMPLEMENTED"


# A peer's gRPC status name -> the class an analyst's code should catch.
_BY_STATUS: dict[str, type[Error]] = {
    "INVALID_ARGUMENT": ProgrammingError,
    "NOT_FOUND": ProgrammingError,
    "ALREADY_EXISTS": ProgrammingError,
    "PERMISSION_DENIED": ProgrammingError,
    "UNAUTHENTICATED": ProgrammingError,
    "OUT_OF_RANGE": DataError,
    "UNIMPLEMENTED": NotSupportedError,
    "UNAVAILABLE": OperationalError,
    "DEADLINE_EXCEEDED": OperationalError,
    "RESOURCE_EXHAUSTED": OperationalError,
    "CANCELLED": OperationalError,
    "ABORTED": OperationalError,
    "FAILED_PRECONDITION": OperationalError,
    "INTERNAL": InternalError,
    "UNKNOWN": InternalError,
    "DATA_LOSS": InternalError,
}

# Most specific first: the first class the error is an instance of wins.
_BY_CLASS: tuple[tuple[type[UnseenError], type[Error]], ...] = (
    (UnsupportedError, NotSupportedError),
    (QueryError, ProgrammingError),
    (PolicyError, ProgrammingError),
    (CryptoError, InternalError),
    (EncodingOverflowError, DataError),
    (SourceError, OperationalError),
    (ConfigError, InterfaceError),
    (VerificationError, IntegrityError),
)


def translate(exc: UnseenError) -> Error:
    """The PEP 249 error for an engine error (not yet chained; see :func:`translated`)."""
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, RemoteError):
        kind = _BY_STATUS.get(exc.code, DatabaseError)
    else:
        kind = next((pep for engine, pep in _BY_CLASS if isinstance(exc, engine)), DatabaseError)
    error = kind(str(exc))
    error.grpc_code = exc.grpc_code
    return error


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise engine errors from the block as their PEP 249 class, chained to the original."""
    try:
        yield
    except Error:
        raise
    except UnseenError as exc:
        raise translate(exc) from exc
