"""``unseen demo``: the showcase province, three jobs, each verified against plaintext.

1. Statistics: electricity by city and industry across three regional grid
   companies (aggregate operator).
2. Credit scoring: loan applicants scored with the model bank-a trained on its
   history, from grid, tax, social-insurance and registry features (scoring
   operator); AUC of the encrypted scores against the plaintext model's. The
   applicants consent first (each signs with its own key); one withdraws and
   its next score is refused while the others are answered. Then a model trained
   jointly (PSI + vertical logistic regression) on bank-a's past borrowers, who
   consented to that training, scores the applicants whose consent stands.
3. Fraud: per-account transfers across three banks for a suspicious batch
   (aggregate with ``WHERE payee IN (...)``) and a bank + telecom fraud model
   (scoring); precision and recall on the planted mules.

4. Park investment (园区招商): which industries a park should attract, from
   electricity statistics by industry and city on registered assets.

Every holder serves only registered assets, requires vouchers and logs to its
ledger; the demo ends with a supervisor fetching the ledgers over RPC,
checking every receipt and printing the cross-domain flow table. Exits 0
only when every answer agrees with plaintext and the supervisor check passes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from unseen.engine.client import Client
from unseen.engine.data import synth
from unseen.engine.errors import RemoteError
from unseen.engine.governance.approval import approve_model
from unseen.engine.governance.audit import check_receipts, verify_ledger
from unseen.engine.governance.consent import ConsentRegister, grant, publish, withdraw
from unseen.engine.governance.flows import audit_flows
from unseen.engine.governance.ledger import LedgerRange, Receipt
from unseen.engine.governance.signing import PublicKey
from unseen.engine.query.model import Model, load_model
from unseen.engine.query.result import Result
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.vertical_lr import (
    TrainSpec,
    Whitening,
    plaintext_training,
    standardise,
)
from unseen.engine.transport import serde
from unseen.federation import LocalFederation
from unseen.governance import fetch_ledger
from unseen.oracle.plaintext import check_answer, plaintext_features, plaintext_scores
from unseen.oracle.quality import auc, logistic_regression, precision_recall
from unseen.showcase import (
    CREDIT_PURPOSE,
    DP_CONTRIBUTION_CAP,
    DP_EPSILON,
    DP_QUERIES,
    TRAINING_PURPOSE,
    Showcase,
    build_showcase,
)

__all__ = ["MODELS", "run_demo"]

MODELS = Path(__file__).resolve().parent / "models"
SHOWN_ROWS = 10
Out = Callable[[str], Any]


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else str(value)
    return str(value)


def _side_by_side(
    columns: Sequence[str],
    ours: Sequence[Sequence[Any]],
    theirs: Sequence[Sequence[Any]],
    marks: Sequence[str],
) -> str:
    symbol = {"ok": "✓", "suppressed": "⊘ k", "MISMATCH": "✗"}
    header = [*columns, "│", *[f"{c} (plain)" for c in columns], ""]
    body = [
        [*map(_cell, o), "│", *map(_cell, t or [""] * len(columns)), symbol[m]]
        for o, t, m in zip(ours, theirs, marks, strict=True)
    ]
    shown = body[:SHOWN_ROWS]
    grid = [header, *shown]
    widths = [max(len(r[i]) for r in grid) for i in range(len(header))]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid
    ]
    lines.insert(1, "  " + "  ".join("─" * w for w in widths))
    if len(body) > SHOWN_ROWS:
        bad = sum(m == "MISMATCH" for m in marks[SHOWN_ROWS:])
        lines.append(f"  … {len(body) - SHOWN_ROWS} more rows, {bad} disagreeing")
    return "\n".join(lines)


class _Demo:
    def __init__(self, showcase: Showcase, client: Client, out: Out):
        self.showcase, self.client, self.out = showcase, client, out
        self.reference = showcase.reference()
        self.catalog = client.catalog()
        self.receipts: list[Receipt] = []
        self.ok = True

    def _seen(self, meta: dict[str, Any], what: str, elapsed: float) -> None:
        holders = meta["holders"]
        self.out(
            f"  seen: {len(holders)} holders ({', '.join(holders)}) saw {what}, never "
            f"another holder's answer; the coordinator added {len(holders)} x "
            f"{meta['ciphertexts']} ciphertexts and sent back "
            f"{meta['bytes_received'] / 1e3:.0f} KB without any key; the analyst "
            f"decrypted only the sums; {len(meta['receipts'])} signed receipts; "
            f"{elapsed:.2f} s"
        )

    def aggregate(self, title: str, sql: str) -> Result:
        self.out(f"  {title}")
        self.out(f"  {sql if len(sql) < 300 else sql[:300] + ' …'}")
        compiled = self.client.compile(sql, self.catalog)
        started = time.perf_counter()
        result = self.client.query(sql)
        elapsed = time.perf_counter() - started
        self.receipts += map(Receipt.from_dict, result.meta["receipts"])
        table = compiled.plan.table
        shards = [f"{table}@{h}" for h, _ in self.showcase.tables[table]]
        _, verdict = check_answer(
            compiled, result, lambda q: self.reference.sql(q).fetchall(), shards, result.meta["k"]
        )
        self.out(_side_by_side(result.columns, result.rows, verdict.expected, verdict.marks))
        self._seen(
            result.meta,
            f"the plan ({table}, filter, {compiled.plan.group_count} group slots)",
            elapsed,
        )
        self._verdict(verdict.ok, "; ".join(verdict.problems[:3]))
        return result

    def approved_score(self, model_file: Path, entities: list[str]) -> tuple[Result, list[str]]:
        """Score with the exchange's approval: the exchange reviews the model and encrypts
        its real weights; the holders compute only with the ciphertexts its vouchers name.
        Returns the result and the prepare step's receipts."""
        model = load_model(model_file)
        specs = self.client.feature_specs(model, self.catalog)
        exponents, prepared = self.client.prepare(specs, entities)
        approval, weights = approve_model(
            model.link,
            [serde.feature_bytes(s) for s in specs],
            [f.weight for f in model.features],
            exponents,
            self.client.key.public,
        )
        vouchers = self.client.vouchers
        self.client.vouchers = [
            *self.showcase.approve({s.table.lower() for s in specs}, approval),
            *vouchers,
        ]
        try:
            return self.client.score(model, entities, weights), prepared
        finally:
            self.client.vouchers = vouchers

    def score(self, title: str, model_file: Path, entities: list[str]) -> np.ndarray:
        model = load_model(model_file)
        self.out(
            f"  {title}: {len(model.features)} features from "
            f"{sorted({f.table for f in model.features})}, {len(entities)} entities"
        )
        started = time.perf_counter()
        result, prepared = self.approved_score(model_file, entities)
        elapsed = time.perf_counter() - started
        self.out(
            f"  the exchange approved the model: it encrypted {len(model.features)} real weights "
            "under "
            "the analyst's key (it sees weights, never data)"
        )
        self.receipts += (Receipt.from_dict(json.loads(r)) for r in prepared)
        self.receipts += map(Receipt.from_dict, result.meta["receipts"])
        ours = np.array([r[1] for r in result.rows])
        plain = plaintext_scores(self.reference, model, entities)
        gap = float(np.max(np.abs(ours - plain)))
        self.out(f"  max |encrypted - plaintext| over {len(entities)} scores: {gap:.2e}")
        self._seen(
            result.meta, "their features' definitions and the entity list, never a weight", elapsed
        )
        self._verdict(
            gap < 1e-6 and [r[0] for r in result.rows] == entities, f"scores differ by {gap:.2e}"
        )
        return np.column_stack([ours, plain])

    def _verdict(self, ok: bool, problem: str) -> None:
        self.ok &= ok
        self.out(f"  {'verified' if ok else 'MISMATCH: ' + problem}\n")


