"""Deterministic synthetic data for the showcase federation (see docs/synthetic-data.md).

One seed fixes everything. Enterprises live in the 21 prefecture-level cities of a
province, belong to industries and carry latent variables (size, credit health,
growth momentum); every department's table is derived from those latents with
noise, so cross-department signals are realistic: electricity, revenue and
headcount grow with size and trend with health, amounts are heavy-tailed, values
go missing, and loan defaults truly depend on health. A separate account universe
at several banks carries ordinary payments, busy merchants, fee collectors and
planted money mules whose pattern only shows when every bank's transfers are
pooled.

Every table draws from its own ``np.random.default_rng([seed, constant])`` stream,
so a table does not depend on which other tables were generated first. Tables
come back as dicts of numpy columns. Large tables are built internally with
identifier columns kept as integer parts (:class:`~unseen.engine.data.synth.columns.Text`) and
only turned into strings by DuckDB while it writes the file, which keeps a
federation of a million enterprises and ten million transfers under 2 GB and a
minute.

Modules, in dependency order: ``province`` (cities, industries), ``spec`` (sizes,
seed, calendar), ``columns`` (tables and lazy string columns), ``ids`` (credit
codes), ``enterprise`` (enterprises, registry), ``credit`` (loans, applications),
``departments`` (electricity, headcount, tax), ``bank`` (accounts), ``payments``
(transfers), ``fraud`` (telecom reports, mules, suspicious accounts), ``writers``
(files and relations) and ``federation`` (a whole federation on disk). Everything
public is re-exported here: use ``from engine import synth`` and ``synth.<name>``.
"""

from __future__ import annotations

from unseen.engine.data.synth.bank import accounts, bank_name
from unseen.engine.data.synth.columns import Columns, split
from unseen.engine.data.synth.credit import application_outcomes, applications, loans
from unseen.engine.data.synth.departments import electricity, headcount, tax_filings
from unseen.engine.data.synth.enterprise import enterprises, registry
from unseen.engine.data.synth.federation import Federation, write_city_shards, write_federation
from unseen.engine.data.synth.fraud import mule_truth, suspicious_accounts, telecom_reports
from unseen.engine.data.synth.payments import transfers, transfers_by_bank
from unseen.engine.data.synth.province import CITIES, INDUSTRIES
from unseen.engine.data.synth.spec import SynthSpec, months, quarters, window
from unseen.engine.data.synth.writers import public_relation, write_table

__all__ = [
    "CITIES",
    "INDUSTRIES",
    "Columns",
    "Federation",
    "SynthSpec",
    "accounts",
    "application_outcomes",
    "applications",
    "bank_name",
    "electricity",
    "enterprises",
    "headcount",
    "loans",
    "months",
    "mule_truth",
    "public_relation",
    "quarters",
    "registry",
    "split",
    "suspicious_accounts",
    "tax_filings",
    "telecom_reports",
    "transfers",
    "transfers_by_bank",
    "window",
    "write_city_shards",
    "write_federation",
    "write_table",
]
