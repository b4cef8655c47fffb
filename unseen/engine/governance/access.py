"""A holder's governance step around every use of its data.

Each data request (aggregate, prepare, score) is described as an
:class:`~unseen.engine.governance.voucher.AccessRequest` — who asks, what it reads and how, for
which entities — checked against the vouchers presented, answered, and
logged (answered, refused or failed) in the holder's ledger with the quota
consumed atomically. Without a ledger (quick-start) the check still runs but
nothing is logged and no receipt comes back.

Also here: the supervisor's signed ledger-range request, signed by the
supervisor and verified by the holder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from unseen.engine.errors import PolicyError, QueryError
from unseen.engine.governance.fields import utc_now
from unseen.engine.governance.ledger import Ledger, result_digest
from unseen.engine.governance.signing import (
    PublicKey,
    SigningKey,
    canonical_json,
    parse_utc,
    utc_text,
)
from unseen.engine.governance.voucher import (
    AccessRequest,
    Scope,
    SignedVoucher,
    Voucher,
    VoucherPolicy,
    entity_ids,
    verify,
)
from unseen.engine.privacy.budget import BudgetState
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.expr import column_names, conjuncts, pinned_values
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan

__all__ = [
    "Governance",
    "aggregate_entities",
    "digest",
    "score_reads",
    "sign_ledger_request",
    "verify_ledger_request",
]

T = TypeVar("T")

# A supervisor's signed request is accepted this long after it was made.
LEDGER_REQUEST_WINDOW = dt.timedelta(minutes=5)


def digest(data: bytes) -> str:
    """The plan digest logged in the ledger: hex SHA-256 of the serialised plan."""
    return hashlib.sha256(data).hexdigest()


def aggregate_entities(plan: AggregatePlan, table: TableInfo) -> frozenset[str] | None:
    """The entities an aggregate concerns: literals of ``WHERE c IN (...)`` / ``c = v``
    on an entity column (a column whose policy allows ``entity``), or None.

    An entity-scoped voucher therefore admits aggregates restricted to its
    entities, such as ``WHERE payee IN (...) GROUP BY payee``.
    """
    found: set[str] | None = None
    for conjunct in conjuncts(plan.filter):
        pinned = pinned_values(conjunct)
        if pinned is None:
            continue
        column, values = pinned
        info = table.column(column)
        if info is None or not info.allows("entity"):
            continue
        ids = set(entity_ids(v for v in values if v is not None))
        found = ids if found is None else found & ids
    return None if found is None else frozenset(found)


def score_reads(features: Sequence[FeatureSpec]) -> Scope:
    """What computing these features reads: key columns to ``entity``, feature
    columns to ``score`` (``aggregate`` for a count), filter columns to ``filter``."""
    reads: dict[str, dict[str, set[str]]] = {}
    for feature in features:
        cols = reads.setdefault(feature.table, {})
        cols.setdefault(feature.key, set()).add("entity")
        use = "aggregate" if feature.aggregate == "count" else "score"
        cols.setdefault(feature.column, set()).add(use)
        for name in column_names(feature.filter):
            cols.setdefault(name, set()).add("filter")
    return {t: {c: frozenset(ops) for c, ops in cols.items()} for t, cols in reads.items()}


@dataclass
class Governance:
    """Voucher policy and (optional) ledger of one holder."""

    holder: str
    policy: VoucherPolicy = field(
        default_factory=lambda: VoucherPolicy(required=False, trusted_issuers={})
    )
    ledger: Ledger | None = None
    supervisors: Mapping[str, PublicKey] = field(default_factory=dict)
    # Issue 16: registration, grade and consent checks (unseen.engine.governance.stewardship), run
    # after the voucher check and before the answer; returns the ledger note.
    steward: Callable[[AccessRequest, Voucher | None], str] | None = None
    # Told ``(kind, voucher id, amount left)`` whenever a request under a voucher is
    # ledgered: ``"quota"`` (queries left) or ``"rho"`` (zCDP budget left, after a dp
    # charge). The node's metrics gauge them (unseen.engine.transport.telemetry);
    # the arguments are voucher ids and counts, never data.
    on_left: Callable[[str, str, float], None] | None = None

    @property
    def required(self) -> bool:
        return self.policy.required

    def choose(self, request: AccessRequest, vouchers: Iterable[str]) -> SignedVoucher | None:
        """The presented voucher issued for this holder that admits the request, if any.

        With several for this holder, the first that passes is used; if none
        passes, the first is used so that its refusal (and reason) is logged.
        """
        mine = []
        for text in vouchers:
            signed = SignedVoucher.decode(text)
            if signed.voucher.holder == self.holder:
                mine.append(signed)
        if len(mine) > 1:
            for signed in mine:
                used = self.ledger.answered_count(signed.voucher_id) if self.ledger else 0
                try:
                    self.policy.check(request, signed, used_count=used)
                except PolicyError:
                    continue
                return signed
        return mine[0] if mine else None

    def refuse(self, request: AccessRequest, refusal: PolicyError) -> PolicyError:
        """Log ``refusal`` of ``request`` (with a ledger) and return the error to raise."""
        if self.ledger is None:
            return refusal
        return self.ledger.log_refusal(request, refusal)

    def run(
        self,
        request: AccessRequest,
        vouchers: Iterable[str],
        answer: Callable[[], T],
        result_bytes: Callable[[T], bytes | Sequence[bytes]],
    ) -> tuple[T, list[str]]:
        """Check, answer and log one request; returns the result and its receipts."""
        vouchers = tuple(vouchers)
        try:
            signed = self.choose(request, vouchers)
        except PolicyError as exc:
            # A voucher that does not even decode is refused like any other
            # voucher problem: logged (with no voucher id, as none can be
            # trusted), then raised.
            if self.ledger is None:
                raise
            raise self.ledger.log_refusal(request, exc) from exc
        if signed is None and self.required and vouchers:
            # Clearer than "none was presented" when the analyst sent some.
            refusal = PolicyError(
                f"holder {self.holder} requires a voucher; none of the {len(vouchers)} "
                "presented was issued for it"
            )
            if self.ledger is None:
                raise refusal
            raise self.ledger.log_refusal(request, refusal) from refusal
        if self.ledger is None:
            self.policy.check(request, signed)
            if self.steward is not None:
                self.steward(request, signed.voucher if signed is not None else None)
            return answer(), []
        note = [""]

        def stewarded() -> T:
            # Runs after the voucher's signature and scope passed, before any row
            # is read; a PolicyError here is ledgered as a refusal.
            if self.steward is not None:
                note[0] = self.steward(request, signed.voucher if signed is not None else None)
            return answer()

        try:
            result, receipt = self.ledger.authorize_and_append(
                request,
                signed,
                self.policy,
                stewarded,
                digest=lambda value: result_digest(result_bytes(value)),
                note=lambda: note[0],
            )
        finally:
            # Answered, failed or refused: what the ledger now counts against the quota.
            self._report_quota(signed)
        return result, [receipt.encode()]

    def _report_quota(self, signed: SignedVoucher | None) -> None:
        if self.on_left is None or self.ledger is None or signed is None:
            return
        if signed.voucher.quota is None:
            return
        try:
            # Only a trusted issuer's voucher sets a gauge: a forged one reusing a real
            # voucher's id (and any quota it likes) would rewrite that voucher's gauge.
            verify(signed, self.policy.trusted_issuers)
        except PolicyError:
            return
        used = self.ledger.answered_count(signed.voucher_id)
        self.on_left("quota", signed.voucher_id, float(max(signed.voucher.quota - used, 0)))

    def charge_privacy(
        self, request: AccessRequest, vouchers: Iterable[str], cost: Fraction
    ) -> tuple[BudgetState, str]:
        """dp: charge ``cost`` to the presented voucher's privacy budget in the ledger.

        Called first thing inside the answer :meth:`run` computes, so a refusal
        here is logged by the ledger as the request's refusal, and a charge
        stands even when the query then fails. Returns the budget after the
        charge and the charge entry's receipt, annotated with that budget.
        """
        if self.ledger is None:
            raise PolicyError(
                f"holder {self.holder} serves this table with differential privacy but keeps "
                "no ledger to charge privacy budgets in"
            )
        signed = self.choose(request, vouchers)
        if signed is None or signed.voucher.privacy_rho is None:
            raise PolicyError(
                "this table is served with differential privacy: present a voucher carrying "
                "a privacy budget (rho)"
            )
        state, receipt = self.ledger.charge_privacy(
            request, signed.voucher_id, cost, signed.voucher.privacy_rho
        )
        if self.on_left is not None:
            self.on_left("rho", signed.voucher_id, float(state.left))
        annotated = {**receipt.to_dict(), "privacy": state.to_dict()}
        return state, canonical_json(annotated).decode("utf-8")

    def read_ledger(
        self, request: Mapping[str, Any], signature: bytes, now: dt.datetime | None = None
    ) -> tuple[str, str]:
        """Serve a supervisor's signed range request: (range JSON, signed checkpoint)."""
        verify_ledger_request(self.holder, request, signature, self.supervisors, now)
        if self.ledger is None:
            raise PolicyError(f"holder {self.holder} keeps no ledger")
        start, end = int(request["start"]), int(request["end"])
        if start >= 2**63 or end >= 2**63:
            raise QueryError("a ledger range ends below 2^63")
        ledger_range = self.ledger.read_range(start or 1, end or None)
        checkpoint = self.ledger.checkpoint()
        return canonical_json(ledger_range.to_dict()).decode(), checkpoint.encode()


