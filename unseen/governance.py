"""Governance commands: signing keys, vouchers and audits (``unseen voucher|audit ...``).

Kept apart from ``unseen.cli`` so the main command table stays short; each
function takes parsed arguments and returns an exit code, raising the engine's
errors for ``cli.main`` to report in one line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from unseen.engine.crypto.keys import META_FILE
from unseen.engine.errors import ConfigError, VerificationError
from unseen.engine.governance.access import sign_ledger_request
from unseen.engine.governance.approval import ModelApproval
from unseen.engine.governance.audit import check_receipts, follow_relays, verify_ledger
from unseen.engine.governance.consent import CONSENT_PREFIX, publish
from unseen.engine.governance.ledger import Checkpoint, LedgerRange, Receipt, read_ledger
from unseen.engine.governance.revocation import revoke
from unseen.engine.governance.signing import PublicKey, SigningKey, utc_text
from unseen.engine.governance.tokens import Token
from unseen.engine.governance.voucher import SignedVoucher, issue, verify
from unseen.engine.privacy.budget import CHARGE_KIND, spent_by_voucher
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.result import Result
from unseen.engine.transport.peers import CoordinatorPeer, HolderPeer
from unseen.engine.transport.tls import TlsFiles
from unseen.stewardship import add_audit_flows

__all__ = ["add_commands", "add_tls_flags", "read_vouchers", "tls_files", "write_receipts"]

log = logging.getLogger("unseen")


def read_vouchers(paths: list[Path]) -> list[str]:
    """Voucher lines from files (a file may hold several, one per line)."""
    lines: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read voucher file {path}: {exc.strerror}") from exc
        for line in text.splitlines():
            if line.strip():
                SignedVoucher.decode(line.strip())  # refuse garbage before sending it
                lines.append(line.strip())
    return lines


def write_receipts(path: Path | None, receipts: list[dict[str, Any]]) -> None:
    """Append receipts (one JSON object per line) for a later supervisor check."""
    if path is None or not receipts:
        return
    with open(path, "a") as handle:
        for receipt in receipts:
            handle.write(json.dumps(receipt, sort_keys=True) + "\n")


def _utc(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _scope(reads: list[str]) -> dict[str, dict[str, list[str]]]:
    """``--read TABLE.COLUMN=op,op`` (or ``--read TABLE`` for COUNT(*) only)."""
    scope: dict[str, dict[str, list[str]]] = {}
    for item in reads:
        target, sep, ops = item.partition("=")
        table, dot, column = target.partition(".")
        if not table or (dot and not column) or (sep and not ops) or (column and not sep):
            raise ConfigError(f"--read {item!r}: expected TABLE.COLUMN=op[,op] or TABLE")
        columns = scope.setdefault(table, {})
        if column:
            columns.setdefault(column, []).extend(o.strip() for o in ops.split(","))
    return scope


def _public_key(spec: str) -> PublicKey:
    if spec.startswith("ed25519:"):
        return PublicKey.from_text(spec)
    return PublicKey.load(Path(spec))


def cmd_keys_signing(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    key.save(args.out)
    print(f"signing key {key.key_id} written to {args.out} (public key {args.out}.pub)")
    return 0


def cmd_voucher_issue(args: argparse.Namespace) -> int:
    key = SigningKey.load(args.key)
    grantee = args.grantee
    if args.grantee_key is not None:
        meta = json.loads((args.grantee_key / META_FILE).read_text())
        grantee = meta["key_id"]
    if not grantee:
        raise ConfigError("give --grantee KEY_ID or --grantee-key DIR")
    not_after = (
        _utc(args.not_after)
        if args.not_after
        else (dt.datetime.now(dt.UTC) + dt.timedelta(days=args.days))
    )
    entities = None
    if args.entities is not None:
        entities = [line.strip() for line in args.entities.read_text().splitlines() if line.strip()]
    approval = _approve(args, grantee) if args.model is not None else None
    signed = issue(
        key,
        grantee=grantee,
        holder=args.holder,
        scope=_scope(args.read),
        purpose=args.purpose,
        not_after=not_after,
        not_before=_utc(args.not_before) if args.not_before else None,
        quota=args.quota,
        entities=entities,
        grantee_subject=args.subject,
        voucher_id=args.id,
        model=approval,
        assets=args.asset or None,
        consents=_consent_digests(args.consent) or None,
        privacy_rho=args.privacy_rho,
    )
    if args.register is not None and signed.voucher.consents:
        publish(args.register, sets=[sorted(signed.voucher.consents)])
    if args.out is not None:
        signed.save(args.out)
        print(f"voucher {signed.voucher_id} written to {args.out}")
    else:
        print(signed.encode())
    return 0


def _approve(args: argparse.Namespace, grantee: str) -> ModelApproval:
    """Review step of ``voucher issue --model``: encrypt the model's real weights under the
    analyst's public key, write them for the analyst, return the approval to sign."""
    from unseen.engine.client import feature_specs
    from unseen.engine.crypto import ckks
    from unseen.engine.crypto.keys import PUBLIC_FILE
    from unseen.engine.governance.approval import ApprovedWeights, approve_model
    from unseen.engine.query.model import load_model
    from unseen.engine.transport import serde

    if args.grantee_key is None or args.coordinator is None or args.weights_out is None:
        raise ConfigError(
            "--model needs --grantee-key DIR (the analyst's public key), --coordinator "
            "HOST:PORT (the catalog the features compile against) and --weights-out FILE"
        )
    public = (args.grantee_key / PUBLIC_FILE).read_bytes()
    model = load_model(args.model)
    try:
        exponents = [int(e) for e in args.exponents.split(",")] if args.exponents else []
    except ValueError as exc:
        raise ConfigError("--exponents is a comma-separated list of integers") from exc
    if len(exponents) != len(model.features):
        raise ConfigError(
            f"--exponents needs one exponent per feature ({len(model.features)}); the analyst "
            "gets them with: unseen score ... --prepare-only"
        )
    specs = feature_specs(model, _catalog(args))
    # Vouchers for several holders approve one set of ciphertexts: an existing
    # weights file (the issuer's own, from an earlier run) is reused.
    earlier = ApprovedWeights.load(args.weights_out) if args.weights_out.exists() else None
    approval, weights = approve_model(
        model.link,
        [serde.feature_bytes(s) for s in specs],
        [f.weight for f in model.features],
        exponents,
        public,
        earlier,
    )
    if weights.key_id != grantee or ckks.key_id(public) != grantee:
        raise ConfigError("the analyst's public key does not match the voucher's grantee")
    if earlier is None:
        weights.save(args.weights_out)
        print(f"approved weights for {len(specs)} features written to {args.weights_out}")
    return approval


