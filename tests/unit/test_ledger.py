"""The ledger: durable appends, atomic quotas, refusals logged, and tampering detected."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.governance_fixtures import ANALYST, PLAN, request, tamper
from unseen.engine.errors import (
    ConfigError,
    PolicyError,
    QueryError,
    SourceError,
    VerificationError,
)
from unseen.engine.governance.audit import check_receipts, verify_ledger
from unseen.engine.governance.ledger import (
    GENESIS_HASH,
    Checkpoint,
    Ledger,
    LedgerEntry,
    LedgerRange,
    LoggedRefusal,
    Receipt,
    read_ledger,
    result_digest,
)
from unseen.engine.governance.revocation import Revocation, RevocationList
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import SignedVoucher, VoucherPolicy, issue

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def holder_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def issuer() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def ledger(tmp_path, holder_key):
    with Ledger(tmp_path / "tax.ledger", "tax", holder_key) as opened:
        yield opened


def voucher(issuer: SigningKey, **overrides) -> SignedVoucher:
    fields = {
        "grantee": ANALYST,
        "holder": "tax",
        "scope": {"tax": {"revenue": ["aggregate"], "uscc": ["entity"]}},
        "purpose": "loan scoring",
        "not_before": dt.datetime(2026, 11, 1, tzinfo=UTC),
        "not_after": dt.datetime(2026, 11, 20, tzinfo=UTC),
        "quota": 5,
        "voucher_id": "v-123",
    }
    fields.update(overrides)
    return issue(issuer, **fields)


def policy(issuer: SigningKey, revoked=frozenset(), required=True) -> VoucherPolicy:
    return VoucherPolicy(required, {issuer.key_id: issuer.public_key}, revoked)


def untouched():
    raise AssertionError("the holder touched data for a refused request")


def rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT * FROM ledger_entries ORDER BY idx").fetchall()
    finally:
        con.close()


# -- appending ----------------------------------------------------------------------------------


def test_append_chains_signs_and_returns_receipts(ledger, holder_key, tmp_path):
    receipts = [
        ledger.append(kind="aggregate", analyst=ANALYST, outcome="answered", plan_digest=PLAN),
        ledger.append(kind="score", analyst=ANALYST, outcome="refused", reason="no voucher"),
        ledger.append(kind="register_key", analyst="", outcome="answered", now=NOW),
    ]
    assert [r.index for r in receipts] == [1, 2, 3]
    entries = ledger.read_range().entries
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert entries[2].time == NOW
    for receipt, entry in zip(receipts, entries, strict=True):
        assert receipt == entry.receipt()
        assert entry.compute_hash() == entry.entry_hash
        receipt.verify(holder_key.public_key)
        assert Receipt.decode(receipt.encode()) == receipt
        assert LedgerEntry.from_dict(entry.to_dict()) == entry
    assert ledger.head() == (3, entries[2].entry_hash)
    report = verify_ledger(tmp_path / "tax.ledger", holder_key.public_key)
    assert report.ok, report.problems
    assert report.summary().startswith("ledger of tax is intact: 3 entries")


def test_the_ledger_is_append_only_and_holds_no_values(ledger):
    ledger.append(kind="aggregate", analyst=ANALYST, outcome="answered", plan_digest=PLAN)
    con = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("UPDATE ledger_entries SET reason = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM ledger_entries")
    columns = [r[1] for r in con.execute("PRAGMA table_info(ledger_entries)")]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert columns == [
        "idx",
        "time",
        "kind",
        "plan_digest",
        "voucher_id",
        "analyst",
        "outcome",
        "reason",
        "result_digest",
        "prev_hash",
        "entry_hash",
        "signature",
    ]


def test_the_connection_is_durable(ledger):
    con = ledger._con()
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "Aggregate!"}, "kind"),
        ({"outcome": "maybe"}, "outcome"),
        ({"analyst": "xyz"}, "analyst"),
        ({"plan_digest": "12"}, "plan_digest"),
        ({"outcome": "refused"}, "needs a reason"),
        ({"voucher_id": "bad id"}, "voucher_id"),
        # A "^...$" pattern admits one trailing newline; a field must not carry one.
        ({"kind": "aggregate\n"}, "kind"),
        ({"analyst": ANALYST + "\n"}, "analyst"),
        ({"voucher_id": "v-1\n"}, "voucher_id"),
    ],
)
def test_append_refuses_malformed_fields(ledger, fields, message):
    base = {"kind": "aggregate", "analyst": ANALYST, "outcome": "answered"}
    with pytest.raises(ValueError, match=message):
        ledger.append(**{**base, **fields})
    assert ledger.head() == (0, GENESIS_HASH)


def test_a_ledger_belongs_to_one_holder_and_key(tmp_path, holder_key):
    path = tmp_path / "l"
    Ledger(path, "tax", holder_key).close()
    with pytest.raises(ConfigError, match="belongs to holder tax, not grid"):
        Ledger(path, "grid", holder_key)
    with pytest.raises(ConfigError, match="start a new ledger for a new key"):
        Ledger(path, "tax", SigningKey.generate())
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE ledger_meta (key TEXT, value TEXT)")
    con.execute("INSERT INTO ledger_meta VALUES ('format', 'something-else')")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="not an unseen ledger"):
        Ledger(other, "tax", holder_key)
    with pytest.raises(ConfigError, match="no ledger at"):
        verify_ledger(tmp_path / "missing", holder_key.public_key)
    # A data file named by mistake is refused, not turned into a ledger.
    data = tmp_path / "loans.sqlite"
    con = sqlite3.connect(data)
    con.execute("CREATE TABLE loans (amount INTEGER)")
    con.commit()
    con.close()
    before = data.read_bytes()
    with pytest.raises(ConfigError, match="is not an unseen ledger"):
        Ledger(data, "tax", holder_key)
    assert data.read_bytes() == before
    (tmp_path / "text").write_text("hello, this is not a database at all" * 100)
    with pytest.raises(ConfigError, match="is not an unseen ledger"):
        Ledger(tmp_path / "text", "tax", holder_key)


def test_sqlite_failures_become_source_errors(ledger, holder_key):
    # Another writer holds the lock past our timeout: fail closed, clearly.
    impatient = Ledger(ledger.path, "tax", holder_key, timeout=0.05)
    blocker = sqlite3.connect(ledger.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SourceError, match="database is locked"):
            impatient.append(kind="aggregate", analyst=ANALYST, outcome="answered")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    impatient.append(kind="aggregate", analyst=ANALYST, outcome="answered")
    impatient.close()
    assert ledger.head()[0] == 1


def test_threads_sharing_one_ledger_keep_the_chain(ledger, holder_key):
    def work():
        for _ in range(10):
            ledger.append(kind="aggregate", analyst=ANALYST, outcome="answered")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.head()[0] == 80
    assert verify_ledger(ledger.path, holder_key.public_key).ok


def test_read_range_pages_and_reports_the_head(ledger):
    for _ in range(10):
        ledger.append(kind="aggregate", analyst=ANALYST, outcome="answered")
    page = ledger.read_range(1, None, limit=4)
    assert (page.start, page.end, page.head, len(page.entries)) == (1, 5, 10, 4)
    seen = list(page.entries)
    while page.end <= page.head:
        page = ledger.read_range(page.end, None, limit=4)
        seen += page.entries
    assert [e.index for e in seen] == list(range(1, 11))
    assert ledger.read_range(3, 5).entries[-1].index == 4
    assert ledger.read_range(20).entries == ()
    assert ledger.entry(7).index == 7 and ledger.entry(11) is None
    with pytest.raises(QueryError):
        ledger.read_range(5, 3)
    with pytest.raises(QueryError):
        ledger.read_range(0)
    rng = ledger.read_range(3, 7)
    assert LedgerRange.from_dict(rng.to_dict()) == rng


def test_the_page_cap_bounds_the_rpc_not_a_ledger_file(tmp_path, holder_key, monkeypatch):
    # MAX_RANGE (10,000) bounds what one ReadLedger reply carries; reading a
    # ledger file (audit show/check/verify) must still see every entry.
    monkeypatch.setattr("unseen.engine.governance.ledger.MAX_RANGE", 3)
    path = tmp_path / "tax.ledger"
    with Ledger(path, "tax", holder_key) as opened:
        for _ in range(5):
            opened.append(kind="aggregate", analyst=ANALYST, outcome="answered")
        assert [e.index for e in opened.read_range(1).entries] == [1, 2, 3]
    assert [e.index for e in read_ledger(path).entries] == [1, 2, 3, 4, 5]


def test_result_digest_commits_to_each_ciphertext_in_order():
    assert result_digest(b"ab") != result_digest([b"a", b"b"])
    assert result_digest([b"a", b"b"]) != result_digest([b"b", b"a"])
    assert result_digest([b"ab", b""]) != result_digest([b"a", b"b"])
    assert len(result_digest([])) == 64


# -- authorize_and_append: answers, refusals, failures ------------------------------------------


def test_answer_is_logged_with_its_result_digest(ledger, issuer, holder_key):
    result, receipt = ledger.authorize_and_append(
        request(), voucher(issuer), policy(issuer), lambda: [b"ct-1", b"ct-2"], now=NOW
    )
    assert result == [b"ct-1", b"ct-2"]
    entry = ledger.entry(receipt.index)
    assert (entry.outcome, entry.voucher_id, entry.analyst, entry.plan_digest) == (
        "answered",
        "v-123",
        ANALYST,
        PLAN,
    )
    assert entry.result_digest == result_digest([b"ct-1", b"ct-2"])
    assert entry.reason == ""
    receipt.verify(holder_key.public_key)


def test_custom_result_digest(ledger, issuer):
    _, receipt = ledger.authorize_and_append(
        request(),
        voucher(issuer),
        policy(issuer),
        lambda: {"ct": b"x"},
        digest=lambda r: "d" * 64,
        now=NOW,
    )
    assert ledger.entry(receipt.index).result_digest == "d" * 64


def test_no_voucher_needed_when_not_required(ledger):
    _, receipt = ledger.authorize_and_append(
        request(), None, VoucherPolicy(False, {}), lambda: b"ct"
    )
    assert ledger.entry(receipt.index).voucher_id == ""


def _forged(issuer: SigningKey) -> SignedVoucher:
    good = voucher(issuer)
    return SignedVoucher(good.payload, bytes([good.signature[0] ^ 1]) + good.signature[1:])


REFUSALS = [
    ("forged signature", _forged, {}, NOW, "voucher v-123 has an invalid signature"),
    (
        "untrusted issuer",
        lambda i: voucher(SigningKey.generate()),
        {},
        NOW,
        "which this holder does not trust",
    ),
    ("wrong grantee", voucher, {"analyst": "b2" * 32}, NOW, "granted to analyst key a1a1"),
    ("wrong holder", voucher, {"holder": "grid"}, NOW, "voucher v-123 is for holder tax, not grid"),
    (
        "expired",
        voucher,
        {},
        dt.datetime(2026, 11, 21, tzinfo=UTC),
        "voucher v-123 expired at 2026-11-20T00:00:00Z",
    ),
    (
        "not yet valid",
        voucher,
        {},
        dt.datetime(2026, 10, 1, tzinfo=UTC),
        "voucher v-123 is not valid before 2026-11-01T00:00:00Z",
    ),
    ("table", voucher, {"reads": {"loans": {}}}, NOW, "does not cover table loans"),
    ("column", voucher, {"reads": {"tax": {"city": {"group"}}}}, NOW, "column tax.city"),
    (
        "operation",
        voucher,
        {"reads": {"tax": {"revenue": {"score"}}}},
        NOW,
        "does not cover column tax.revenue for score",
    ),
    (
        "entity",
        lambda i: voucher(i, entities=["e1"]),
        {"entities": frozenset({"e1", "e2"})},
        NOW,
        "does not cover 1 of the 2 requested entities",
    ),
    ("missing voucher", lambda i: None, {}, NOW, "holder tax requires a voucher"),
]


@pytest.mark.parametrize(
    ("make", "req", "now", "message"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusals_are_logged_with_their_reason(ledger, issuer, holder_key, make, req, now, message):
    signed = make(issuer)
    with pytest.raises(LoggedRefusal) as info:
        ledger.authorize_and_append(request(**req), signed, policy(issuer), untouched, now=now)
    refusal = info.value
    assert isinstance(refusal, PolicyError) and refusal.grpc_code == "PERMISSION_DENIED"
    assert message in str(refusal)
    entry = ledger.entry(refusal.receipt.index)
    assert entry.outcome == "refused"
    assert entry.reason == str(refusal)
    assert entry.result_digest == ""
    assert entry.voucher_id == ("v-123" if signed is not None else "")
    assert entry.receipt() == refusal.receipt
    assert verify_ledger(ledger.path, holder_key.public_key).ok


def test_revoked_voucher_is_refused_and_logged(ledger, issuer):
    revoked = RevocationList([Revocation("v-123", "consent withdrawn", NOW)])
    with pytest.raises(LoggedRefusal, match="revoked at 2026-11-10T12:00:00Z: consent withdrawn"):
        ledger.authorize_and_append(
            request(), voucher(issuer), policy(issuer, revoked), untouched, now=NOW
        )
    assert ledger.read_range().entries[-1].outcome == "refused"


def test_quota_exhausted_is_refused_and_logged(ledger, issuer):
    signed = voucher(issuer, quota=2)
    for _ in range(2):
        ledger.authorize_and_append(request(), signed, policy(issuer), lambda: b"ct", now=NOW)
    with pytest.raises(LoggedRefusal, match="voucher v-123 has used its quota of 2 queries"):
        ledger.authorize_and_append(request(), signed, policy(issuer), untouched, now=NOW)
    outcomes = [e.outcome for e in ledger.read_range().entries]
    assert outcomes == ["answered", "answered", "refused"]
    assert ledger.answered_count("v-123") == 2


def test_a_quota_taken_while_computing_drops_the_answer(ledger, issuer, holder_key):
    signed = voucher(issuer, quota=1)

    def compute():
        # Another process on the same file answers under the same voucher meanwhile.
        with Ledger(ledger.path, "tax", holder_key) as rival:
            rival.authorize_and_append(request(), signed, policy(issuer), lambda: b"x", now=NOW)
        return b"computed"

    with pytest.raises(LoggedRefusal, match="used its quota of 1 query"):
        ledger.authorize_and_append(request(), signed, policy(issuer), compute, now=NOW)
    assert [e.outcome for e in ledger.read_range().entries] == ["answered", "refused"]


def test_a_policy_refusal_while_answering_is_logged(ledger, issuer):
    def compute():
        raise PolicyError("column tax.revenue may not be used to group")

    with pytest.raises(LoggedRefusal, match="may not be used to group"):
        ledger.authorize_and_append(request(), voucher(issuer), policy(issuer), compute, now=NOW)
    entry = ledger.read_range().entries[-1]
    assert (entry.outcome, entry.reason) == (
        "refused",
        "column tax.revenue may not be used to group",
    )
    assert ledger.answered_count("v-123") == 0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SourceError("table tax: engine refused value 'ACME Ltd 913300'"), "failed: SourceError"),
        (RuntimeError("secret 42"), "failed: internal error"),
    ],
)
def test_failures_are_logged_without_their_messages(ledger, issuer, error, reason):
    def compute():
        raise error

    with pytest.raises(type(error)):
        ledger.authorize_and_append(request(), voucher(issuer), policy(issuer), compute, now=NOW)
    entry = ledger.read_range().entries[-1]
    assert (entry.outcome, entry.reason) == ("failed", reason)
    # A failure reached the data: it is charged like an answer (no free oracle).
    assert ledger.answered_count("v-123") == 1


def test_a_failure_the_quota_cannot_pay_for_is_the_quota_refusal(ledger, issuer):
    signed = voucher(issuer, quota=1)
    calls = []

    def compute():
        # A concurrent request takes the last query while this one computes.
        ledger.authorize_and_append(request(), signed, policy(issuer), lambda: b"x", now=NOW)
        calls.append(1)
        raise SourceError("measure 1 is not finite for some row")

    with pytest.raises(LoggedRefusal, match="used its quota of 1 query"):
        ledger.authorize_and_append(request(), signed, policy(issuer), compute, now=NOW)
    assert calls == [1]
    outcomes = [e.outcome for e in ledger.read_range().entries]
    assert outcomes[-2:] == ["answered", "refused"]
    assert ledger.answered_count(signed.voucher_id) == 1


def test_malformed_request_fields_are_logged_empty(ledger):
    bad = request(analyst="not hex", plan_digest="??", kind="Evil Kind")
    with pytest.raises(LoggedRefusal):
        ledger.authorize_and_append(bad, None, VoucherPolicy(True, {}), untouched)
    entry = ledger.read_range().entries[-1]
    assert (entry.analyst, entry.plan_digest, entry.kind) == ("", "", "unknown")


def test_reasons_are_one_bounded_line(ledger):
    receipt = ledger.append(
        kind="aggregate", analyst=ANALYST, outcome="refused", reason="a\nb" + "x" * 5000
    )
    entry = ledger.entry(receipt.index)
    assert "\n" not in entry.reason and len(entry.reason) == 1000


# -- quotas under concurrency -------------------------------------------------------------------

WORKER = r"""
import datetime as dt, sys, time
from unseen.engine.governance.ledger import Ledger, LoggedRefusal
from unseen.engine.governance.signing import PublicKey, SigningKey
from unseen.engine.governance.voucher import AccessRequest, SignedVoucher, VoucherPolicy