def _request_bytes(holder: str, request: Mapping[str, Any]) -> bytes:
    return b"unseen.ledger.read.v1\n" + canonical_json(
        {
            "holder": holder,
            "start": int(request["start"]),
            "end": int(request["end"]),
            "issued_at": str(request["issued_at"]),
            "supervisor": str(request["supervisor"]),
        }
    )


def sign_ledger_request(
    key: SigningKey, holder: str, start: int, end: int, now: dt.datetime | None = None
) -> tuple[dict[str, Any], bytes]:
    """A supervisor's request for ledger entries ``[start, end)`` of ``holder``."""
    request = {
        "holder": holder,
        "start": start,
        "end": end,
        "issued_at": utc_text(utc_now(now)),
        "supervisor": key.key_id,
    }
    return request, key.sign(_request_bytes(holder, request))


def verify_ledger_request(
    holder: str,
    request: Mapping[str, Any],
    signature: bytes,
    supervisors: Mapping[str, PublicKey],
    now: dt.datetime | None = None,
) -> PublicKey:
    """Check a supervisor's signed range request; raises PolicyError naming why not."""
    key = supervisors.get(str(request.get("supervisor", "")))
    if key is None:
        raise PolicyError(f"holder {holder} does not recognise that supervisor key")
    key.verify(signature, _request_bytes(holder, request), "supervisor request signature")
    try:
        issued = parse_utc(str(request["issued_at"]))
    except ValueError as exc:
        raise PolicyError("the supervisor request carries no valid time") from exc
    if abs(utc_now(now) - issued) > LEDGER_REQUEST_WINDOW:
        raise PolicyError("the supervisor request is stale or from the future; sign a new one")
    return key