def _refusal(showcase: Showcase, address: str, out: Out) -> bool:
    """A request without vouchers must be refused, with the reason."""
    with Client(address, key=showcase.analyst) as bare:
        try:
            bare.query("SELECT COUNT(*) FROM electricity")
        except RemoteError as exc:
            out(f"  without a voucher: refused ({exc.code}): {exc.reason}")
            return exc.code == "PERMISSION_DENIED"
    out("  without a voucher: ANSWERED — governance is not enforced")
    return False


def _supervise(
    showcase: Showcase, federation: LocalFederation, receipts: list[Receipt], out: Out
) -> bool:
    ok, ranges = _check_ledgers(showcase, federation, receipts, out)
    report = audit_flows(ranges, showcase.registrations, ConsentRegister.load(showcase.consents))
    rows = [
        [
            f.holder,
            ",".join(f.tables),
            f.analyst[:12],
            f.purpose[:40],
            f.kind,
            f.count,
            f"{len(f.subjects)} subjects" if f.consent == "subjects" else f.consent,
        ]
        for f in report.flows
    ]
    out("  cross-domain flows (from ledgers, registrations and consents alone):")
    columns = ["holder", "asset", "analyst", "purpose", "kind", "answers", "consent"]
    out("\n".join("  " + line for line in Result(columns, rows, {}).to_table().splitlines()))
    credit = [f for f in report.lacking if f.purpose == CREDIT_PURPOSE]
    out(
        f"  flows lacking consent: {len(report.lacking)} ({len(credit)} in the credit job; "
        "the fraud investigation's entity-scoped use rests on its vouchers, not on consent)"
    )
    return ok and not credit and bool(report.flows)


