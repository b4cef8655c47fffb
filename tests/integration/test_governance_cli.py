"""Governance from the command line, as operators run it: separate processes, real files.

Holders run as ``unseen node serve --config FILE`` (vouchers required, ledgers,
revocation files); vouchers are issued with ``unseen voucher issue``; the
analyst collects receipts with ``unseen query --receipts``; the supervisor
fetches ledger ranges with ``unseen audit fetch`` and checks them with
``unseen audit verify`` and ``unseen audit check``, which must catch a ledger
that was altered, had an entry deleted, or was truncated.
"""

from __future__ import annotations

import json
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unseen
from tests.governance_fixtures import (
    World,
    build_world,
    copy_ledger,
    entries,
    fill_ledger,
    flip_hex_digit,
    head,
    start_in_process,
    tamper,
)
from unseen.engine.governance.audit import verify_ledger
from unseen.engine.governance.ledger import MAX_RANGE, Checkpoint, Receipt, read_ledger
from unseen.engine.governance.revocation import RevocationList
from unseen.engine.governance.signing import PublicKey
from unseen.federation import LocalFederation

BANKS = ("bank-a", "bank-b")
SQL = (
    "SELECT city, COUNT(*), SUM(amount) FROM loans WHERE amount > 20000 GROUP BY city ORDER BY city"
)
EXIT_REFUSED, EXIT_VERIFICATION = 1, 4


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@dataclass
class Setup:
    world: World
    federation: LocalFederation
    key_dir: Path
    root: Path

    def pub(self, holder: str) -> Path:
        return self.world.root / "keys" / f"{holder}.key.pub"

    def issue(self, holder: str, out: Path, *extra: object) -> subprocess.CompletedProcess:
        reads = [
            "loans.city=filter,group",
            "loans.amount=aggregate,filter",
            "loans.account=entity,filter",
        ]
        return unseen(
            "voucher",
            "issue",
            "--key",
            self.world.root / "keys" / "issuer.key",
            "--grantee-key",
            self.key_dir,
            "--holder",
            holder,
            *[arg for read in reads for arg in ("--read", read)],
            "--purpose",
            "credit statistics",
            "--out",
            out,
            *extra,
        )

    def query(self, *args: object) -> subprocess.CompletedProcess:
        return unseen(
            "query", "--coordinator", self.federation.address, "--key", self.key_dir, *args
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory, key):
    root = tmp_path_factory.mktemp("governance-cli")
    world = build_world(root / "world", holder_names=BANKS)
    key_dir = root / "analyst"
    key.save(key_dir)
    holders = {name: world.configs[name] for name in BANKS}
    with LocalFederation(holders, root / "logs") as federation:
        yield Setup(world, federation, key_dir, root)


