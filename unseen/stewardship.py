"""Registration, consent and flow commands: ``unseen asset|consent ...`` and ``unseen audit flows``.

The exchange registers holders' tables as assets (``asset register``) and signs
the subject key registry (``consent registry``); a data subject grants and
withdraws consents (``consent grant|withdraw``) in the consent register the
holders read; a supervisor reads the flows (``audit flows``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from unseen.engine.data.source import open_source
from unseen.engine.errors import ConfigError, PolicyError, VerificationError
from unseen.engine.governance.asset import Registration, register, verify_registration
from unseen.engine.governance.consent import (
    CONSENT_PREFIX,
    ConsentRegister,
    grant,
    publish,
    sign_registry,
    withdraw,
)
from unseen.engine.governance.flows import audit_flows
from unseen.engine.governance.ledger import LedgerRange, read_ledger
from unseen.engine.governance.signing import PublicKey, SigningKey, utc_text
from unseen.engine.governance.tokens import Token
from unseen.engine.query.result import Result

__all__ = ["add_audit_flows", "add_commands"]


def _utc(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _public_key(spec: str) -> PublicKey:
    return PublicKey.from_text(spec) if spec.startswith("ed25519:") else PublicKey.load(spec)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{what} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _registrations(paths: list[Path]) -> list[Registration]:
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.asset")) if path.is_dir() else [path]
    return [Registration.load(p) for p in files]


# -- asset ----------------------------------------------------------------------------------------


def cmd_asset_register(args: argparse.Namespace) -> int:
    key = SigningKey.load(args.key)
    schema = list(open_source(args.table, args.source).schema())
    registration = register(
        key,
        holder=args.holder,
        table=args.table,
        schema=schema,
        grades=_pairs(args.grade, "--grade"),
        default_grade=args.default_grade,
        owner=args.owner,
        description=args.description,
        update_frequency=args.frequency,
        serial=args.serial,
        status="retired" if args.retire else "active",
        asset=args.id,
    )
    registration.save(args.out)
    print(
        f"asset {registration.asset_id} serial {registration.serial} ({registration.status}) "
        f"of {args.holder}.{args.table} written to {args.out}"
    )
    return 0


def cmd_asset_list(args: argparse.Namespace) -> int:
    rows = [
        [
            r.asset_id,
            r.serial,
            r.status,
            r.holder,
            r.table,
            r.data["owner"],
            r.data["update_frequency"],
            ",".join(sorted({g for g in r.grades.values()})),
        ]
        for r in _registrations(args.paths)
    ]
    columns = ["asset", "serial", "status", "holder", "table", "owner", "frequency", "grades"]
    print(Result(columns, rows, {}).format(args.format))
    return 0


def cmd_asset_show(args: argparse.Namespace) -> int:
    registration = Registration.load(args.file)
    print(json.dumps(registration.data, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def cmd_asset_verify(args: argparse.Namespace) -> int:
    registration = Registration.load(args.file)
    trusted = {k.key_id: k for k in map(_public_key, args.issuer)}
    schema = None
    if args.source is not None:
        schema = list(open_source(registration.table, args.source).schema())
    try:
        verify_registration(registration, trusted, schema=schema)
    except PolicyError as exc:
        raise VerificationError(str(exc)) from exc
    checked = " and matches the table's schema" if schema is not None else ""
    print(f"asset {registration.asset_id}: signed by a trusted exchange, active{checked}")
    return 0


# -- consent --------------------------------------------------------------------------------------


def cmd_consent_registry(args: argparse.Namespace) -> int:
    key = SigningKey.load(args.key)
    subjects = {s: _public_key(k) for s, k in _pairs(args.subject, "--subject").items()}
    Path(args.out).write_text(sign_registry(key, subjects).encode() + "\n")
    print(f"registry of {len(subjects)} subject keys written to {args.out}")
    return 0


def cmd_consent_grant(args: argparse.Namespace) -> int:
    key = SigningKey.load(args.key)
    not_after = (
        _utc(args.not_after)
        if args.not_after
        else dt.datetime.now(dt.UTC) + dt.timedelta(days=args.days)
    )
    token = grant(
        key,
        subject=args.subject,
        grantee=args.grantee,
        purpose=args.purpose,
        holders=args.holder,
        assets=args.asset,
        not_after=not_after,
        not_before=_utc(args.not_before) if args.not_before else None,
    )
    publish(args.register, token)
    if args.out is not None:
        Path(args.out).write_text(token.encode() + "\n")
    print(f"consent {token.digest} of {args.subject} published in {args.register}")
    return 0


def _consent(spec: str, register: ConsentRegister) -> Token:
    if Path(spec).is_file():
        return Token.load(spec, CONSENT_PREFIX)
    matches = [t for d, t in register.consents.items() if d.startswith(spec)]
    if len(matches) != 1:
        raise ConfigError(f"{spec!r} names {len(matches)} consents in the register, not one")
    return matches[0]


def cmd_consent_withdraw(args: argparse.Namespace) -> int:
    key = SigningKey.load(args.key)
    consent = _consent(args.consent, ConsentRegister.load(args.register))
    if consent.data.get("subject_key") != key.key_id:
        raise ConfigError("only the subject who signed a consent can withdraw it")
    publish(args.register, withdraw(key, consent))
    print(f"consent {consent.digest} withdrawn in {args.register}")
    return 0


def cmd_consent_show(args: argparse.Namespace) -> int:
    register = ConsentRegister.load(args.register)
    withdrawn = {str(w.data.get("consent")) for w in register.withdrawals}
    rows = [
        [
            digest[:16],
            t.data["subject"],
            str(t.data["grantee"])[:16],
            ",".join(t.data["holders"] + t.data["assets"]),
            t.data["purpose"],
            t.data["not_after"],
            "withdrawn" if digest in withdrawn else "active",
        ]
        for digest, t in sorted(register.consents.items(), key=lambda i: i[1].data["issued_at"])
    ]
    columns = ["consent", "subject", "grantee", "holders/assets", "purpose", "until", "status"]
    print(Result(columns, rows, {}).format(args.format))
    return 0


# -- audit flows ----------------------------------------------------------------------------------


def _ledger(path: Path) -> LedgerRange:
    if path.suffix == ".json":
        return LedgerRange.from_dict(json.loads(path.read_text())["range"])
    return read_ledger(path)


def cmd_audit_flows(args: argparse.Namespace) -> int:
    report = audit_flows(
        [_ledger(p) for p in args.ledger],
        _registrations(args.assets),
        ConsentRegister.load(args.consents) if args.consents else ConsentRegister(),
    )
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        rows: list[list[Any]] = [
            [
                f.holder,
                ",".join(f.tables) or "-",
                f.analyst[:16],
                f.purpose,
                f.kind,
                f.count,
                f"{len(f.subjects)} subjects" if f.consent == "subjects" else f.consent,
                utc_text(f.last) if f.last else "",
            ]
            for f in report.flows
        ]
        columns = ["holder", "assets", "analyst", "purpose", "kind", "count", "consent", "last"]
        print(Result(columns, rows, {}).format(args.format))
        print(f"{len(report.lacking)} flow(s) lacking consent")
    return 1 if report.lacking and args.strict else 0


def add_audit_flows(audit: Any) -> None:
    """``unseen audit flows`` on the ``audit`` sub-command table."""
    flows = audit.add_parser("flows", help="which assets flowed to whom, why, under whose consent")
    flows.add_argument("--ledger", action="append", type=Path, required=True)
    flows.add_argument("--assets", action="append", type=Path, default=[], help="files or dirs")
    flows.add_argument("--consents", type=Path, default=None, help="the consent register")
    flows.add_argument("--format", choices=["table", "json", "csv"], default="table")
    flows.add_argument("--strict", action="store_true", help="exit 1 if a flow lacks consent")
    flows.set_defaults(func=cmd_audit_flows)


def add_commands(commands: Any, parser_class: type) -> None:
    """Register ``asset ...`` and ``consent ...`` on the main parser."""
    asset = commands.add_parser("asset", help="data asset registrations").add_subparsers(
        dest="asset_command", required=True, parser_class=parser_class
    )
    reg = asset.add_parser("register", help="the exchange signs a table's registration")
    reg.add_argument("--key", type=Path, required=True, help="the exchange's Ed25519 key")
    reg.add_argument("--holder", required=True)
    reg.add_argument("--table", required=True)
    reg.add_argument("--source", type=Path, required=True, help="the table's data (for its schema)")
    reg.add_argument("--owner", required=True)
    reg.add_argument("--description", default="")
    reg.add_argument("--frequency", default="unspecified", help="update frequency")
    reg.add_argument("--grade", action="append", default=[], metavar="COLUMN=GRADE")
    reg.add_argument("--default-grade", default=None, help="grade of columns not listed")
    reg.add_argument("--serial", type=int, default=1, help="renewals take the next serial")
    reg.add_argument("--retire", action="store_true", help="register the asset's retirement")
    reg.add_argument("--id", default=None, help="asset id (default: from holder and table)")
    reg.add_argument("--out", type=Path, required=True)
    reg.set_defaults(func=cmd_asset_register)
    lst = asset.add_parser("list", help="list registrations")
    lst.add_argument("paths", type=Path, nargs="+", help="registration files or directories")
    lst.add_argument("--format", choices=["table", "json", "csv"], default="table")
    lst.set_defaults(func=cmd_asset_list)
    show = asset.add_parser("show", help="print a registration")
    show.add_argument("file", type=Path)
    show.set_defaults(func=cmd_asset_show)
    ver = asset.add_parser("verify", help="check a registration's signature (and schema)")
    ver.add_argument("file", type=Path)
    ver.add_argument("--issuer", action="append", required=True, help="exchange public key")
    ver.add_argument("--source", type=Path, default=None, help="the table's data")
    ver.set_defaults(func=cmd_asset_verify)

    consent = commands.add_parser("consent", help="data subjects' consents").add_subparsers(
        dest="consent_command", required=True, parser_class=parser_class
    )
    registry = consent.add_parser("registry", help="the exchange signs subjects' public keys")
    registry.add_argument("--key", type=Path, required=True, help="the exchange's Ed25519 key")
    registry.add_argument("--subject", action="append", required=True, metavar="ID=PUBKEY")
    registry.add_argument("--out", type=Path, required=True)
    registry.set_defaults(func=cmd_consent_registry)
    gr = consent.add_parser("grant", help="a subject signs and publishes a consent")
    gr.add_argument("--key", type=Path, required=True, help="the subject's Ed25519 key")
    gr.add_argument("--subject", required=True, help="credit code or id the holders know")
    gr.add_argument("--grantee", required=True, help="the analyst's key id")
    gr.add_argument("--purpose", required=True)
    gr.add_argument("--holder", action="append", default=[])
    gr.add_argument("--asset", action="append", default=[])
    gr.add_argument("--not-before", default=None)
    gr.add_argument("--not-after", default=None)
    gr.add_argument("--days", type=float, default=30.0)
    gr.add_argument("--register", type=Path, required=True, help="the consent register")
    gr.add_argument("--out", type=Path, default=None, help="also write the consent here")
    gr.set_defaults(func=cmd_consent_grant)
    wd = consent.add_parser("withdraw", help="a subject withdraws a consent")
    wd.add_argument("--key", type=Path, required=True, help="the subject's Ed25519 key")
    wd.add_argument("--consent", required=True, help="consent file or digest (prefix)")
    wd.add_argument("--register", type=Path, required=True)
    wd.set_defaults(func=cmd_consent_withdraw)
    sh = consent.add_parser("show", help="list the register's consents")
    sh.add_argument("--register", type=Path, required=True)
    sh.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sh.set_defaults(func=cmd_consent_show)
