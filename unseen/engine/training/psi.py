"""Entity alignment by private set intersection (隐私求交), over OpenMined's ECDH-PSI.

The label holder (the bank, as analyst) wants to know which of its entity ids
a feature holder also has, without telling that holder its other ids (which
enterprises were its borrowers) and without learning the holder's other ids.
OpenMined's ``openmined-psi`` runs the ECDH protocol (P-256, Bloom filter /
Golomb-compressed set of the server's doubly-blinded items):

- the bank is the PSI *client*: it blinds its ids with a fresh secret key and
  sends them (:func:`psi_request`);
- the holder is the PSI *server*: with its own fresh key it re-blinds the
  bank's items and returns them with a compressed set of its own blinded ids
  (:func:`psi_answer`); it learns only how many ids the bank sent;
- the bank removes its blinding and tests membership (:func:`psi_intersection`),
  learning which of its ids the holder has (and the holder's set size).

The messages travel through the coordinator, which sees only points blinded
with keys it never holds: it learns the message sizes, nothing else. Keys are
fresh per request so two alignments cannot be linked by their blinded items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from unseen.engine.errors import PlanError, QueryError

__all__ = [
    "MAX_PSI_IDS",
    "PSI_FALSE_POSITIVE_RATE",
    "AlignAsk",
    "PsiAnswer",
    "PsiClient",
    "psi_answer",
    "psi_intersection",
    "psi_request",
]

# The probability that any one of the bank's ids is wrongly reported as held.
# 1e-9 over the whole request keeps a mis-aligned row out of every realistic run
# at about 4 bytes per holder id in the compressed set.
PSI_FALSE_POSITIVE_RATE = 1e-9

# Both sides refuse more ids than this: a request is ~35 bytes per id, and a
# larger set would not fit one 16 MiB message (unseen/engine/transport/rpc.py caps messages).
MAX_PSI_IDS = 300_000


def _psi():  # type: ignore[no-untyped-def]
    # Imported on use: only parties that align entities need the extension.
    import private_set_intersection.python as psi

    return psi


@dataclass(frozen=True)
class AlignAsk:
    """One alignment request as it travels: which holder, which of its entity
    columns, under which analyst key and vouchers, and the blinded ids."""

    holder: str
    table: str
    column: str
    key_id: str
    request: bytes
    vouchers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PsiAnswer:
    """A holder's PSI answer: the compressed set of its ids and the re-blinded request."""

    setup: bytes
    response: bytes
    holder_size: int


class PsiClient:
    """The bank's side of one alignment: its ids and the secret blinding key."""

    def __init__(self, ids: Sequence[str]):
        if len(ids) > MAX_PSI_IDS:
            raise PlanError(f"a PSI request holds at most {MAX_PSI_IDS} ids, not {len(ids)}")
        self.ids = [str(i) for i in ids]
        self._client = _psi().client.CreateWithNewKey(True)

    def request(self) -> bytes:
        """The blinded ids, serialised, to send to a holder."""
        return bytes(self._client.CreateRequest(self.ids).SerializeToString())


def psi_request(ids: Sequence[str]) -> tuple[PsiClient, bytes]:
    """Start an alignment of ``ids``: the client to keep and the request to send."""
    client = PsiClient(ids)
    return client, client.request()


def psi_answer(holder_ids: Sequence[str], request: bytes) -> PsiAnswer:
    """The holder's answer to a blinded request over its own ids ``holder_ids``."""
    psi = _psi()
    if len(holder_ids) > MAX_PSI_IDS:
        raise PlanError(f"a holder aligns at most {MAX_PSI_IDS} ids, not {len(holder_ids)}")
    parsed = psi.Request()
    try:
        parsed.ParseFromString(request)
    except Exception as exc:
        raise QueryError("the PSI request is not a valid message") from exc
    count = len(parsed.encrypted_elements)
    if count == 0 or count > MAX_PSI_IDS:
        raise PlanError(f"a PSI request holds 1 to {MAX_PSI_IDS} ids, not {count}")
    server = psi.server.CreateWithNewKey(True)
    items = [str(i) for i in holder_ids]
    setup = server.CreateSetupMessage(PSI_FALSE_POSITIVE_RATE, count, items)
    try:
        response = server.ProcessRequest(parsed)
    except RuntimeError as exc:
        raise QueryError("the PSI request holds items that are not curve points") from exc
    return PsiAnswer(
        bytes(setup.SerializeToString()), bytes(response.SerializeToString()), len(items)
    )


def psi_intersection(client: PsiClient, answer: PsiAnswer) -> list[str]:
    """The bank's ids the holder also has, in the bank's order."""
    psi = _psi()
    setup, response = psi.ServerSetup(), psi.Response()
    try:
        setup.ParseFromString(answer.setup)
        response.ParseFromString(answer.response)
        indices = client._client.GetIntersection(setup, response)
    except Exception as exc:
        raise QueryError("the holder's PSI answer does not match the request") from exc
    return [client.ids[i] for i in sorted(indices)]
