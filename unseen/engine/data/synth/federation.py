"""A whole federation on disk: every department's tables, the analyst's inputs and the truth."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from unseen.engine.data.synth.bank import MULE, accounts_table, bank_name, universe
from unseen.engine.data.synth.columns import Column, Lookup, Text, row_count, take
from unseen.engine.data.synth.credit import application_outcomes, applications, loans
from unseen.engine.data.synth.departments import (
    electricity_table,
    headcount_table,
    tax_filings_table,
)
from unseen.engine.data.synth.enterprise import enterprises, registry_table
from unseen.engine.data.synth.fraud import investigation_batch, reports_table
from unseen.engine.data.synth.payments import all_transfers, bank_transfers_table
from unseen.engine.data.synth.province import CITIES
from unseen.engine.data.synth.spec import SynthSpec
from unseen.engine.data.synth.writers import write_columns

__all__ = ["Federation", "write_city_shards", "write_federation"]


@dataclass(frozen=True)
class Federation:
    """What :func:`write_federation` wrote.

    Attributes:
        root: the output directory.
        holders: holder name -> {table name -> file}; each holder has its own
            sub-directory of ``root``.
        inputs: analyst inputs outside any holder: ``applicants`` (CSV, column
            ``uscc``) and ``suspicious_accounts`` (CSV, column ``account``).
        truth: ground truth no holder serves: ``application_outcomes`` (``uscc``,
            ``defaulted``) and ``mules`` (``account``).
        rows: row count per "holder/table" and per input and truth file.
        seconds: wall time of generating and writing everything.
    """

    root: Path
    holders: dict[str, dict[str, Path]]
    inputs: dict[str, Path]
    truth: dict[str, Path]
    rows: dict[str, int]
    seconds: float


def write_federation(
    spec: SynthSpec,
    out_dir: Path,
    fmt: str = ".parquet",
    log: Callable[[str], None] | None = None,
) -> Federation:
    """Generate the province and write every department's tables under ``out_dir``.

    Holders: ``samr`` (registry), ``grid`` (electricity), ``tax`` (tax_filings),
    ``hr`` (headcount), ``bank-a`` ... (accounts and transfers at every bank;
    bank-a also its ``loans``), ``telecom`` (fraud_reports). Inputs and truth go
    to ``out_dir/inputs`` and ``out_dir/truth`` as CSV, and a ``federation.json``
    manifest records the spec and every path. Tables are generated one at a
    time and freed once written, so memory peaks at the largest table.

    Args:
        spec: sizes and seed.
        out_dir: directory to write into (created; existing files are replaced).
        fmt: file format of holder tables: .parquet, .csv, .duckdb or .sqlite
            (SQLite is written row by row: use it for small federations only).
        log: called with a line per table written (name, rows, seconds).
    """
    started = time.perf_counter()
    root = Path(out_dir)
    holders: dict[str, dict[str, Path]] = {}
    rows: dict[str, int] = {}

    def put(holder: str, name: str, make: Callable[[], Mapping[str, Column]]) -> None:
        # Generate, write, drop: only one big table is alive at a time.
        began = time.perf_counter()
        table = make()
        path = write_columns(table, root / holder / f"{name}{fmt}", name)
        holders.setdefault(holder, {})[name] = path
        rows[f"{holder}/{name}"] = row_count(table)
        if log:
            took = time.perf_counter() - began
            log(f"{holder}/{name}: {row_count(table):,} rows -> {path} ({took:.1f} s)")

    ent = enterprises(spec)
    put("samr", "registry", partial(registry_table, spec, ent))
    put("grid", "electricity", partial(electricity_table, spec, ent))
    put("tax", "tax_filings", partial(tax_filings_table, spec, ent))
    put("hr", "headcount", partial(headcount_table, spec, ent))
    put(bank_name(0), "loans", partial(loans, spec, ent, 0))
    applicants = applications(spec, ent, 0)
    outcomes = application_outcomes(spec, ent, applicants)
    del ent
    uni = universe(spec)
    every = all_transfers(spec, uni)
    for bank in range(spec.banks):
        put(bank_name(bank), "accounts", partial(accounts_table, spec, uni, bank))
        put(bank_name(bank), "transfers", partial(bank_transfers_table, spec, uni, every, bank))
    del every
    put("telecom", "fraud_reports", partial(reports_table, spec, uni))
    mules = uni.ids(uni.of_kind(MULE))
    suspicious = uni.ids(investigation_batch(spec, uni))

    files: dict[str, tuple[str, Mapping[str, Column]]] = {
        "applicants": ("inputs", {"uscc": applicants}),
        "suspicious_accounts": ("inputs", {"account": suspicious}),
        "application_outcomes": ("truth", {"uscc": applicants, "defaulted": outcomes}),
        "mules": ("truth", {"account": mules}),
    }
    inputs: dict[str, Path] = {}
    truth: dict[str, Path] = {}
    for name, (where, table) in files.items():
        path = write_columns(table, root / where / f"{name}.csv", name)
        (inputs if where == "inputs" else truth)[name] = path
        rows[f"{where}/{name}"] = row_count(table)
    seconds = time.perf_counter() - started
    federation = Federation(root, holders, inputs, truth, rows, seconds)
    manifest = {
        "spec": asdict(spec),
        "holders": {
            h: {t: str(p.relative_to(root)) for t, p in ts.items()} for h, ts in holders.items()
        },
        "inputs": {k: str(p.relative_to(root)) for k, p in inputs.items()},
        "truth": {k: str(p.relative_to(root)) for k, p in truth.items()},
        "rows": rows,
    }
    (root / "federation.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return federation


def write_city_shards(
    spec: SynthSpec, out_dir: Path, fmt: str = ".parquet"
) -> dict[str, dict[str, Path]]:
    """Electricity split into 21 city holders, for statistics across city nodes.

    Returns ``{"grid-<city>": {"electricity": path}}`` (city names lower-case),
    each file holding that city's rows of :func:`electricity`.
    """
    ent = enterprises(spec)
    power = electricity_table(spec, ent)
    city_part = power["city"]
    assert isinstance(city_part, Text) and isinstance(city_part.parts[0], Lookup)
    codes = city_part.parts[0].codes
    shards: dict[str, dict[str, Path]] = {}
    for code, city in enumerate(CITIES):
        holder = f"grid-{city.lower()}"
        part = take(power, np.flatnonzero(codes == code))
        path = write_columns(part, Path(out_dir) / holder / f"electricity{fmt}", "electricity")
        shards[holder] = {"electricity": path}
    return shards