@pytest.fixture(scope="module")
def vouchers(setup) -> list[Path]:
    """One voucher per holder, issued with ``unseen voucher issue``."""
    paths = []
    for holder in BANKS:
        path = setup.root / f"{holder}.voucher"
        done = setup.issue(holder, path, "--id", f"v-cli-{holder}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"voucher v-cli-{holder} written to {path}"
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def answered(setup, vouchers) -> tuple[Path, list[dict]]:
    """Two answered ``unseen query --receipts`` runs; the receipts file and the outputs."""
    receipts = setup.root / "receipts.jsonl"
    outputs = []
    for _ in range(2):
        args = [a for v in vouchers for a in ("--voucher", v)]
        done = setup.query(*args, "--receipts", receipts, "--format", "json", SQL)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    return receipts, outputs


@pytest.fixture(scope="module")
def fetched(setup, answered) -> dict[str, Path]:
    """Each holder's whole ledger, fetched by the supervisor with ``unseen audit fetch``."""
    out = {}
    for node in setup.federation.nodes:
        path = setup.root / f"{node.name}.range.json"
        supervisor_key = setup.world.root / "keys" / "supervisor.key"
        done = unseen(
            "audit", "fetch", "--holder", node.address, "--key", supervisor_key, "--out", path
        )
        assert done.returncode == 0, done.stderr
        assert f"ledger entries of holder {node.name} written to {path}" in done.stdout
        out[node.name] = path
    return out


def test_query_without_a_voucher_prints_one_line_and_exits_1(setup):
    before = {h: head(setup.world.ledgers[h]) for h in BANKS}
    done = setup.query(SQL)
    assert done.returncode == EXIT_REFUSED and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith("unseen: holder bank-a (127.0.0.1:")
    assert "holder bank-a requires a voucher; none was presented" in line
    for holder in BANKS:
        logged = entries(setup.world.ledgers[holder], before[holder])
        assert [(e.outcome, e.reason) for e in logged] == [
            ("refused", f"holder {holder} requires a voucher; none was presented")
        ]


def test_query_with_vouchers_matches_duckdb_and_keeps_receipts(setup, answered):
    receipts_file, outputs = answered
    expected = [list(r) for r in setup.world.reference.sql(SQL).fetchall()]
    for out in outputs:
        assert out["rows"] == expected and len(expected) == 3
        assert sorted(out["meta"]["holders"]) == list(BANKS)
    receipts = [Receipt.decode(line) for line in receipts_file.read_text().splitlines()]
    assert sorted(r.holder for r in receipts) == sorted(BANKS * 2)
    for receipt in receipts:
        entry = read_ledger(setup.world.ledgers[receipt.holder]).entries[receipt.index - 1]
        assert (entry.index, entry.entry_hash) == (receipt.index, receipt.entry_hash)
        assert (entry.outcome, entry.voucher_id) == ("answered", f"v-cli-{receipt.holder}")


def test_supervisor_fetches_verifies_and_checks_receipts(setup, answered, fetched):
    receipts_file, _ = answered
    for holder, path in fetched.items():
        document = json.loads(path.read_text())
        assert document["holder"] == holder
        assert len(document["range"]["entries"]) == head(setup.world.ledgers[holder]) >= 2
        Checkpoint.decode(document["checkpoint"]).verify(PublicKey.load(setup.pub(holder)))
        done = unseen("audit", "verify", path, "--holder-key", setup.pub(holder))
        assert done.returncode == 0, done.stderr
        assert one_line(done.stdout).startswith(f"ledger of {holder} is intact: ")
        # The holder's own file verifies too.
        done = unseen(
            "audit", "verify", setup.world.ledgers[holder], "--holder-key", setup.pub(holder)
        )
        assert done.returncode == 0 and "is intact" in done.stdout, done.stdout + done.stderr
    done = unseen(
        "audit",
        "check",
        "--receipts",
        receipts_file,
        *[a for h in BANKS for a in ("--ledger", fetched[h])],
        *[a for h in BANKS for a in ("--holder-key", f"{h}={setup.pub(h)}")],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5 and all(": ok: " in line for line in lines[:4])
    assert lines[-1] == "4 receipt(s) checked: all match the ledgers"
    # A ledger's entries, listed for a person.
    done = unseen("audit", "show", setup.world.ledgers["bank-a"], "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    on_disk = read_ledger(setup.world.ledgers["bank-a"]).entries
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows] == [
        (e.index, e.kind, e.outcome, e.reason, e.voucher_id) for e in on_disk
    ]


def test_unknown_supervisor_key_is_refused(setup, fetched):
    node = setup.federation.nodes[0]
    out = setup.root / "rogue.json"
    rogue_key = setup.world.root / "keys" / "rogue.key"
    done = unseen("audit", "fetch", "--holder", node.address, "--key", rogue_key, "--out", out)
    assert done.returncode == EXIT_REFUSED and not out.exists()
    assert f"holder {node.name} does not recognise that supervisor key" in one_line(done.stderr)


def _receipt_indices(receipts_file: Path, holder: str) -> list[int]:
    receipts = [Receipt.decode(line) for line in receipts_file.read_text().splitlines()]
    return sorted(r.index for r in receipts if r.holder == holder)


@pytest.mark.parametrize("attack", ["flip-a-byte", "delete-an-entry", "truncate-the-tail"])
def test_tampered_ledgers_are_caught(setup, answered, fetched, tmp_path, attack):
    receipts_file, _ = answered
    live = setup.world.ledgers["bank-a"]
    first, last = _receipt_indices(receipts_file, "bank-a")
    copy = copy_ledger(live, tmp_path / "bank-a.ledger")
    if attack == "flip-a-byte":
        flip_hex_digit(copy, read_ledger(live).entries[first - 1].result_digest)
        problem, status = f"entry {first}: fields do not match the entry hash", "rewritten"
    elif attack == "delete-an-entry":
        tamper(copy, f"DELETE FROM ledger_entries WHERE idx = {first}")
        problem, status = f"entry {first + 1}: expected entry {first} here", "missing"
    else:
        tamper(copy, f"DELETE FROM ledger_entries WHERE idx >= {last}")
        problem, status = "truncated", "beyond_tail"

    verify = unseen("audit", "verify", copy, "--holder-key", setup.pub("bank-a"))
    if attack == "truncate-the-tail":
        # A shorter ledger is consistent on its own (a documented limit) ...
        assert verify.returncode == 0, verify.stderr
        # ... but not against the checkpoint the supervisor fetched earlier.
        checkpoint = tmp_path / "checkpoint"
        checkpoint.write_text(json.loads(fetched["bank-a"].read_text())["checkpoint"] + "\n")
        verify = unseen(
            "audit", "verify", copy, "--holder-key", setup.pub("bank-a"), "--checkpoint", checkpoint
        )
    assert verify.returncode == EXIT_VERIFICATION, verify.stdout + verify.stderr
    summary = one_line(verify.stdout)
    assert summary.startswith("ledger of bank-a is NOT intact: ") and problem in summary
    assert one_line(verify.stderr) == f"unseen: ledger {copy} failed verification"

    check = unseen(
        "audit",
        "check",
        "--receipts",
        receipts_file,
        "--ledger",
        copy,
        "--ledger",
        setup.world.ledgers["bank-b"],
        *[a for h in BANKS for a in ("--holder-key", f"{h}={setup.pub(h)}")],
    )
    assert check.returncode == EXIT_VERIFICATION, check.stdout + check.stderr
    found = {line.split(":")[0]: line.split(": ")[1] for line in check.stdout.splitlines()[:-1]}
    victim = first if attack != "truncate-the-tail" else last
    assert found.pop(f"bank-a #{victim}") == status
    assert set(found.values()) == {"ok"} and len(found) == 3
    assert check.stdout.strip().splitlines()[-1].endswith("PROBLEMS FOUND")
    assert one_line(check.stderr) == "unseen: receipts do not match the holders' ledgers"


def test_voucher_workflow_from_the_command_line(setup, tmp_path):
    issuer, other = tmp_path / "issuer.key", tmp_path / "other.key"
    for path in (issuer, other):
        done = unseen("keys", "signing", "--out", path)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        kid = PublicKey.load(f"{path}.pub").key_id
        assert (
            one_line(done.stdout) == f"signing key {kid} written to {path} (public key {path}.pub)"
        )
    again = unseen("keys", "signing", "--out", issuer)
    assert again.returncode == 2 and "already exists" in one_line(again.stderr)

    voucher = tmp_path / "v.voucher"
    done = unseen(
        "voucher",
        "issue",
        "--key",
        issuer,
        "--grantee-key",
        setup.key_dir,
        "--holder",
        "bank-a",
        "--read",
        "loans.amount=aggregate",
        "--read",
        "loans.city=group,filter",
        "--purpose",
        "loan book review",
        "--quota",
        "3",
        "--not-after",
        "2099-01-01T00:00:00Z",
        "--id",
        "v-workflow-1",
        "--out",
        voucher,
    )
    assert done.returncode == 0, done.stderr

    shown = unseen("voucher", "show", voucher)
    assert shown.returncode == 0, shown.stderr
    fields = json.loads(shown.stdout)
    key_id = json.loads((setup.key_dir / "key.json").read_text())["key_id"]
    assert fields["id"] == "v-workflow-1" and fields["holder"] == "bank-a"
    assert fields["grantee"] == {"key_id": key_id, "subject": None}
    assert fields["issuer"] == PublicKey.load(f"{issuer}.pub").key_id
    assert fields["scope"] == {"loans": {"amount": ["aggregate"], "city": ["filter", "group"]}}
    assert (fields["quota"], fields["purpose"]) == (3, "loan book review")
    assert fields["not_after"] == "2099-01-01T00:00:00Z" and fields["entities"] is None

    ok = unseen("voucher", "verify", voucher, "--issuer", f"{issuer}.pub")
    assert ok.returncode == 0, ok.stderr
    assert one_line(ok.stdout).startswith("voucher v-workflow-1: signature valid, issuer trusted")
    inline = PublicKey.load(f"{issuer}.pub").to_text()
    assert unseen("voucher", "verify", voucher, "--issuer", inline).returncode == 0
    wrong = unseen("voucher", "verify", voucher, "--issuer", f"{other}.pub")
    assert wrong.returncode == EXIT_REFUSED and wrong.stdout == ""
    assert "which this holder does not trust" in one_line(wrong.stderr)

    revocations = tmp_path / "revoked.json"
    done = unseen(
        "voucher", "revoke", "--list", revocations, "--id", "v-workflow-1", "--reason", "ended"
    )
    assert done.returncode == 0, done.stderr
    assert one_line(done.stdout).startswith("voucher v-workflow-1 revoked at ")
    entry = RevocationList.load(revocations).get("v-workflow-1")
    assert entry is not None and entry.reason == "ended"


def test_revoking_with_the_cli_stops_a_running_holder_from_answering(setup, vouchers, tmp_path):
    revocable = tmp_path / "revocable.voucher"
    assert setup.issue("bank-a", revocable, "--id", "v-cli-revocable").returncode == 0
    args = ["--voucher", revocable, "--voucher", vouchers[1], "--format", "csv", SQL]
    first = setup.query(*args)
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip().splitlines()) == 4  # header and three cities
    done = unseen(
        "voucher",
        "revoke",
        "--list",
        setup.world.revocations["bank-a"],
        "--id",
        "v-cli-revocable",
        "--reason",
        "consent withdrawn",
    )
    assert done.returncode == 0, done.stderr
    before = head(setup.world.ledgers["bank-a"])
    refused = setup.query(*args)
    assert refused.returncode == EXIT_REFUSED and refused.stdout == ""
    line = one_line(refused.stderr)
    assert "voucher v-cli-revocable was revoked at " in line
    assert line.endswith(": consent withdrawn")
    logged = entries(setup.world.ledgers["bank-a"], before)
    assert [(e.outcome, e.voucher_id) for e in logged] == [("refused", "v-cli-revocable")]


def test_audit_fetch_reads_a_ledger_longer_than_one_range(tmp_path):
    world = build_world(tmp_path / "world", holder_names=("bank-a",))
    count = MAX_RANGE + 5
    fill_ledger(world.ledgers["bank-a"], "bank-a", world.holder_keys["bank-a"], count)
    assert verify_ledger(world.ledgers["bank-a"], world.holder_public["bank-a"]).entries == count
    federation = start_in_process(world)
    out = tmp_path / "range.json"
    try:
        done = unseen(
            "audit",
            "fetch",
            "--holder",
            federation.holder_addresses["bank-a"],
            "--key",
            world.root / "keys" / "supervisor.key",
            "--out",
            out,
        )
    finally:
        federation.close()
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["range"]["entries"]) == count, done.stdout