def _check_ledgers(
    showcase: Showcase, federation: LocalFederation, receipts: list[Receipt], out: Out
) -> tuple[bool, list[LedgerRange]]:
    """The supervisor fetches every ledger over RPC and checks every receipt."""
    ranges: list[LedgerRange] = []
    keys: dict[str, PublicKey] = {}
    ok = True
    for node in federation.nodes:
        try:
            _, document, _ = fetch_ledger(node.address, showcase.supervisor, holder=node.name)
        except RemoteError as exc:
            out(f"  {node.name}: ledger fetch refused: {exc}")
            return False, ranges
        ledger_range = LedgerRange.from_dict(document)
        key = PublicKey.load(showcase.holder_keys[node.name])
        keys[node.name] = key
        report = verify_ledger(ledger_range, key)
        ok &= report.ok
        ranges.append(ledger_range)
        answered = sum(e.outcome == "answered" for e in ledger_range.entries)
        refused = sum(e.outcome == "refused" for e in ledger_range.entries)
        out(
            f"  {node.name:<17} ledger: {len(ledger_range.entries)} entries "
            f"({answered} answered, {refused} refused), chain and signatures "
            f"{'intact' if report.ok else 'BROKEN'}"
        )
    findings = check_receipts(receipts, ranges, keys)
    ok &= findings.ok and not findings.unchecked
    out(
        f"  {len(receipts)} receipts the analyst kept: "
        f"{'every one matches its holder' + chr(39) + 's ledger' if findings.ok else 'PROBLEMS'}"
    )
    return ok, ranges


def run_demo(
    enterprises: int = 20_000, seed: int = 7, workdir: Path | None = None, out: Out = print
) -> bool:
    """Run the showcase; True when every job verified and the supervisor check passed."""
    with tempfile.TemporaryDirectory(prefix="unseen-demo-") as tmp:
        root = workdir or Path(tmp)
        spec = synth.SynthSpec(seed=seed, enterprises=enterprises)
        out(f"unseen demo: a synthetic province of {enterprises} enterprises (seed {seed})")
        showcase = build_showcase(spec, root)
        out(
            f"the exchange registered {len(showcase.registrations)} data assets with graded "
            f"columns and the public keys of {len(showcase.subjects)} loan applicants"
        )
        out(
            f"starting {len(showcase.configs)} holders (vouchers required, ledgers on) and a "
            "coordinator, each its own process ..."
        )
        with LocalFederation(showcase.configs, root / "logs") as federation:
            for node in federation.nodes:
                out(f"  {node.name:<17} {node.address}")
            out(f"  coordinator       {federation.address}\n")
            out("[governance]")
            ok = _refusal(showcase, federation.address, out)
            with Client(
                federation.address, key=showcase.analyst, vouchers=showcase.vouchers
            ) as client:
                demo = _Demo(showcase, client, out)
                out(f"  the analyst holds {len(showcase.vouchers)} vouchers, one per holder\n")
                _statistics(demo)
                _privacy(demo)
                _credit(demo)
                _fraud(demo)
                _park(demo)
                out("[supervision]")
                ok &= _supervise(showcase, federation, demo.receipts, out)
            ok &= demo.ok
        out(f"\ndemo finished: {'all answers agree with plaintext' if ok else 'FAILED'}")
        return ok


