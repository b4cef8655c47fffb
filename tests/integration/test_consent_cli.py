"""``unseen asset|consent ...`` and ``unseen audit flows`` as an exchange, a subject and a
supervisor use them (in-process ``unseen.cli.main``, real files, a real ledger)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.shards import write_shard
from unseen.cli import main
from unseen.engine.governance.asset import Registration
from unseen.engine.governance.consent import ConsentRegister, grant, publish
from unseen.engine.governance.ledger import Ledger
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.stewardship import ledger_note
from unseen.engine.governance.voucher import SignedVoucher

SCHEMA = [("uscc", "VARCHAR"), ("city", "VARCHAR"), ("kwh", "DOUBLE")]
ROWS = [(f"9133{i:014d}", "Hangzhou", 10.0 * i) for i in range(6)]


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def setup(tmp_path, capsys):
    data = write_shard(tmp_path / "power.csv", SCHEMA, ROWS)
    for name in ("exchange", "subject"):
        assert run(capsys, "keys", "signing", "--out", str(tmp_path / f"{name}.key"))[0] == 0
    return tmp_path, data


def test_asset_register_list_show_verify(setup, capsys):
    root, data = setup
    asset = root / "power.asset"
    code, out = run(
        capsys, "asset", "register", "--key", str(root / "exchange.key"), "--holder", "grid",
        "--table", "power", "--source", str(data), "--owner", "State Grid", "--frequency",
        "monthly", "--grade", "uscc=internal", "--grade", "kwh=sensitive", "--default-grade",
        "public", "--out", str(asset),
    )  # fmt: skip
    assert code == 0, out
    registration = Registration.load(asset)
    assert registration.grades == {"uscc": "internal", "city": "public", "kwh": "sensitive"}
    code, out = run(capsys, "asset", "list", str(root), "--format", "json")
    rows = json.loads(out)["rows"]
    assert [r[:5] for r in rows] == [[registration.asset_id, 1, "active", "grid", "power"]]
    code, out = run(capsys, "asset", "show", str(asset))
    assert json.loads(out)["owner"] == "State Grid"
    pub = str(root / "exchange.key.pub")
    code, out = run(capsys, "asset", "verify", str(asset), "--issuer", pub, "--source", str(data))
    assert code == 0 and "matches the table's schema" in out
    # The table gained a column since: the registration no longer matches.
    changed = write_shard(
        root / "changed.csv", [*SCHEMA, ("tax", "DOUBLE")], [(*r, 1.0) for r in ROWS]
    )
    code, out = run(
        capsys, "asset", "verify", str(asset), "--issuer", pub, "--source", str(changed)
    )
    assert code != 0 and "does not match table power's schema" in out
    # Another key's registration is refused.
    code, out = run(
        capsys, "asset", "verify", str(asset), "--issuer", str(root / "subject.key.pub")
    )
    assert code != 0 and "does not trust" in out


def test_consent_grant_show_withdraw_and_voucher_reference(setup, capsys):
    root, _ = setup
    register = root / "consents.json"
    subject = ROWS[0][0]
    subject_pub = SigningKey.load(root / "subject.key").public_key.to_text()
    code, out = run(
        capsys, "consent", "registry", "--key", str(root / "exchange.key"),
        "--subject", f"{subject}={subject_pub}", "--out", str(root / "subjects.token"),
    )  # fmt: skip
    assert code == 0, out
    grantee = "ab" * 32
    code, out = run(
        capsys, "consent", "grant", "--key", str(root / "subject.key"), "--subject", subject,
        "--grantee", grantee, "--purpose", "loan scoring", "--holder", "grid",
        "--register", str(register), "--out", str(root / "c.consent"),
    )  # fmt: skip
    assert code == 0, out
    (digest,) = ConsentRegister.load(register).consents
    code, out = run(capsys, "consent", "show", "--register", str(register), "--format", "json")
    assert json.loads(out)["rows"][0][1:2] == [subject]
    assert json.loads(out)["rows"][0][-1] == "active"
    code, out = run(
        capsys, "voucher", "issue", "--key", str(root / "exchange.key"), "--grantee", grantee,
        "--holder", "grid", "--read", "power.kwh=score", "--purpose", "loan scoring",
        "--consent", str(root / "c.consent"), "--asset", "asset-0123456789abcdef",
    )  # fmt: skip
    assert code == 0, out
    voucher = SignedVoucher.decode(out.strip()).voucher
    assert voucher.consents == {digest} and voucher.assets == {"asset-0123456789abcdef"}
    # Only the subject's own key withdraws.
    code, out = run(
        capsys, "consent", "withdraw", "--key", str(root / "exchange.key"),
        "--consent", digest[:12], "--register", str(register),
    )  # fmt: skip
    assert code != 0 and "only the subject" in out
    code, out = run(
        capsys, "consent", "withdraw", "--key", str(root / "subject.key"),
        "--consent", digest[:12], "--register", str(register),
    )  # fmt: skip
    assert code == 0, out
    code, out = run(capsys, "consent", "show", "--register", str(register), "--format", "json")
    assert json.loads(out)["rows"][0][-1] == "withdrawn"


def test_audit_flows_reports_who_got_what_under_whose_consent(setup, capsys):
    root, _ = setup
    register = root / "consents.json"
    subject_key = SigningKey.load(root / "subject.key")
    consent = grant(
        subject_key, subject="s-1", grantee="ab" * 32, purpose="loan scoring",
        holders=["grid"], not_after=dt.datetime(2099, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    publish(register, consent)
    ledger = Ledger(root / "grid.ledger", "grid", SigningKey.generate())
    asset = frozenset({"asset-0123456789abcdef"})
    analyst = "ab" * 32
    with_consent = ledger_note(asset, [consent.digest], "loan scoring")
    for _ in range(2):
        ledger.append(kind="score", analyst=analyst, outcome="answered", reason=with_consent)
    ledger.append(
        kind="score", analyst=analyst, outcome="answered", reason=ledger_note(asset, [], "x")
    )
    ledger.append(
        kind="aggregate",
        analyst=analyst,
        outcome="answered",
        reason=ledger_note(asset, [], "stats"),
    )
    ledger.append(kind="score", analyst=analyst, outcome="refused", reason="refused for a reason")
    # Joint training (issue 15): a prediction names entities like a score does; an
    # alignment (PSI) names none; both are flows the supervisor sees.
    ledger.append(
        kind="predict", analyst=analyst, outcome="answered", reason=ledger_note(asset, [], "y")
    )
    ledger.append(
        kind="align", analyst=analyst, outcome="answered", reason=ledger_note(asset, [], "y")
    )
    ledger.close()
    code, out = run(
        capsys, "audit", "flows", "--ledger", str(root / "grid.ledger"),
        "--consents", str(register),
        "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    flows = {(f["kind"], f["purpose"]): f for f in report["flows"]}
    assert flows[("score", "loan scoring")]["count"] == 2
    assert flows[("score", "loan scoring")]["subjects"] == ["s-1"]
    assert flows[("score", "x")]["consent"] == "MISSING"
    assert flows[("aggregate", "stats")]["consent"] == "not entity-scoped"
    assert flows[("predict", "y")]["consent"] == "MISSING"
    assert flows[("align", "y")]["consent"] == "not entity-scoped"
    assert report["lacking_consent"] == 2 and len(flows) == 5
    code, out = run(
        capsys, "audit", "flows", "--ledger", str(root / "grid.ledger"),
        "--consents", str(register),
        "--strict",
    )  # fmt: skip
    assert code == 1 and "2 flow(s) lacking consent" in out


def test_the_catalog_command_shows_grades_and_asset_ids(tmp_path, capsys):
    from tests.consent_fixtures import build_consent_world
    from tests.governance_fixtures import start_in_process

    cw = build_consent_world(tmp_path)
    federation = start_in_process(cw.world)
    try:
        code, out = run(capsys, "catalog", "--coordinator", federation.address, "--format", "json")
    finally:
        federation.close()
    assert code == 0, out
    document = json.loads(out)
    assert document["columns"][-2:] == ["grade", "assets"]
    rows = {(r[0], r[1]): r for r in document["rows"]}
    assert rows[("power", "kwh")][-2:] == ["internal", cw.registrations["grid"].asset_id]
    assert rows[("loans", "officer")][-2] == "core"
