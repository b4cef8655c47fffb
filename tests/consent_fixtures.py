"""A governed federation whose tables are registered assets and whose subjects consent.

Built on :func:`tests.governance_fixtures.build_world`: the world's issuer is
the exchange. It registers each holder's table with grades (``loans.rate``
sensitive, ``loans.officer`` core, the rest internal or public), signs a
subject registry giving every account its own Ed25519 key, and keeps the
consent register every holder reads. Configs require registration and
consents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.governance_fixtures import ACCOUNTS, World, build_world, utcnow
from unseen.engine.config import load_config
from unseen.engine.data.source import open_source
from unseen.engine.governance.asset import Registration, register
from unseen.engine.governance.consent import grant, publish, sign_registry, withdraw
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.tokens import Token

GRADES: dict[str, dict[str, str]] = {
    "loans": {
        "account": "internal",
        "city": "public",
        "amount": "internal",
        "rate": "sensitive",
        "officer": "core",
    },
    "power": {"account": "internal", "kwh": "internal"},
}
TABLES = {"bank-a": "loans", "bank-b": "loans", "grid": "power"}
PURPOSE = "integration test"  # the world's vouchers carry this purpose


@dataclass
class ConsentWorld:
    """The world, its registrations, the subjects' keys and the consent register."""

    world: World
    registrations: dict[str, Registration]  # holder -> its table's registration
    subjects: dict[str, SigningKey]
    register: Path
    registry: Path

    @property
    def exchange(self) -> SigningKey:
        return self.world.issuer

    def consent(
        self,
        subject: str,
        grantee: str,
        *,
        holders: Iterable[str] = ("bank-a", "bank-b", "grid"),
        purpose: str = PURPOSE,
        lifetime: dt.timedelta = dt.timedelta(hours=1),
        key: SigningKey | None = None,
        now: dt.datetime | None = None,
        publish_it: bool = True,
    ) -> Token:
        """``subject`` consents (signed with its own key unless ``key``) and publishes it."""
        moment = now or utcnow()
        token = grant(
            key or self.subjects[subject],
            subject=subject,
            grantee=grantee,
            purpose=purpose,
            holders=holders,
            not_before=moment,
            not_after=moment + lifetime,
            now=moment,
        )
        if publish_it:
            publish(self.register, token)
        return token

    def withdraw(self, subject: str, consent: Token) -> None:
        publish(self.register, withdraw(self.subjects[subject], consent))

    def vouchers(
        self,
        grantee: str,
        consents: Sequence[Token],
        entities: Iterable[str],
        holders: Iterable[str] = ("bank-a", "bank-b", "grid"),
        **kwargs: Any,
    ) -> list[str]:
        """Entity-scoped vouchers referencing ``consents`` by digest, one per holder."""
        ids = sorted(set(entities))
        return [
            self.world.voucher(
                h,
                grantee,
                entities=ids,
                consents=[c.digest for c in consents],
                **kwargs,
            )
            for h in holders
        ]

    def approved(
        self,
        federation: Any,
        key: Any,
        model: Any,
        consents: Sequence[Token],
        entities: Sequence[str],
    ) -> tuple[list[str], Any]:
        """Consent-backed vouchers that also approve ``model``, and the issuer's weights.

        A score computes only with an issuer-approved model (unseen/engine/governance/approval.py):
        the issuer reviews it from a prepare under the consent-backed vouchers,
        then re-issues them carrying the approval.
        """
        client = federation.client(key, self.vouchers(key.key_id, consents, entities))
        approval, weights = self.world.approve(client, model, list(entities))
        return self.vouchers(key.key_id, consents, entities, model=approval), weights


def registration_for(
    world: World, holder: str, exchange: SigningKey | None = None, **overrides: Any
) -> Registration:
    """The exchange's registration of ``holder``'s table from its actual schema."""
    config = load_config(world.configs[holder])
    table = TABLES[holder]
    source = config.tables[table].source
    assert source is not None
    schema = list(open_source(table, source).schema())
    fields: dict[str, Any] = {
        "holder": holder,
        "table": table,
        "schema": schema,
        "grades": GRADES[table],
        "owner": f"{holder} data office",
        "description": f"{table} rows of {holder}",
        "update_frequency": "daily",
    }
    fields.update(overrides)
    return register(exchange or world.issuer, **fields)


def add_registration(config: Path, table: str, path: Path | str) -> None:
    """Name a registration file in ``config``'s table section."""
    text = config.read_text()
    header = f"[tables.{table}]\n"
    config.write_text(text.replace(header, header + f'registration = "{path}"\n', 1))


def build_consent_world(
    root: Path,
    registrations: Mapping[str, Callable[[World], Registration | None]] | None = None,
) -> ConsentWorld:
    """The world with registrations: per holder, a function of the world giving its
    registration (default :func:`registration_for`; None leaves the table unregistered)."""
    world = build_world(root)
    (root / "assets").mkdir()
    regs: dict[str, Registration] = {}
    for holder, config in world.configs.items():
        make = (registrations or {}).get(holder)
        reg = make(world) if make is not None else registration_for(world, holder)
        if reg is not None:
            path = root / "assets" / f"{holder}.asset"
            reg.save(path)
            add_registration(config, TABLES[holder], f"assets/{holder}.asset")
            regs[holder] = reg
    subjects = {account: SigningKey.generate() for account in ACCOUNTS}
    registry = root / "state" / "subjects.token"
    registry.write_text(
        sign_registry(world.issuer, {s: k.public_key for s, k in subjects.items()}).encode()
    )
    register = root / "state" / "consents.json"
    for config in world.configs.values():
        text = config.read_text().replace(
            "[governance]\n",
            "[governance]\nrequire_registration = true\nrequire_consents = true\n"
            'subject_registry = "state/subjects.token"\nconsents = "state/consents.json"\n',
            1,
        )
        config.write_text(text)
    return ConsentWorld(world, regs, subjects, register, registry)