def _statistics(demo: _Demo) -> None:
    demo.out("[1/4] statistics by city and industry (three regional grid companies)")
    demo.aggregate(
        "electricity in 2023 by city",
        "SELECT city, COUNT(*) AS reports, SUM(kwh) AS total_kwh, AVG(kwh) AS mean_kwh, "
        "STDDEV_SAMP(kwh) AS sd_kwh FROM electricity WHERE month BETWEEN '2023-01' AND "
        "'2023-12' GROUP BY city ORDER BY total_kwh DESC, city",
    )
    demo.aggregate(
        "heavy industry by city, second half of 2023 (small groups suppressed, k = 5)",
        "SELECT city, industry, COUNT(*) AS reports, SUM(kwh) AS total_kwh FROM electricity "
        "WHERE month >= '2023-07' AND industry IN ('chemicals', 'electronics', 'textiles') "
        "GROUP BY city, industry ORDER BY city, industry",
    )


def _privacy(demo: _Demo) -> None:
    demo.out("[dp] social-insurance contributions by city, with differential privacy")
    month = synth.months(demo.showcase.spec)[-1]
    # The analyst's own SQL text, parsed by unseen; the month is a generated label.
    sql = (
        "SELECT city, COUNT(*) AS enterprises, SUM(amount) AS contributions "  # noqa: S608
        f"FROM contributions WHERE month = '{month}' GROUP BY city ORDER BY city"
    )
    demo.out(f"  {sql}")
    result = demo.client.query(sql)
    demo.receipts += map(Receipt.from_dict, result.meta["receipts"])
    dp = result.meta["dp"]
    cap = DP_CONTRIBUTION_CAP
    # What the noise is centred on: one row per enterprise, clamped to the public cap.
    bounded = dict(
        (r[0], r[1:])
        for r in demo.reference.execute(
            "SELECT city, COUNT(*), SUM(LEAST(amount, ?)), SUM(amount) FROM contributions "
            "WHERE month = ? GROUP BY city",
            [cap, month],
        ).fetchall()
    )
    demo.out(
        f"  rho = {dp['rho']:.4g} per query (epsilon = {dp['epsilon']:.3g} at delta = "
        f"{dp['delta']:g}); one row per enterprise; contributions clamped to {cap} yuan"
    )
    header = f"  {'city':<10} {'enterprises ±95%':>22} {'exact':>7}   {'contributions ±95%':>28}"
    demo.out(header + f" {'exact (clamped)':>16} {'exact':>14}")
    ok = True
    for n, ((city, count, total), sds) in enumerate(zip(result.rows, dp["sd"], strict=True)):
        exact_count, clamped, raw = bounded.get(city, (0, 0, 0))
        ok &= abs(count - exact_count) <= 6 * sds[1] and abs(total - clamped) <= 6 * sds[2]
        if n < SHOWN_ROWS:
            demo.out(
                f"  {city:<10} {count:>10} ±{1.96 * sds[1]:<10.3g} {exact_count:>7}   "
                f"{total:>14} ±{1.96 * sds[2]:<12.3g} {clamped:>16} {raw:>14}"
            )
    if len(result.rows) > SHOWN_ROWS:
        demo.out(f"  … {len(result.rows) - SHOWN_ROWS} more cities")
    for budget in dp["budget"]:
        demo.out(
            f"  budget at {budget['holder']}: rho {float(Fraction(budget['spent'])):.4g} spent of "
            f"{float(Fraction(budget['budget'])):.4g}, {budget['left']:.4g} left "
            f"({DP_QUERIES} queries at epsilon = {DP_EPSILON:g})"
        )
    demo._verdict(ok, "a noisy cell is more than 6 sd from the bounded exact answer")