def test_issuer_approves_a_model_and_the_analyst_scores_with_its_weights(setup, tmp_path):
    """``voucher issue --model`` encrypts the reviewed weights; ``score --approved`` uses
    them; the analyst's own weights (no approval) are refused."""
    from unseen.engine.query.model import parse_model
    from unseen.oracle.plaintext import plaintext_scores

    spec = {
        "entity": "account",
        "features": [{"table": "loans", "column": "amount", "weight": 1.5e-5, "aggregate": "sum"}],
        "intercept": 0.25,
        "link": "logistic",
    }
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(spec))
    entities = tmp_path / "entities.txt"
    ids = ["acct-001", "acct-004", "acct-777"]
    entities.write_text("\n".join(ids) + "\n")
    score = [
        "score", "--coordinator", setup.federation.address, "--key", setup.key_dir,
        "--model", model_file, "--entities", entities, "--format", "json",
    ]  # fmt: skip
    plain = [tmp_path / f"{h}.plain" for h in BANKS]
    for holder, path in zip(BANKS, plain, strict=True):
        assert setup.issue(holder, path, "--read", "loans.amount=score").returncode == 0
    prepared = unseen(*score, "--prepare-only", *[a for p in plain for a in ("--voucher", p)])
    assert prepared.returncode == 0, prepared.stderr
    exponents = json.loads(prepared.stdout)["exponents"]
    refused = unseen(*score, *[a for p in plain for a in ("--voucher", p)])
    assert refused.returncode == EXIT_REFUSED and "approves no model" in refused.stderr
    weights = tmp_path / "weights.json"
    approved = [tmp_path / f"{h}.model" for h in BANKS]
    for holder, path in zip(BANKS, approved, strict=True):
        done = setup.issue(
            holder, path, "--read", "loans.amount=score", "--model", model_file,
            "--exponents", ",".join(map(str, exponents)),
            "--coordinator", setup.federation.address, "--weights-out", weights,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = unseen(*score, "--approved", weights, *[a for p in approved for a in ("--voucher", p)])
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    expected = plaintext_scores(setup.world.reference, parse_model(spec), ids)
    assert [r[0] for r in rows] == ids
    assert max(abs(r[1] - e) for r, e in zip(rows, expected, strict=True)) < 1e-6


def test_issuer_encrypted_weights_give_holders_a_30_bit_flood(setup, tmp_path):
    """Governed mode's guarantee, through the CLI: the weights ``voucher issue --model``
    encrypts are fresh public-key encryptions of real values at ``ckks.weight_scale``
    (the issuer's honest noise, not the analyst's), so the holders' flood plan for
    exactly those ciphertexts reaches s >= 30 with scores within 1e-6
    (docs/threat-model.md, "Scoring noise"). A weights file re-encrypted by the
    analyst at another scale is refused by the holders: FAILED_PRECONDITION."""
    from unseen.engine.crypto import ckks
    from unseen.engine.crypto.flooding import SCORE_TOLERANCE, SECURITY_BITS
    from unseen.engine.crypto.keys import AnalystKey
    from unseen.engine.crypto.partials import require_smudging
    from unseen.engine.governance.approval import ApprovedWeights

    spec = {
        "entity": "account",
        "features": [{"table": "loans", "column": "amount", "weight": -2.5e-6, "aggregate": "sum"}],
        "intercept": 0.1,
        "link": "identity",
    }
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(spec))
    entities = tmp_path / "entities.txt"
    entities.write_text("acct-001\nacct-004\n")
    score = [
        "score", "--coordinator", setup.federation.address, "--key", setup.key_dir,
        "--model", model_file, "--entities", entities, "--format", "json",
    ]  # fmt: skip
    plain = [tmp_path / f"{h}.plain" for h in BANKS]
    for holder, path in zip(BANKS, plain, strict=True):
        assert setup.issue(holder, path, "--read", "loans.amount=score").returncode == 0
    prepared = unseen(*score, "--prepare-only", *[a for p in plain for a in ("--voucher", p)])
    assert prepared.returncode == 0, prepared.stderr
    exponents = ",".join(map(str, json.loads(prepared.stdout)["exponents"]))
    weights = tmp_path / "weights.json"
    approved = [tmp_path / f"{h}.model" for h in BANKS]
    for holder, path in zip(BANKS, approved, strict=True):
        done = setup.issue(
            holder, path, "--read", "loans.amount=score", "--model", model_file,
            "--exponents", exponents, "--coordinator", setup.federation.address,
            "--weights-out", weights,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    key = AnalystKey.load(setup.key_dir)
    public = ckks.load_public_context(key.public)
    issued = ApprovedWeights.load(weights)
    ciphers = [ckks.load_ciphertext(public, w, ckks.PARAMS.slots, depth=0) for w in issued.weights]
    plan = require_smudging(public, ciphers)
    assert plan.smudging and plan.budget.security >= SECURITY_BITS
    assert plan.budget.error * 8 <= SCORE_TOLERANCE
    vouchers = [a for p in approved for a in ("--voucher", p)]
    done = unseen(*score, "--approved", weights, *vouchers)
    assert done.returncode == 0, done.stderr
    # The analyst's own encryption of the same real weights at the context's scale.
    real = [-2.5e-6 * 2.0**e for e in issued.exponents]
    own = tuple(bytes(ckks.encrypt(key.secret, [w] * ckks.PARAMS.slots).serialize()) for w in real)
    ApprovedWeights(issued.key_id, issued.exponents, own).save(tmp_path / "own.json")
    refused = unseen(*score, "--approved", tmp_path / "own.json", *vouchers)
    assert refused.returncode != 0 and "30 bits" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
