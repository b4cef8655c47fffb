"""Who may take part in a masked aggregate: the participant-set policy of one holder.

Masks hide a holder's answer only from someone missing a peer's mask key. A
participant list with one holder, or with a "holder" whose key the attacker
made, would unmask it. So before it answers, a holder checks the list the
coordinator sent (:func:`check_participants`):

- it is itself listed, under its own current mask key (a stale key would
  make the masks fail to cancel silently);
- at least ``min_holders`` distinct holders take part (default 2; the node
  config may raise it), with distinct keys, and no more than the masks'
  precision allows;
- in governed mode every participant's mask key is signed by the private key
  of a certificate that chains to the federation's CA, names that holder and
  carries the ``holder`` role (:func:`verify_participant`), and, when the
  voucher names the federation's holders, the participants are exactly those.

In quick-start no identity exists: a key the coordinator relays is taken as
given. That protects against an analyst who asks through the coordinator,
not against a coordinator (or a direct caller) that invents holders; see
docs/threat-model.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from unseen.engine.errors import PolicyError
from unseen.engine.privacy.masks import MAX_PARTICIPANTS, Participant
from unseen.engine.transport.tls import name_identity

__all__ = [
    "DEFAULT_MIN_HOLDERS",
    "certify_mask_key",
    "check_participants",
    "verify_participant",
]

DEFAULT_MIN_HOLDERS = 2
_SIGNED_PREFIX = b"unseen.v1.mask-key\n"


def _signed_bytes(holder: str, public: bytes) -> bytes:
    return _SIGNED_PREFIX + holder.encode() + b"\n" + public


def certify_mask_key(holder: str, public: bytes, cert_pem: bytes, key_pem: bytes) -> Participant:
    """This holder's mask key signed with its TLS certificate's private key."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PolicyError("a holder's TLS key must be an elliptic-curve key to sign its mask key")
    signature = key.sign(_signed_bytes(holder, public), ec.ECDSA(hashes.SHA256()))
    return Participant(holder, public, cert_pem, signature)


def verify_participant(participant: Participant, ca_pem: bytes, now: dt.datetime) -> None:
    """Refuse a participant whose mask key is not bound to a CA-certified holder."""
    who = participant.holder
    try:
        cert = x509.load_pem_x509_certificate(participant.certificate)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PolicyError(f"participant {who}: its certificate is not from the trusted CA") from exc
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise PolicyError(f"participant {who}: its certificate is not valid now")
    # X.509 attributes (unseen.engine.transport.tls, the one parser of roles), never a split subject
    # string: an O of "x,OU=holder" is one value.
    name, role = name_identity(cert.subject)
    if role != "holder":
        raise PolicyError(f"participant {who}: its certificate is not a holder's")
    if name != who:
        raise PolicyError(f"participant {who}: its certificate names another party")
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PolicyError(f"participant {who}: its certificate key cannot sign a mask key")
    try:
        public.verify(
            participant.signature,
            _signed_bytes(who, participant.public),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature as exc:
        raise PolicyError(f"participant {who}: its mask key signature does not verify") from exc


def check_participants(
    own: Participant,
    participants: Sequence[Participant],
    min_holders: int = DEFAULT_MIN_HOLDERS,
    ca_pem: bytes | None = None,
    expected: frozenset[str] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Refuse to answer unless the participant set satisfies this holder's policy."""
    names = [p.holder for p in participants]
    if len(set(names)) != len(names):
        raise PolicyError("the participant list repeats a holder")
    if len({p.public for p in participants}) != len(names):
        # One key under two names would let its owner stand in for a second holder.
        raise PolicyError("the participant list repeats a mask key")
    listed = {p.holder: p for p in participants}.get(own.holder)
    if listed is None:
        raise PolicyError(f"holder {own.holder} is not among the participants it was sent")
    if listed.public != own.public:
        raise PolicyError(f"holder {own.holder} is listed with a stale mask key; retry the query")
    if len(names) < max(min_holders, DEFAULT_MIN_HOLDERS):
        raise PolicyError(
            f"holder {own.holder} answers only with at least {max(min_holders, 2)} "
            f"participating holders; {len(names)} were listed"
        )
    if len(names) > MAX_PARTICIPANTS:
        raise PolicyError(f"at most {MAX_PARTICIPANTS} holders may take part in one query")
    if expected is not None and set(names) != set(expected):
        raise PolicyError("the participants are not the holders the voucher names")
    if ca_pem is not None:
        moment = now or dt.datetime.now(dt.UTC)
        for participant in participants:
            verify_participant(participant, ca_pem, moment)