def _credit(demo: _Demo) -> None:
    demo.out("[2/4] credit scoring of loan applicants (grid, tax, social insurance, registry)")
    showcase = demo.showcase
    applicants = showcase.applicants
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    # The demo plays the enterprises: each signs a consent with its own key.
    consents = [
        grant(
            showcase.subjects[a],
            subject=a,
            grantee=showcase.analyst.key_id,
            purpose=CREDIT_PURPOSE,
            holders=sorted(showcase.credit_holders),
            not_after=until,
        )
        for a in applicants
    ]
    publish(showcase.consents, *consents)
    vouchers = showcase.credit_vouchers(consents, until)
    demo.client.vouchers += vouchers
    demo.out(
        f"  {len(consents)} applicants signed consents for bank-a's key, purpose "
        f"'{CREDIT_PURPOSE}', at {len(showcase.credit_holders)} holders; the exchange issued "
        f"{len(vouchers)} entity-scoped vouchers referencing them by digest"
    )
    scores = demo.score(
        "bank-a's default model (unseen/models/credit.json)", MODELS / "credit.json", applicants
    )
    outcomes = showcase.outcomes
    ours, plain = auc(scores[:, 0], outcomes), auc(scores[:, 1], outcomes)
    demo.out(
        f"  AUC against the applicants' true outcomes: encrypted {ours:.4f}, "
        f"plaintext {plain:.4f} ({int(outcomes.sum())} defaults among {len(outcomes)})"
    )
    demo.ok &= ours == plain
    # One applicant withdraws: every holder refuses its next score, the others go on.
    leaving, others = applicants[0], applicants[1:21]
    publish(showcase.consents, withdraw(showcase.subjects[leaving], consents[0]))
    demo.out("  one applicant withdraws its consent (signed withdrawal in the register)")
    try:
        demo.approved_score(MODELS / "credit.json", [leaving, *others])
    except RemoteError as exc:
        demo.out(f"  its next score is refused ({exc.code}): {exc.reason}")
        demo.ok &= (
            exc.code == "PERMISSION_DENIED"
            and "withdrawn" in exc.reason
            and leaving not in str(exc)
        )
    else:
        demo.out("  its next score was ANSWERED — the withdrawal is not enforced")
        demo.ok = False
    demo.score("the other applicants, scored again", MODELS / "credit.json", others)

    # The joint model scores the applicants whose consent stands.
    _joint_credit(demo, applicants[1:], auc(scores[1:, 1], outcomes[1:]))


def _park(demo: _Demo) -> None:
    demo.out("[4/4] park investment (园区招商): which industries should Shenzhen's park attract?")
    growth: dict[str, list[float]] = {}
    for where, title in (("city = 'Shenzhen' AND ", "in Shenzhen"), ("", "province-wide")):
        # The analyst's own SQL text, from constants (parsed by unseen, never executed as text).
        sql = (
            "SELECT industry, SUM(kwh) FILTER (WHERE month >= '2023-07') AS h2_kwh, "  # noqa: S608
            "SUM(kwh) FILTER (WHERE month < '2023-07') AS h1_kwh FROM electricity "
            f"WHERE {where}month BETWEEN '2023-01' AND '2023-12' GROUP BY industry "
            "ORDER BY industry"
        )
        result = demo.aggregate(f"electricity by industry, 2023 H2 against H1, {title}", sql)
        for industry, h2, h1 in result.rows:
            if h1 and h2 is not None:
                growth.setdefault(str(industry), []).append(float(h2) / float(h1) - 1)
    ranked = sorted(((g[1], g[0], i) for i, g in growth.items() if len(g) == 2), reverse=True)[:3]
    demo.out(
        "  fastest-growing demand province-wide (growth in Shenzhen): "
        + ", ".join(f"{i} {p:+.1%} ({s:+.1%})" for p, s, i in ranked)
        + "\n"
    )