mode, path, key_path = sys.argv[1:4]
ledger = Ledger(path, "tax", SigningKey.load(key_path))
if mode == "loop":
    i = 0
    while True:
        receipt = ledger.append(
            kind="aggregate", analyst="a1" * 32, outcome="answered",
            plan_digest=f"{i:064x}", result_digest="b" * 64,
        )
        print(receipt.index, receipt.entry_hash, flush=True)
        i += 1
issuer, token, now, attempts = sys.argv[4:8]
issuer_key = PublicKey.from_text(issuer)
policy = VoucherPolicy(True, {issuer_key.key_id: issuer_key})
request = AccessRequest(
    analyst="a1" * 32, holder="tax", kind="aggregate", plan_digest="c3" * 32,
    reads={"tax": {"revenue": {"aggregate"}}},
)
signed = SignedVoucher.decode(token)
moment = dt.datetime.fromisoformat(now)
print("ready", flush=True)
sys.stdin.readline()
answered = refused = 0
for _ in range(int(attempts)):
    try:
        ledger.authorize_and_append(
            request, signed, policy, lambda: (time.sleep(0.01), b"ct")[1], now=moment
        )
        answered += 1
    except LoggedRefusal as exc:
        assert "quota" in str(exc), exc
        refused += 1
print(answered, refused, flush=True)
"""


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def holder_key_file(tmp_path, holder_key) -> Path:
    path = tmp_path / "holder.key"
    path.write_bytes(holder_key.to_pem())
    os.chmod(path, 0o600)
    return path


def test_threads_and_processes_never_overrun_a_quota(tmp_path, issuer, holder_key, holder_key_file):
    path = tmp_path / "tax.ledger"
    signed = voucher(issuer, quota=5)
    ledger = Ledger(path, "tax", holder_key)
    args = ("race", str(path), str(holder_key_file), issuer.public_key.to_text())
    procs = [_spawn(*args, signed.encode(), NOW.isoformat(), "4") for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    start = threading.Barrier(8 + 1)
    outcomes: list[str] = []

    def attempt():
        start.wait()
        for _ in range(2):
            try:
                ledger.authorize_and_append(
                    request(),
                    signed,
                    policy(issuer),
                    lambda: (time.sleep(0.01), b"ct")[1],
                    now=NOW,
                )
                outcomes.append("answered")
            except LoggedRefusal as exc:
                assert "quota" in str(exc)
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    start.wait()
    for t in threads:
        t.join()
    proc_answered = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        answered, refused = map(int, out.split())
        assert answered + refused == 4
        proc_answered += answered
    entries = ledger.read_range().entries
    ledger.close()
    assert outcomes.count("answered") + proc_answered == 5
    assert [e.outcome for e in entries].count("answered") == 5
    assert len(entries) == 16 + 8
    assert all("quota of 5" in e.reason for e in entries if e.outcome == "refused")
    assert verify_ledger(path, holder_key.public_key).ok


# -- crash durability ---------------------------------------------------------------------------


def test_kill_9_loses_no_receipted_entry(tmp_path, holder_key, holder_key_file):
    path = tmp_path / "tax.ledger"
    proc = _spawn("loop", str(path), str(holder_key_file))
    receipts = []
    while len(receipts) < 40:
        line = proc.stdout.readline()
        assert line, "the writer died"
        receipts.append(line.split())
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Receipts printed before the kill are in the pipe; a torn last line is not a receipt.
    receipts += [line.split() for line in rest.splitlines(keepends=True) if line.endswith("\n")]
    report = verify_ledger(path, holder_key.public_key)
    assert report.ok, report.problems
    stored = {e.index: e.entry_hash for e in read_ledger(path).entries}
    for index, entry_hash in receipts:
        assert stored[int(index)] == entry_hash
    assert report.entries >= len(receipts)
    # The crashed ledger opens and grows again.
    with Ledger(path, "tax", holder_key) as reopened:
        reopened.append(kind="aggregate", analyst=ANALYST, outcome="answered")
    assert verify_ledger(path, holder_key.public_key).ok


# -- tampering ----------------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path, holder_key, issuer):
    """A closed six-entry ledger, the receipts analysts kept, and a published checkpoint."""
    path = tmp_path / "tax.ledger"
    receipts = []
    with Ledger(path, "tax", holder_key) as ledger:
        signed = voucher(issuer, quota=3)
        for i in range(4):
            try:
                receipts.append(
                    ledger.authorize_and_append(
                        request(), signed, policy(issuer), lambda i=i: b"ct%d" % i, now=NOW
                    )[1]
                )
            except LoggedRefusal as exc:
                receipts.append(exc.receipt)
        receipts.append(ledger.append(kind="score", analyst=ANALYST, outcome="answered"))
        receipts.append(ledger.append(kind="aggregate", analyst=ANALYST, outcome="answered"))
        checkpoint = ledger.checkpoint(NOW)
    assert not path.with_name(path.name + "-wal").exists()
    return path, receipts, checkpoint


def _flip(text: str) -> str:
    """Change one character of ``text`` so that it still parses (a digit for a digit)."""
    at = next(i for i, c in enumerate(text) if c in "0123456789abcdef")
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def audit(path, holder_key, receipts, checkpoints=()):
    report = verify_ledger(path, holder_key.public_key, checkpoints)
    findings = check_receipts(receipts, [read_ledger(path)], {"tax": holder_key.public_key})
    return report, {f.receipt.index: f.status for f in findings.findings}


def test_an_untouched_history_verifies(history, holder_key):
    path, receipts, checkpoint = history
    report, status = audit(path, holder_key, receipts, [checkpoint])
    assert report.ok and report.entries == 6
    assert set(status.values()) == {"ok"}
    assert [e.outcome for e in read_ledger(path).entries][:4] == [
        "answered",
        "answered",
        "answered",
        "refused",
    ]


@pytest.mark.parametrize(
    "column",
    [
        "time",
        "kind",
        "plan_digest",
        "voucher_id",
        "analyst",
        "reason",
        "result_digest",
        "prev_hash",
    ],
)
def test_a_flipped_field_is_detected(history, holder_key, column):
    path, receipts, _ = history
    (value,) = next(
        r for r in sqlite3.connect(path).execute(f"SELECT {column} FROM ledger_entries WHERE idx=4")
    )
    changed = _flip(value) if value else "x"
    tamper(path, (f"UPDATE ledger_entries SET {column} = ? WHERE idx = 4", (changed,)))
    report, status = audit(path, holder_key, receipts)
    found = {(p.kind, p.index) for p in report.problems}
    assert ("hash", 4) in found and {index for _, index in found} == {4}
    assert status[4] == "rewritten"
    assert status[3] == "ok" and status[5] == "ok"


def test_an_unparsable_field_is_detected(history, holder_key):
    path, receipts, _ = history
    tamper(path, ("UPDATE ledger_entries SET time = 'yesterday' WHERE idx = 4",))
    report, status = audit(path, holder_key, receipts)
    assert ("malformed", 4) in [(p.kind, p.index) for p in report.problems]
    assert status[4] == "missing"
    assert status[5] == "ok"


def test_hiding_an_answer_as_a_refusal_is_detected(history, holder_key):
    # Relabelling an answered query as refused would give the quota back.
    path, receipts, _ = history
    tamper(path, ("UPDATE ledger_entries SET outcome = 'refused', reason = 'x' WHERE idx = 2",))
    report, status = audit(path, holder_key, receipts)
    assert [(p.kind, p.index) for p in report.problems] == [("hash", 2)]
    assert status[2] == "rewritten"


def test_a_flipped_signature_is_detected(history, holder_key):
    path, receipts, _ = history
    (sig,) = (
        sqlite3.connect(path).execute("SELECT signature FROM ledger_entries WHERE idx=3").fetchone()
    )
    tamper(path, ("UPDATE ledger_entries SET signature = ? WHERE idx = 3", (_flip(sig),)))
    report, status = audit(path, holder_key, receipts)
    assert [(p.kind, p.index) for p in report.problems] == [("signature", 3)]
    assert status[3] == "rewritten"


def test_a_flipped_entry_hash_is_detected(history, holder_key):
    path, receipts, _ = history
    (h,) = (
        sqlite3.connect(path)
        .execute("SELECT entry_hash FROM ledger_entries WHERE idx=3")
        .fetchone()
    )
    tamper(path, ("UPDATE ledger_entries SET entry_hash = ? WHERE idx = 3", (_flip(h),)))
    report, status = audit(path, holder_key, receipts)
    kinds = {(p.kind, p.index) for p in report.problems}
    assert {("hash", 3), ("signature", 3), ("chain", 4)} <= kinds
    assert status[3] == "rewritten"


def test_a_byte_flipped_in_the_file_is_detected(history, holder_key):
    path, receipts, _ = history
    data = bytearray(path.read_bytes())
    entry = read_ledger(path).entries[3]
    where = data.find(entry.reason.encode())
    assert where > 0 and data.count(entry.reason.encode()) == 1
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    report, status = audit(path, holder_key, receipts)
    assert [(p.kind, p.index) for p in report.problems] == [("hash", 4)]
    assert status[4] == "rewritten"


def test_a_deleted_entry_is_detected(history, holder_key):
    path, receipts, _ = history
    tamper(path, ("DELETE FROM ledger_entries WHERE idx = 3",))
    report, status = audit(path, holder_key, receipts)
    kinds = {(p.kind, p.index) for p in report.problems}
    assert {("index", 4), ("chain", 4)} <= kinds
    assert status[3] == "missing"
    assert status[4] == "ok"


def test_swapped_entries_are_detected(history, holder_key):
    path, receipts, _ = history
    fields = (
        "time, kind, plan_digest, voucher_id, analyst, outcome, reason, result_digest, "
        "prev_hash, entry_hash, signature"
    )
    before = {r[0]: r[1:] for r in rows(path)}
    assignments = ", ".join(f"{f.strip()} = ?" for f in fields.split(","))
    tamper(
        path,
        (f"UPDATE ledger_entries SET {assignments} WHERE idx = 2", before[3]),
        (f"UPDATE ledger_entries SET {assignments} WHERE idx = 3", before[2]),
    )
    report, status = audit(path, holder_key, receipts)
    assert {p.index for p in report.problems} >= {2, 3}
    assert any(p.kind == "chain" for p in report.problems)
    assert status[2] == "moved" and status[3] == "moved"


def test_a_truncated_tail_needs_receipts_or_a_checkpoint(history, holder_key):
    path, receipts, checkpoint = history
    tamper(path, ("DELETE FROM ledger_entries WHERE idx >= 5",))
    # On its own the shorter ledger is consistent: truncation is invisible ...
    assert verify_ledger(path, holder_key.public_key).ok
    # ... but not against a published checkpoint, nor against receipts.
    report, status = audit(path, holder_key, receipts, [checkpoint])
    assert [(p.kind, p.index) for p in report.problems] == [("truncated", 6)]
    assert "ends at entry 4 (truncated)" in report.summary()
    assert status[5] == status[6] == "beyond_tail"
    assert status[4] == "ok"


def test_a_holder_rewriting_and_resigning_its_ledger_is_caught(history, holder_key, tmp_path):
    path, receipts, checkpoint = history
    path.unlink()
    with Ledger(path, "tax", holder_key) as forged:
        for _ in range(6):
            forged.append(kind="aggregate", analyst=ANALYST, outcome="refused", reason="nothing")
    report, status = audit(path, holder_key, receipts, [checkpoint])
    assert [p.kind for p in report.problems] == ["checkpoint"]
    assert set(status.values()) == {"rewritten"}


def test_wrong_key_forged_receipts_and_missing_ledgers(history, holder_key):
    path, receipts, checkpoint = history
    stranger = SigningKey.generate()
    report = verify_ledger(path, stranger.public_key, [checkpoint])
    assert report.problems[0].kind == "key"
    assert any(p.kind == "checkpoint" for p in report.problems)
    made_up = Receipt("tax", holder_key.key_id, 2, "f" * 64, b"\x00" * 64)
    other_holder = Receipt("grid", holder_key.key_id, 1, "f" * 64, b"\x00" * 64)
    result = check_receipts(
        [made_up, other_holder, receipts[0]],
        {"tax": read_ledger(path, 2, 4)},
        {"tax": holder_key.public_key},
    )
    assert [f.status for f in result.findings] == ["forged", "unchecked", "unchecked"]
    assert len(result.problems) == 1 and len(result.unchecked) == 2 and not result.ok
    with pytest.raises(VerificationError, match="not signed by key"):
        made_up.verify(holder_key.public_key)
    with pytest.raises(VerificationError, match="not signed by key"):
        receipts[0].verify(stranger.public_key)


def test_remote_ranges_verify_and_checkpoints_round_trip(history, holder_key):
    path, receipts, checkpoint = history
    middle = LedgerRange.from_dict(read_ledger(path, 3, 6).to_dict())
    assert verify_ledger(middle, holder_key.public_key).ok
    copy = Checkpoint.decode(checkpoint.encode())
    assert copy == checkpoint
    copy.verify(holder_key.public_key)
    assert (checkpoint.index, checkpoint.entry_hash) == (6, receipts[-1].entry_hash)
    bad = Checkpoint(**{**checkpoint.__dict__, "index": 5})
    with pytest.raises(VerificationError, match="not signed"):
        bad.verify(holder_key.public_key)
    report = verify_ledger(path, holder_key.public_key, [bad])
    assert [p.kind for p in report.problems] == ["checkpoint"]
    with pytest.raises(VerificationError, match="NOT intact"):
        report.raise_for_problems()


def test_malformed_wire_objects_are_refused():
    with pytest.raises(VerificationError, match="malformed receipt"):
        Receipt.decode("{}")
    with pytest.raises(VerificationError, match="malformed receipt"):
        Receipt.decode("not json")
    with pytest.raises(VerificationError, match="malformed ledger entry"):
        LedgerEntry.from_dict({"index": 1})
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        Checkpoint.decode('{"index": "x"}')
