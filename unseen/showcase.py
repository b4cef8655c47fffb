"""The showcase province on disk: every department's data, keys, configs and vouchers.

Used by ``unseen demo`` (and its tests): it writes each holder's tables in
a different source format, an Ed25519 key per holder, a node config with
explicit column policies and vouchers required, the exchange's issuer key,
a supervisor key, an analyst key and one voucher per holder for that analyst
— everything a governed federation needs, in one folder.

Issue 16: the exchange registers every table as a data asset with graded
columns (each holder serves only registered tables), signs the registry of
the loan applicants' own keys, and keeps the consent register; the credit
holders require the applicants' consents for entity-scoped requests. The
applicants' consents and the credit vouchers that reference them are made by
the demo (:meth:`Showcase.credit_vouchers`), which plays the enterprises.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.data import synth
from unseen.engine.data.source import open_source
from unseen.engine.governance.approval import ModelApproval
from unseen.engine.governance.asset import Registration, register
from unseen.engine.governance.consent import publish, sign_registry
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.tokens import Token
from unseen.engine.governance.voucher import issue
from unseen.engine.privacy.dp_accounting import epsilon_for

__all__ = [
    "CREDIT_PURPOSE",
    "REGIONS",
    "TRAINING_PURPOSE",
    "Showcase",
    "build_showcase",
    "contributions",
    "dp_rho",
]

# Three regional grid companies share the electricity table horizontally.
REGIONS = {
    "grid-pearl-river": (
        "Guangzhou",
        "Shenzhen",
        "Zhuhai",
        "Foshan",
        "Dongguan",
        "Zhongshan",
        "Jiangmen",
        "Huizhou",
        "Zhaoqing",
    ),
    "grid-east": ("Shantou", "Shanwei", "Chaozhou", "Jieyang", "Meizhou", "Heyuan"),
    "grid-west-north": ("Zhanjiang", "Maoming", "Yangjiang", "Yunfu", "Shaoguan", "Qingyuan"),
}
GRID_FORMATS = (".parquet", ".csv", ".duckdb")

# Column policies per table: (uses, publish the domain from the data?).
_POLICY: dict[str, dict[str, tuple[list[str], bool]]] = {
    "electricity": {
        "uscc": (["entity"], False),
        "city": (["filter", "group"], True),
        "industry": (["filter", "group"], True),
        "month": (["filter", "group"], True),
        "kwh": (["aggregate", "score"], False),
        "peak_kw": (["aggregate"], False),
    },
    "registry": {
        "uscc": (["entity"], False),
        "founded": (["score"], False),
        "registered_capital": (["score"], False),
    },
    "tax_filings": {
        "uscc": (["entity"], False),
        "quarter": (["filter"], False),
        "revenue": (["score"], False),
        "arrears": (["score"], False),
    },
    "headcount": {
        "uscc": (["entity"], False),
        "month": (["filter"], False),
        "insured_staff": (["score"], False),
    },
    "transfers": {
        "payee": (["entity", "filter", "group"], False),
        "ts": (["filter"], False),
        "amount": (["aggregate", "score"], False),
    },
    "contributions": {
        "uscc": ([], False),  # the privacy unit: never filtered, grouped or read out
        "city": (["filter", "group"], True),
        "month": (["filter"], False),
        "amount": (["aggregate"], False),
    },
    "fraud_reports": {
        "account": (["entity"], False),
        "reports": (["score"], False),
        "sim_swap_recent": (["score"], False),
    },
}
# Classification grades per table (columns not listed: internal). The credit
# and fraud features are internal; public dimensions are public.
_GRADES: dict[str, dict[str, str]] = {
    "electricity": {"city": "public", "industry": "public", "month": "public"},
    "registry": {"founded": "public"},
    "tax_filings": {"quarter": "public"},
    "headcount": {"month": "public"},
}
_OWNERS = {
    "electricity": "regional grid company",
    "registry": "market regulation administration (SAMR)",
    "tax_filings": "provincial tax bureau",
    "headcount": "human resources and social security bureau",
    "contributions": "human resources and social security bureau",
    "transfers": "commercial bank",
    "fraud_reports": "telecom operator",
}
# Holders of the credit job's features: entity-scoped use needs the subject's consent.
CONSENTING_TABLES = frozenset({"electricity", "registry", "tax_filings", "headcount"})
CREDIT_PURPOSE = "SME credit scoring"
# Bank-a's past borrowers agreed, in their loan contracts, that their records at
# the tax, hr and samr holders may train bank-a's credit model (issue 15 + 16).
TRAINING_PURPOSE = "SME credit model training"
# k per table: the fraud investigation looks at single accounts under an
# entity-scoped voucher, so a per-account aggregate of one transfer is allowed.
_K = {"transfers": 1}
_PURPOSE = {
    "electricity": "provincial electricity statistics and SME credit scoring",
    "registry": CREDIT_PURPOSE,
    "tax_filings": CREDIT_PURPOSE,
    "headcount": CREDIT_PURPOSE,
    "transfers": "telecom fraud investigation of a suspicious account batch",
    "fraud_reports": "telecom fraud investigation of a suspicious account batch",
    "contributions": "social-insurance statistics under differential privacy",
}
# The dp table (docs/differential-privacy.md): one row per enterprise per query,
# contributions clamped to 100 insured staff, each query at epsilon = 1 (delta 1e-6).
DP_EPSILON, DP_DELTA = 1.0, 1e-6
DP_CONTRIBUTION_CAP = 100 * 1200  # yuan per enterprise and month
DP_QUERIES = 3  # the voucher's budget covers this many dp queries


def dp_rho(epsilon: float = DP_EPSILON, delta: float = DP_DELTA) -> float:
    """The zCDP rho whose (epsilon, delta) conversion (OpenDP's) is ``epsilon``; bisection."""
    low, high = 1e-8, 10.0
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if epsilon_for(mid, delta) < epsilon else (low, mid)
    return math.floor(low * 1e8) / 1e8  # rounded down: epsilon stays at most the target


def _dp_section(table: str, rho: float) -> list[str]:
    return [
        f"[tables.{table}.dp]",
        'unit = "uscc"',
        "max_rows = 1",
        f"rho = {rho!r}",
        f"bounds = {{ amount = [0, {DP_CONTRIBUTION_CAP}] }}",
        "",
    ]


def contributions(headcount: synth.Columns, ent: synth.Columns) -> synth.Columns:
    """Monthly social-insurance contributions per enterprise (1 200 yuan per insured person)."""
    city_of = dict(zip(ent["uscc"].tolist(), ent["city"].tolist(), strict=True))
    return {
        "uscc": headcount["uscc"],
        "city": np.array([city_of[u] for u in headcount["uscc"].tolist()]),
        "month": headcount["month"],
        "amount": headcount["insured_staff"] * 1200,
    }


@dataclass
class Showcase:
    root: Path
    spec: synth.SynthSpec
    configs: dict[str, Path]  # holder -> node config
    tables: dict[str, list[tuple[str, synth.Columns]]]  # table -> [(holder, rows)]
    analyst: AnalystKey
    vouchers: list[str]
    supervisor: SigningKey
    holder_keys: dict[str, Path]  # holder -> public key file
    applicants: list[str] = field(default_factory=list)
    outcomes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    suspicious: list[str] = field(default_factory=list)
    mules: set[str] = field(default_factory=set)
    # Issue 16: the exchange, the registrations, the applicants' keys, the consent register.
    exchange: SigningKey = field(default_factory=SigningKey.generate)
    registrations: list[Registration] = field(default_factory=list)
    subjects: dict[str, SigningKey] = field(default_factory=dict)
    consents: Path = Path()
    credit_holders: dict[str, list[str]] = field(default_factory=dict)  # holder -> tables
    # Each voucher's fields, so that the exchange can re-issue a voucher (same id,
    # same quota, same consents) with a model it approved (unseen.engine.governance.approval).
    dp_rho: float = 0.0  # the dp table's cost per query
    grants: list[dict[str, Any]] = field(default_factory=list)

    def approve(self, tables: set[str], approval: ModelApproval) -> list[str]:
        """The vouchers for ``tables`` again, now approving one scoring model."""
        return [
            issue(self.exchange, **grant, model=approval).encode()
            for grant in self.grants
            if set(grant["scope"]) & tables
        ]

    def credit_vouchers(self, consents: list[Token], until: dt.datetime) -> list[str]:
        """The exchange's entity-scoped credit vouchers, referencing the applicants' consents."""
        digests = [c.digest for c in consents]
        publish(self.consents, sets=[digests])  # so a supervisor can resolve ledger notes
        applicants = sorted({str(c.data["subject"]) for c in consents})
        grants: list[dict[str, Any]] = [
            {
                "grantee": self.analyst.key_id,
                "holder": holder,
                "scope": {t: {c: uses for c, (uses, _) in _POLICY[t].items()} for t in tables},
                "purpose": CREDIT_PURPOSE,
                "not_after": until,
                "quota": 50,
                "entities": applicants,
                "consents": digests,
                "voucher_id": f"v-credit-{holder}".replace("_", "-"),
            }
            for holder, tables in sorted(self.credit_holders.items())
        ]
        self.grants += grants  # an approved model re-issues them with its approval
        return [issue(self.exchange, **grant).encode() for grant in grants]

    def training_vouchers(
        self,
        consents: list[Token],
        tables: dict[str, tuple[str, dict[str, list[str]]]],
        until: dt.datetime,
    ) -> list[str]:
        """The exchange's vouchers for a joint training job, one per feature holder.

        ``tables`` maps holder -> (table, column -> uses: ``score`` for a
        feature, ``filter`` for a column its filter reads). The voucher names no
        entity list: alignment (PSI) and the per-iteration charges name no entity
        (the holder sees only blinded ids, then counts). It references the
        borrowers' training consents instead, so every request that does name
        entities (the job's start names the aligned borrowers) passes a holder's
        consent check only with a valid consent for each one.
        """
        digests = [c.digest for c in consents]
        publish(self.consents, sets=[digests])  # so a supervisor can resolve ledger notes
        grants: list[dict[str, Any]] = [
            {
                "grantee": self.analyst.key_id,
                "holder": holder,
                "scope": {table: {"uscc": ["entity"], **columns}},
                "purpose": TRAINING_PURPOSE,
                "not_after": until,
                "quota": 100,
                "consents": digests,
                "voucher_id": f"v-train-{holder}",
            }
            for holder, (table, columns) in sorted(tables.items())
        ]
        self.grants += grants
        return [issue(self.exchange, **grant).encode() for grant in grants]

    def reference(self) -> duckdb.DuckDBPyConnection:
        """DuckDB over the pooled rows of every table, plus one view per shard."""
        con = duckdb.connect()
        for table, parts in self.tables.items():
            for holder, columns in parts:
                view = f"raw_{holder}_{table}".replace("-", "_")
                synth.public_relation(con, columns, view).create_view(f"{table}@{holder}")
            pooled = {k: np.concatenate([c[k] for _, c in parts]) for k in parts[0][1]}
            synth.public_relation(con, pooled, f"raw_{table}").create_view(table)
        return con


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _config(
    holder: str, tables: dict[str, Path], issuer: str, supervisor: str, rho: float = 0.0
) -> str:
    consenting = any(t in CONSENTING_TABLES for t in tables)
    lines = [
        "[node]",
        f'name = "{holder}"',
        "",
        "[governance]",
        "require_vouchers = true",
        f'trusted_issuers = [{{ name = "exchange", key = "{issuer}" }}]',
        f'supervisors = ["{supervisor}"]',
        'ledger = "ledger.sqlite"',
        'signing_key = "holder.key"',
        'revocations = "revoked.json"',
        "require_registration = true",
        f"require_consents = {'true' if consenting else 'false'}",
        'subject_registry = "../exchange/subjects.token"',
        'consents = "../exchange/consents.json"',
        "",
    ]
    for table, path in tables.items():
        lines += [
            f"[tables.{table}]",
            f'source = "{path.name}"',
            f'registration = "{table}.asset"',
            f"k = {_K.get(table, 5)}",
            "",
            f"[tables.{table}.columns]",
        ]
        for column, (uses, published) in _POLICY[table].items():
            domain = ', domain = "auto"' if published else ""
            lines.append(f"{column} = {{ uses = {_toml_list(uses)}{domain} }}")
        lines.append("")
        if table == "contributions":
            lines += _dp_section(table, rho)
    return "\n".join(lines)


def _register(exchange: SigningKey, holder: str, table: str, path: Path) -> Registration:
    """The exchange registers one served table, grading its columns."""
    return register(
        exchange,
        holder=holder,
        table=table,
        schema=list(open_source(table, path).schema()),
        grades=_GRADES.get(table, {}),
        default_grade="internal",
        owner=f"{_OWNERS[table]} ({holder})",
        description=f"{table} served by {holder}",
        update_frequency="monthly",
    )


def build_showcase(spec: synth.SynthSpec, root: Path) -> Showcase:
    """Write the whole governed showcase federation under ``root``."""
    ent = synth.enterprises(spec)
    data: dict[str, dict[str, tuple[synth.Columns, str]]] = {}
    power = synth.electricity(spec, ent)
    for (holder, cities), suffix in zip(REGIONS.items(), GRID_FORMATS, strict=True):
        data[holder] = {"electricity": (synth.split(power, np.isin(power["city"], cities)), suffix)}
    data["samr"] = {"registry": (synth.registry(spec, ent), ".parquet")}
    data["tax"] = {"tax_filings": (synth.tax_filings(spec, ent), ".sqlite")}
    staff = synth.headcount(spec, ent)
    data["hr"] = {
        "headcount": (staff, ".duckdb"),
        "contributions": (contributions(staff, ent), ".parquet"),
    }
    transfers = synth.transfers_by_bank(spec)
    for bank, suffix in zip(range(spec.banks), (".parquet", ".duckdb", ".sqlite"), strict=False):
        data[synth.bank_name(bank)] = {"transfers": (transfers[bank], suffix)}
    data["telecom"] = {"fraud_reports": (synth.telecom_reports(spec), ".parquet")}

    exchange, supervisor = SigningKey.generate(), SigningKey.generate()
    analyst = AnalystKey.generate()
    showcase = Showcase(root, spec, {}, {}, analyst, [], supervisor, {}, exchange=exchange)
    (root / "exchange").mkdir(parents=True, exist_ok=True)
    showcase.consents = root / "exchange" / "consents.json"
    showcase.dp_rho = rho = dp_rho()
    suspicious = [str(a) for a in synth.suspicious_accounts(spec)]
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    for holder, tables in data.items():
        folder = root / holder
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for table, (columns, suffix) in tables.items():
            paths[table] = synth.write_table(columns, folder / f"{table}{suffix}", table)
            showcase.tables.setdefault(table, []).append((holder, columns))
            registration = _register(exchange, holder, table, paths[table])
            registration.save(folder / f"{table}.asset")
            showcase.registrations.append(registration)
            if table in CONSENTING_TABLES:
                showcase.credit_holders.setdefault(holder, []).append(table)
        key = SigningKey.generate()
        key.save(folder / "holder.key")
        showcase.holder_keys[holder] = folder / "holder.key.pub"
        config = _config(
            holder, paths, exchange.public_key.to_text(), supervisor.public_key.to_text(), rho
        )
        (folder / "node.toml").write_text(config)
        showcase.configs[holder] = folder / "node.toml"
        for table in tables:
            scope = {table: {c: uses for c, (uses, _) in _POLICY[table].items() if uses}}
            if table in CONSENTING_TABLES:
                # Statistics only: entity-scoped (credit) use comes under the
                # consent-backed vouchers the demo obtains (credit_vouchers).
                scope = {table: {c: u for c, u in scope[table].items() if "entity" not in u}}
                if not any("aggregate" in u for u in scope[table].values()):
                    continue
            fraud = table in ("transfers", "fraud_reports")
            grant: dict[str, Any] = {
                "grantee": analyst.key_id,
                "holder": holder,
                "scope": scope,
                "purpose": _PURPOSE[table],
                "not_after": until,
                "quota": 50,
                "entities": suspicious if fraud else None,
                "voucher_id": f"v-{holder}-{table}".replace("_", "-"),
                "privacy_rho": DP_QUERIES * rho if table == "contributions" else None,
            }
            showcase.grants.append(grant)
            showcase.vouchers.append(issue(exchange, **grant).encode())
    applicants = synth.applications(spec, ent)
    showcase.applicants = [str(u) for u in applicants]
    # Subjects with keys: the applicants, and bank-a's past borrowers (whose loans
    # train the joint model, under their consents).
    borrowers = [str(u) for u in synth.loans(spec, ent, 0)["uscc"]]
    subjects = dict.fromkeys([*showcase.applicants, *borrowers])
    showcase.subjects = {a: SigningKey.generate() for a in subjects}
    registry = sign_registry(exchange, {a: k.public_key for a, k in showcase.subjects.items()})
    (root / "exchange" / "subjects.token").write_text(registry.encode() + "\n")
    showcase.outcomes = synth.application_outcomes(spec, ent, applicants)
    showcase.suspicious = suspicious
    showcase.mules = {str(m) for m in synth.mule_truth(spec)}
    return showcase