# A model trained jointly (issue 15): bank-a's loan history as labels, and the scorecard's
# own features (unseen/models/credit.json, without its weights) at the holders of their
# tables. The electricity features are left out: three grid companies each hold part of
# that table (by city), and vertical training needs one holder per feature.
_JOINT_TABLES = (("tax", "tax_filings"), ("hr", "headcount"), ("samr", "registry"))


def _joint_parts() -> tuple[TrainFeatures, ...]:
    """Each holder's part: the scorecard's features on its table (filters, transforms)."""
    scorecard = load_model(MODELS / "credit.json")
    parts = []
    for holder, table in _JOINT_TABLES:
        derived = tuple(replace(f, weight=0.0) for f in scorecard.features if f.table == table)
        columns = tuple(f.column for f in derived)
        parts.append(TrainFeatures(holder, table, scorecard.entity, columns, derived=derived))
    return tuple(parts)


def _joint_credit(demo: _Demo, applicants: list[str], scorecard_auc: float) -> None:
    """Train on bank-a's labels across tax, hr and samr (PSI-aligned), score ``applicants``.

    The borrowers behind the labels consented (in their loan contracts) to their
    records at those holders training bank-a's model: each training round names
    them, so each holder checks a consent for every one (docs/governance.md).
    """
    # Class-weighted (negatives 0.25): the weights travel encrypted, as Enc(c).
    spec = TrainSpec(iterations=12, learning_rate=1.0, negative_weight=0.25)
    parts = _joint_parts()
    showcase = demo.showcase
    history = synth.loans(showcase.spec, synth.enterprises(showcase.spec), 0)
    labels = {str(u): float(d) for u, d in zip(history["uscc"], history["defaulted"], strict=True)}
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    holders: dict[str, tuple[str, dict[str, list[str]]]] = {}
    for part in parts:
        # What computing the features reads: their columns as scores, their filters' columns.
        uses: dict[str, set[str]] = {}
        for f in part.derived:
            uses.setdefault(f.column, set()).add("aggregate" if f.aggregate == "count" else "score")
            for column in _filter_columns(f.filter or ""):
                uses.setdefault(column, set()).add("filter")
        holders[part.holder] = (part.table, {c: sorted(u) for c, u in uses.items()})
    consents = [
        grant(
            showcase.subjects[b],
            subject=b,
            grantee=showcase.analyst.key_id,
            purpose=TRAINING_PURPOSE,
            holders=sorted(holders),
            not_after=until,
        )
        for b in sorted(labels)
    ]
    publish(showcase.consents, *consents)
    demo.client.vouchers += showcase.training_vouchers(consents, holders, until)
    demo.out(
        f"  a model trained jointly: bank-a's {len(labels)} past loans as labels, the "
        f"scorecard's {sum(len(p.columns) for p in parts)} tax, hr and samr features (its "
        f"filters and log1p transforms) at those holders, aligned by PSI; {len(consents)} "
        f"borrowers consented to '{TRAINING_PURPOSE}' at {len(holders)} holders"
    )
    started = time.perf_counter()
    model = demo.client.train(labels, parts, spec, validation=0.0)
    demo.receipts += [Receipt.decode(r) for r in model.receipts]
    sizes = ", ".join(f"{a.holder} {len(a.common)}" for a in model.alignments)
    demo.out(
        f"  PSI: {sizes} of {len(labels)} ids held; {model.run.iterations} iterations in "
        f"{time.perf_counter() - started:.1f} s (weights stay at the holders)"
    )
    result = demo.client.predict(model.to_dict(), applicants)
    demo.receipts += map(Receipt.from_dict, result.meta["receipts"])
    ours = np.array([r[1] for r in result.rows])
    plain, exact = _joint_plaintext(demo, parts, labels, spec, applicants)
    gap = float(np.abs(ours - plain).max())
    demo.out(f"  max |encrypted - plaintext training| over {len(applicants)} scores: {gap:.2e}")
    outcomes = showcase.outcomes[[showcase.applicants.index(a) for a in applicants]]
    joint_auc, exact_auc = auc(ours, outcomes), auc(exact, outcomes)
    demo.out(
        f"  AUC on the same applicants: jointly trained {joint_auc:.4f}, plaintext logistic "
        f"regression on the same features {exact_auc:.4f}, plaintext-trained scorecard "
        f"{scorecard_auc:.4f}"
    )
    demo.out(
        f"  (the {exact_auc - joint_auc:+.4f} to plaintext logistic regression is what fitting "
        "sigmoid's first-order Taylor expansion, class-weighted with negatives at "
        f"{spec.negative_weight:g} under encryption, costs or gains; it needs no rotations; the "
        "scorecard also has electricity features, which three grid companies hold by city, "
        "so no single holder could train them)"
    )
    demo._verdict(gap < 1e-6, f"joint scores differ from plaintext training by {gap:.1e}")


