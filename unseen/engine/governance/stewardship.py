"""A holder's stewardship of its registered assets: which tables it may serve, and the
registration, grade and consent checks every request passes before touching data.

Built once when the node starts (:meth:`Stewardship.from_config`): each
configured table's registration is loaded and verified against the table's
actual schema (:mod:`unseen.engine.governance.asset`); a table that fails is *not served* and
every request naming it is refused with the reason and ledgered. Served
tables get their grades applied to the catalog (:mod:`unseen.engine.governance.grades`).

Per request, :meth:`Stewardship.check` (called by
:class:`unseen.engine.governance.access.Governance` after the voucher check, before the
answer) refuses, in order: an unserved table; a voucher naming asset ids that
do not register the tables read; a use beyond a column's grade; entities
without a valid consent (:mod:`unseen.engine.governance.consent`). It returns the note the
ledger keeps with the answer: the assets read and the consents relied on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from unseen.engine.config import NodeConfig
from unseen.engine.errors import ConfigError, PolicyError
from unseen.engine.governance.asset import Registration, verify_registration
from unseen.engine.governance.consent import (
    ConsentFile,
    SubjectRegistry,
    SubjectRegistryFile,
    check_consents,
    consent_set_digest,
)
from unseen.engine.governance.grades import check_grades, clamp_k, clamp_uses
from unseen.engine.governance.ledger import Ledger
from unseen.engine.governance.voucher import AccessRequest, Voucher
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.types import SqlType

__all__ = ["NOTE_LIST_LIMIT", "PURPOSE_LIMIT", "Stewardship", "graded_table", "ledger_note"]

# The ledger bounds a reason to 1000 characters: the note stays well inside.
NOTE_LIST_LIMIT = 600
PURPOSE_LIMIT = 200

log = logging.getLogger(__name__)


def graded_table(info: TableInfo, registration: Registration) -> TableInfo:
    """The catalog entry under the registration: uses narrowed by grade, k raised, ids shown."""
    grades = registration.grades
    columns = tuple(
        dataclasses.replace(
            col,
            uses=clamp_uses(col.uses, grades[col.name.lower()]),
            grade=grades[col.name.lower()],
        )
        for col in info.columns
    )
    return dataclasses.replace(
        info,
        columns=columns,
        min_group_size=clamp_k(info.min_group_size, grades),
        assets=(registration.asset_id,),
        _index={},
    )


@dataclass
class Stewardship:
    """Registrations, grades and consents of one holder (empty: nothing is checked)."""

    holder: str
    registrations: dict[str, Registration] = field(default_factory=dict)
    unserved: dict[str, str] = field(default_factory=dict)
    require_consents: bool = False
    registry: SubjectRegistryFile | None = None
    consents: ConsentFile | None = None

    @property
    def grades(self) -> dict[str, dict[str, str]]:
        return {t: r.grades for t, r in self.registrations.items()}

    @classmethod
    def from_config(
        cls,
        config: NodeConfig,
        infos: Mapping[str, TableInfo],
        schemas: Mapping[str, list[tuple[str, SqlType]]],
    ) -> tuple[Stewardship, dict[str, TableInfo]]:
        """Verify each table's registration; returns the stewardship and the served tables."""
        gov = config.governance
        holder = config.name or ""
        steward = cls(holder, require_consents=gov.require_consents)
        if gov.subject_registry is not None:
            steward.registry = SubjectRegistry.watch(gov.subject_registry, gov.trusted_issuers)
        if gov.consents is not None:
            steward.consents = ConsentFile(gov.consents)
        served: dict[str, TableInfo] = {}
        for key, info in infos.items():
            path = config.tables[key].registration
            if path is None:
                if gov.require_registration:
                    steward.unserved[key] = (
                        f"table {info.name} is not served: it has no asset registration"
                    )
                else:
                    served[key] = info
                continue
            try:
                registration = Registration.load(path)
                verify_registration(
                    registration,
                    gov.trusted_issuers,
                    holder=holder,
                    table=info.name,
                    schema=schemas[key],
                )
            except (ConfigError, PolicyError) as exc:
                steward.unserved[key] = f"table {info.name} is not served: {exc}"
                continue
            steward.registrations[key] = registration
            served[key] = graded_table(info, registration)
        for reason in steward.unserved.values():
            log.warning("holder %s: %s", holder, reason)
        return steward, served

    def log_registrations(self, ledger: Ledger | None) -> None:
        """Ledger each registration loaded for the first time, and each table refused.

        A renewal (higher serial) or retirement is a new registration, so it is
        logged when a holder first loads it.
        """
        if ledger is None:
            return
        seen: set[str] = set()
        start, head = 1, ledger.head()[0]
        while start <= head:
            page = ledger.read_range(start)
            seen.update(e.plan_digest for e in page.entries if e.kind == "asset")
            start = page.end
        for table, registration in sorted(self.registrations.items()):
            if registration.digest in seen:
                continue
            ledger.append(
                kind="asset",
                analyst="",
                outcome="answered",
                plan_digest=registration.digest,
                reason=(
                    f"asset {registration.asset_id} serial {registration.serial} "
                    f"{registration.status} serves table {table}"
                ),
            )
        for reason in self.unserved.values():
            ledger.append(kind="asset", analyst="", outcome="refused", reason=reason)

    def assets_read(self, request: AccessRequest) -> frozenset[str]:
        return frozenset(
            self.registrations[t].asset_id for t in request.reads if t in self.registrations
        )

    def check(
        self, request: AccessRequest, voucher: Voucher | None, now: dt.datetime | None = None
    ) -> str:
        """Refuse what registration, grades or consents forbid; returns the ledger note."""
        for table in sorted(request.reads):
            if table in self.unserved:
                raise PolicyError(self.unserved[table])
        assets = self.assets_read(request)
        if voucher is not None and voucher.assets is not None:
            for table in sorted(request.reads):
                registration = self.registrations.get(table)
                if registration is None or registration.asset_id not in voucher.assets:
                    raise PolicyError(
                        f"voucher {voucher.voucher_id} names assets that do not "
                        f"register table {table}"
                    )
        check_grades(request.reads, self.grades)
        used: list[str] = []
        if self.require_consents and request.entities:
            if voucher is None:
                raise PolicyError(
                    "entity-scoped use needs a voucher referencing the subjects' consents"
                )
            assert self.registry is not None  # config requires it with require_consents
            register = self.consents.current() if self.consents is not None else None
            if register is None:
                raise PolicyError(f"holder {self.holder} has no consent register configured")
            used = check_consents(
                request.entities,
                referenced=voucher.consents or (),
                register=register,
                registry=self.registry.current(),
                grantee=request.analyst,
                purpose=voucher.purpose,
                holder=self.holder,
                assets=assets,
                now=now,
            )
        if voucher is None or not (self.registrations or self.require_consents):
            # A holder with no registered asset and no consent rule keeps its
            # answered entries as before: no note.
            return ledger_note(assets, used, "") if voucher is None else ""
        return ledger_note(assets, used, voucher.purpose, voucher.consents or ())


def ledger_note(
    assets: frozenset[str],
    consents: list[str],
    purpose: str,
    referenced: Iterable[str] = (),
) -> str:
    """What the ledger keeps with an answer, for the supervisor's flow audit
    (unseen.engine.governance.flows).

    ``assets=ID,ID consent_set=HEX consents=P,P purpose=TEXT``. ``consent_set``
    names the voucher's referenced consents (:func:`consent_set_digest`; the
    exchange publishes the set in the consent register), ``consents`` the ones
    this answer relied on, by 16-digit digest prefix — or only their count when
    too many to list within the ledger's reason limit. The purpose comes last,
    as it may hold spaces. Never an entity id.
    """
    parts = []
    if assets:
        parts.append("assets=" + ",".join(sorted(assets)))
    if consents:
        unique = sorted(set(consents))
        listed = ",".join(d[:16] for d in unique)
        if len(listed) > NOTE_LIST_LIMIT:
            listed = str(len(unique))
        named = consent_set_digest(set(referenced) or unique)
        parts.append(f"consent_set={named} consents={listed}")
    if purpose:
        parts.append(f"purpose={purpose[:PURPOSE_LIMIT]}")
    return " ".join(parts)