def _catalog(args: argparse.Namespace) -> Catalog:
    """The federation's public catalog, which the model's features compile against."""
    peer = CoordinatorPeer(args.coordinator, tls_files(args))
    try:
        return peer.catalog()
    finally:
        peer.close()


def _consent_digests(specs: list[str]) -> list[str]:
    """``--consent`` values: digests, or consent files (each names its own digest)."""
    return [Token.load(s, CONSENT_PREFIX).digest if Path(s).is_file() else s for s in specs]


def cmd_voucher_show(args: argparse.Namespace) -> int:
    for signed in map(SignedVoucher.decode, read_vouchers([args.file])):
        print(json.dumps(json.loads(signed.payload), indent=2, sort_keys=True))
    return 0


def cmd_voucher_verify(args: argparse.Namespace) -> int:
    trusted = {k.key_id: k for k in map(_public_key, args.issuer)}
    for signed in map(SignedVoucher.decode, read_vouchers([args.file])):
        voucher = verify(signed, trusted, dt.datetime.now(dt.UTC))
        print(f"voucher {voucher.voucher_id}: signature valid, issuer trusted, within its window")
    return 0


def cmd_voucher_revoke(args: argparse.Namespace) -> int:
    entry = revoke(args.list, args.id, args.reason)
    print(f"voucher {entry.voucher_id} revoked at {utc_text(entry.revoked_at)}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    key = _public_key(args.holder_key)
    checkpoints = [
        Checkpoint.decode(line)
        for path in args.checkpoint
        for line in Path(path).read_text().splitlines()
        if line.strip()
    ]
    source: Path | LedgerRange = args.ledger
    if args.ledger.suffix == ".json":
        source = _fetched_range(args.ledger)
    report = verify_ledger(source, key, checkpoints)
    print(report.summary())
    if not report.ok:
        raise VerificationError(f"ledger {args.ledger} failed verification")
    return 0


def _fetched_range(path: Path) -> LedgerRange:
    """The ledger range in a file written by ``unseen audit fetch``."""
    return LedgerRange.from_dict(json.loads(path.read_text())["range"])


def cmd_audit_show(args: argparse.Namespace) -> int:
    ledger_range = read_ledger(args.ledger, args.start, args.end)
    rows = [
        [
            e.index,
            utc_text(e.time),
            e.kind,
            e.outcome,
            e.reason,
            e.voucher_id,
            e.analyst[:16],
            e.result_digest[:16],
        ]
        for e in ledger_range.entries
    ]
    result = Result(
        ["index", "time", "kind", "outcome", "reason", "voucher", "analyst", "result"],
        rows,
        {"holder": ledger_range.holder},
    )
    print(result.format(args.format))
    return 0


def cmd_audit_budget(args: argparse.Namespace) -> int:
    """Privacy budget spent per voucher, recomputed from the ledger's charge entries."""
    source = _fetched_range(args.ledger) if args.ledger.suffix == ".json" else None
    ledger_range = source or read_ledger(args.ledger)
    spent = spent_by_voucher(ledger_range.entries)
    charges: dict[str, int] = {}
    for entry in ledger_range.entries:
        if entry.kind == CHARGE_KIND and entry.outcome == "answered":
            charges[entry.voucher_id] = charges.get(entry.voucher_id, 0) + 1
    rows = [[vid, charges.get(vid, 0), str(rho), float(rho)] for vid, rho in sorted(spent.items())]
    result = Result(
        ["voucher", "charges", "rho_spent", "rho_spent_float"],
        rows,
        {"holder": ledger_range.holder},
    )
    print(result.format(args.format))
    return 0


def fetch_ledger(
    address: str,
    key: SigningKey,
    start: int = 1,
    end: int = 0,
    tls: TlsFiles | None = None,
    holder: str | None = None,
) -> tuple[str, dict[str, Any], str]:
    """Fetch ``[start, end)`` (``end`` 0: to the head) of a holder's ledger as its supervisor.

    Returns the holder's name, the range as one document (pages merged) and the
    holder's signed checkpoint. ``holder`` saves asking the holder its name.
    """
    peer = HolderPeer(address, tls)
    pages: list[dict[str, Any]] = []
    try:
        if holder is None:
            holder = peer.catalog().holder
        while True:
            request, signature = sign_ledger_request(key, holder, start, end)
            text, checkpoint = peer.read_ledger(
                key.key_id, start, end, str(request["issued_at"]), signature
            )
            page = json.loads(text)
            pages.append(page)
            # A holder answers at most one page; ask again from where it stopped.
            wanted_end = end or page["head"] + 1
            if page["end"] >= wanted_end or page["end"] <= start:
                break
            start = page["end"]
    finally:
        peer.close()
    merged = dict(pages[-1])
    merged["start"] = pages[0]["start"]
    merged["entries"] = [entry for page in pages for entry in page["entries"]]
    return holder, merged, checkpoint


def cmd_audit_fetch(args: argparse.Namespace) -> int:
    """Fetch ``[start, end)`` of a holder's ledger, page by page, into one range file."""
    name, merged, checkpoint = fetch_ledger(
        args.holder, SigningKey.load(args.key), args.start, args.end, tls_files(args)
    )
    document = {"holder": name, "range": merged, "checkpoint": checkpoint}
    args.out.write_text(json.dumps(document))
    print(f"{len(merged['entries'])} ledger entries of holder {name} written to {args.out}")
    return 0


def cmd_audit_check(args: argparse.Namespace) -> int:
    receipts = [
        Receipt.decode(json.dumps(json.loads(line)))
        for path in args.receipts
        for line in Path(path).read_text().splitlines()
        if line.strip()
    ]
    ranges = []
    for spec in args.ledger:
        path = Path(spec)
        ranges.append(_fetched_range(path) if path.suffix == ".json" else read_ledger(path))
    keys = {}
    for spec in args.holder_key:
        name, sep, key = spec.partition("=")
        if not sep:
            raise ConfigError(f"--holder-key {spec!r}: expected NAME=PUBLIC_KEY")
        keys[name] = _public_key(key)
    report = check_receipts(receipts, ranges, keys)
    for finding in report.findings:
        detail = f": {finding.detail}" if finding.detail else ""
        print(f"{finding.receipt.holder} #{finding.receipt.index}: {finding.status}{detail}")
    # Hierarchy (issue 14.1): a city's relay entry commits to its holders' receipts.
    relays = follow_relays(receipts, ranges)
    for relay in relays:
        print(
            f"{relay.receipt.holder} #{relay.receipt.index}: relay {relay.status}: {relay.detail}"
        )
    ok = report.ok and not report.unchecked and all(r.status == "ok" for r in relays)
    print(
        f"{len(receipts)} receipt(s) checked: {'all match the ledgers' if ok else 'PROBLEMS FOUND'}"
    )
    if not ok:
        raise VerificationError("receipts do not match the holders' ledgers")
    return 0


def _cmd_audit_lineage(args: argparse.Namespace) -> int:
    from unseen.joint import cmd_audit_lineage  # loads the HE stack only when used

    return cmd_audit_lineage(args)


def add_commands(commands: Any, parser_class: type) -> None:
    """Register ``keys signing``, ``voucher ...`` and ``audit ...`` on the main parser."""
    voucher = commands.add_parser("voucher", help="data asset vouchers").add_subparsers(
        dest="voucher_command", required=True, parser_class=parser_class
    )
    new = voucher.add_parser("issue", help="sign a voucher")
    new.add_argument("--key", type=Path, required=True, help="issuer's Ed25519 private key")
    new.add_argument("--grantee", default="", help="the analyst's key id")
    new.add_argument("--grantee-key", type=Path, default=None, help="the analyst's key directory")
    new.add_argument("--subject", default=None, help="bind to a certificate subject")
    new.add_argument("--holder", required=True)
    new.add_argument(
        "--read",
        action="append",
        default=[],
        metavar="TABLE.COLUMN=OPS",
        help="what may be read and how (filter, group, aggregate, score, entity)",
    )
    new.add_argument("--purpose", required=True)
    new.add_argument("--not-before", default=None)
    new.add_argument("--not-after", default=None)
    new.add_argument("--days", type=float, default=30.0, help="validity when --not-after is absent")
    new.add_argument("--quota", type=int, default=None)
    new.add_argument(
        "--privacy-rho",
        default=None,
        metavar="RHO",
        help="zCDP privacy budget each holder charges dp queries to (e.g. 1 or 1/2)",
    )
    new.add_argument("--entities", type=Path, default=None, help="file of entity ids, one a line")
    new.add_argument("--id", default=None)
    new.add_argument("--out", type=Path, default=None)
    new.add_argument("--model", type=Path, default=None, help="approve this model JSON file")
    new.add_argument("--exponents", default="", help="the model's feature exponents, e.g. 0,17")
    new.add_argument("--coordinator", default=None, help="catalog for --model (HOST:PORT)")
    new.add_argument("--weights-out", type=Path, default=None, help="encrypted weights file")
    add_tls_flags(new)
    new.add_argument("--asset", action="append", default=[], help="asset id the grant is for")
    new.add_argument(
        "--consent", action="append", default=[], help="a consent (file or digest) relied on"
    )
    new.add_argument(
        "--register", type=Path, default=None, help="publish its consent set in this register"
    )
    new.set_defaults(func=cmd_voucher_issue)
    show = voucher.add_parser("show", help="print a voucher's fields")
    show.add_argument("file", type=Path)
    show.set_defaults(func=cmd_voucher_show)
    check = voucher.add_parser("verify", help="check a voucher's signature and window")
    check.add_argument("file", type=Path)
    check.add_argument(
        "--issuer",
        action="append",
        required=True,
        help="trusted issuer public key (file or ed25519:...)",
    )
    check.set_defaults(func=cmd_voucher_verify)
    rev = voucher.add_parser("revoke", help="add a voucher to a holder's revocation list")
    rev.add_argument("--list", type=Path, required=True, help="the revocation list file")
    rev.add_argument("--id", required=True)
    rev.add_argument("--reason", required=True)
    rev.set_defaults(func=cmd_voucher_revoke)

    audit = commands.add_parser("audit", help="ledgers and receipts").add_subparsers(
        dest="audit_command", required=True, parser_class=parser_class
    )
    ver = audit.add_parser("verify", help="check a ledger's chain and signatures")
    ver.add_argument("ledger", type=Path, help="ledger file, or a range fetched with audit fetch")
    ver.add_argument("--holder-key", required=True, help="the holder's public key")
    ver.add_argument("--checkpoint", action="append", default=[], type=Path)
    ver.set_defaults(func=cmd_audit_verify)
    sh = audit.add_parser("show", help="list ledger entries")
    sh.add_argument("ledger", type=Path)
    sh.add_argument("--start", type=int, default=1)
    sh.add_argument("--end", type=int, default=None)
    sh.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sh.set_defaults(func=cmd_audit_show)
    bud = audit.add_parser("budget", help="privacy budget spent per voucher (dp tables)")
    bud.add_argument("ledger", type=Path, help="ledger file, or a range fetched with audit fetch")
    bud.add_argument("--format", choices=["table", "json", "csv"], default="table")
    bud.set_defaults(func=cmd_audit_budget)
    fetch = audit.add_parser("fetch", help="fetch a ledger range from a holder (supervisor)")
    fetch.add_argument("--holder", required=True, metavar="HOST:PORT")
    fetch.add_argument("--key", type=Path, required=True, help="supervisor's Ed25519 key")
    fetch.add_argument("--start", type=int, default=1)
    fetch.add_argument("--end", type=int, default=0)
    fetch.add_argument("--out", type=Path, required=True)
    add_tls_flags(fetch)
    fetch.set_defaults(func=cmd_audit_fetch)
    chk = audit.add_parser("check", help="match analysts' receipts against holders' ledgers")
    chk.add_argument("--receipts", action="append", type=Path, required=True)
    chk.add_argument(
        "--ledger",
        action="append",
        required=True,
        help="ledger file or fetched range (repeat per holder)",
    )
    chk.add_argument("--holder-key", action="append", required=True, metavar="NAME=KEY")
    chk.set_defaults(func=cmd_audit_check)
    add_audit_flows(audit)
    # -- joint modelling (issue 15) --
    lin = audit.add_parser("lineage", help="check a jointly trained model's signed lineage")
    lin.add_argument("--model", type=Path, required=True)
    lin.add_argument("--holder-key", action="append", required=True, metavar="NAME=KEY")
    lin.set_defaults(func=_cmd_audit_lineage)


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert/--tls-key/--tls-ca`` for mTLS, and ``--insecure`` for loopback plaintext."""
    parser.add_argument("--tls-cert", type=Path, default=None, help="this party's certificate")
    parser.add_argument("--tls-key", type=Path, default=None, help="this party's private key")
    parser.add_argument("--tls-ca", type=Path, default=None, help="the CA certificate to trust")
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext gRPC (loopback addresses only)"
    )


def tls_files(
    args: argparse.Namespace, config: Any = None, server: bool = False
) -> TlsFiles | None:
    """TLS files from the flags (or a node config's [tls]); None means plaintext.

    Plaintext is only ever possible on loopback addresses (the servers and
    channels refuse anything else); a server serving plaintext logs a warning.
    Clients stay silent so that a refusal is still one line on stderr.
    """
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if config is not None and not any(given):
        given = [config.cert, config.key, config.client_ca]
    if all(given):
        if args.insecure:
            raise ConfigError("--insecure contradicts the TLS files given")
        return TlsFiles(*given)
    if any(given):
        raise ConfigError("mTLS needs all three of --tls-cert, --tls-key and --tls-ca")
    if not server:
        return None
    log.warning(
        "plaintext gRPC%s: allowed on loopback addresses only; create certificates with "
        "unseen certs for anything else",
        " (--insecure)" if args.insecure else " (no TLS files given)",
    )
    return None