def _filter_columns(text: str) -> set[str]:
    """The columns a feature's filter reads (for the voucher's ``filter`` uses)."""
    import sqlglot
    from sqlglot import exp

    if not text:
        return set()
    return {c.name for c in sqlglot.parse_one(text, read="duckdb").find_all(exp.Column)}


def _joint_plaintext(
    demo: _Demo,
    parts: Sequence[TrainFeatures],
    labels: dict[str, float],
    spec: TrainSpec,
    applicants: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The same training on the pooled plaintext (features from DuckDB, numpy), then its
    scores; and the scores of exact-sigmoid logistic regression on the same features."""
    held = [_held(demo, p) for p in parts]
    ids = [i for i in labels if all(i in h for h in held)]
    y = np.array([labels[i] for i in ids])
    blocks, tests = [], []
    for part in parts:
        model = Model(entity=part.key, features=part.derived)
        blocks.append(plaintext_features(demo.reference, model, ids))
        tests.append(plaintext_features(demo.reference, model, applicants))
    weights, intercept = plaintext_training(blocks, y, spec, spec.iterations)
    linear = intercept + sum(
        Whitening.of(b).apply(t) @ w for b, t, w in zip(blocks, tests, weights, strict=True)
    )
    pooled, pooled_test = np.hstack(blocks), np.hstack(tests)
    scaled, scaled_test = standardise(pooled, pooled_test)
    w, b = logistic_regression(scaled, y)
    exact = scaled_test @ w + b
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-linear))), exact


def _held(demo: _Demo, part: TrainFeatures) -> set[str]:
    rows = demo.reference.sql(
        f'SELECT DISTINCT CAST("{part.key}" AS TEXT) FROM "{part.table}"'  # noqa: S608
    ).fetchall()
    return {r[0] for r in rows}


def _fraud(demo: _Demo) -> None:
    demo.out("[3/4] money-mule detection (three banks and the telecom operator)")
    batch = demo.showcase.suspicious
    accounts = ", ".join(f"'{a}'" for a in batch)
    demo.aggregate(
        f"transfers into the {len(batch)} suspicious accounts in the last 24 hours, all banks",
        # The analyst's own SQL text (parsed by unseen, never executed as text);
        # the ids are generated alphanumerics.
        f"SELECT payee, COUNT(*) AS transfers, SUM(amount) AS received FROM transfers "  # noqa: S608
        f"WHERE ts >= TIMESTAMP '2024-01-30 00:00:00' AND payee IN ({accounts}) "
        f"GROUP BY payee ORDER BY received DESC, payee",
    )
    scores = demo.score(
        "fraud model on bank and telecom signals (unseen/models/fraud.json)",
        MODELS / "fraud.json",
        batch,
    )
    labels = np.array([a in demo.showcase.mules for a in batch])
    figures = []
    for name, column in (("encrypted", 0), ("plaintext", 1)):
        precision, recall = precision_recall(scores[:, column], labels, 0.5)
        area = auc(scores[:, column], labels)
        figures.append((precision, recall, area))
        demo.out(
            f"  {name:<9}: flagged at p >= 0.5: precision {precision:.3f}, recall "
            f"{recall:.3f}, AUC {area:.4f} ({int(labels.sum())} planted mules)"
        )
    demo.ok &= figures[0] == figures[1]
    demo.out("")
