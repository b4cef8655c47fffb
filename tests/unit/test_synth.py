"""The synthetic province: deterministic, consistent across holders, and carrying real signal."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from unseen.engine.data import synth
from unseen.oracle.quality import auc as _auc

SPEC = synth.SynthSpec(seed=11, enterprises=3_000)
THRESHOLD = 10  # distinct payers in 24 h that a fraud rule would flag


def _positions(ent: synth.Columns, codes: np.ndarray) -> np.ndarray:
    """Row of each credit code in ``ent`` (for looking up latents)."""
    order = np.argsort(ent["uscc"])
    return order[np.searchsorted(ent["uscc"], codes, sorter=order)]


@pytest.fixture(scope="module")
def ent() -> synth.Columns:
    return synth.enterprises(SPEC)


@pytest.fixture(scope="module")
def bank_tables() -> list[tuple[synth.Columns, synth.Columns]]:
    return [(synth.accounts(SPEC, b), synth.transfers(SPEC, b)) for b in range(SPEC.banks)]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> synth.Federation:
    return synth.write_federation(SPEC, tmp_path_factory.mktemp("province"))


# -- determinism -----------------------------------------------------------------------


def _tables(spec: synth.SynthSpec) -> dict[str, synth.Columns]:
    ent = synth.enterprises(spec)
    apps = synth.applications(spec, ent)
    return {
        "enterprises": ent,
        "registry": synth.registry(spec, ent),
        "electricity": synth.electricity(spec, ent),
        "tax": synth.tax_filings(spec, ent),
        "headcount": synth.headcount(spec, ent),
        "loans": synth.loans(spec, ent, 1),
        "applications": {"uscc": apps, "y": synth.application_outcomes(spec, ent, apps)},
        "accounts": synth.accounts(spec, 2),
        "transfers": synth.transfers(spec, 0),
        "reports": synth.telecom_reports(spec),
        "truth": {"mules": synth.mule_truth(spec), "batch": synth.suspicious_accounts(spec)},
    }


def test_same_seed_gives_identical_arrays_and_another_seed_differs():
    small = replace(SPEC, enterprises=400)
    first, again = _tables(small), _tables(small)
    other = _tables(replace(small, seed=12))
    for name, table in first.items():
        for column, values in table.items():
            assert values.dtype == again[name][column].dtype, (name, column)
            np.testing.assert_array_equal(values, again[name][column], err_msg=f"{name}.{column}")
        differs = [
            c
            for c, v in table.items()
            if v.shape != other[name][c].shape or not np.array_equal(v, other[name][c])
        ]
        assert differs, f"{name} did not change with the seed"


def test_a_table_does_not_depend_on_what_was_generated_before():
    ent = synth.enterprises(SPEC)
    first = synth.tax_filings(SPEC, ent)
    synth.electricity(SPEC, ent)
    synth.transfers(SPEC, 1)
    np.testing.assert_array_equal(first["revenue"], synth.tax_filings(SPEC, ent)["revenue"])


def test_sizes_scale_from_enterprises_unless_given():
    assert SPEC.account_count == 6_000 and SPEC.transfer_count == 30_000
    big = synth.SynthSpec(enterprises=1_000_000)
    assert (big.account_count, big.transfer_count, big.mule_count) == (2_000_000, 10**7, 1_000)
    assert synth.SynthSpec(transfers=123_456).transfer_count == 123_456
    with pytest.raises(ValueError, match="banks"):
        synth.SynthSpec(banks=0)
    with pytest.raises(ValueError, match="mules"):
        synth.SynthSpec(accounts=1_000, mules=50)


# -- identifiers and referential integrity -------------------------------------------


def test_credit_codes_are_unique_and_carry_a_valid_check_character(ent):
    codes = ent["uscc"]
    assert len(np.unique(codes)) == len(codes) == SPEC.enterprises
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    for code in codes[:200]:
        assert len(code) == 18 and code.startswith("9144")
        total = sum(alphabet.index(c) * w for c, w in zip(code[:17], weights, strict=True))
        assert code[17] == alphabet[(31 - total % 31) % 31]


def test_every_department_row_names_a_registered_enterprise(ent):
    known = synth.registry(SPEC, ent)["uscc"]
    assert len(np.unique(known)) == len(known)
    tables = {
        "electricity": synth.electricity(SPEC, ent)["uscc"],
        "tax": synth.tax_filings(SPEC, ent)["uscc"],
        "headcount": synth.headcount(SPEC, ent)["uscc"],
        "loans": synth.loans(SPEC, ent, 0)["uscc"],
        "applications": synth.applications(SPEC, ent),
    }
    for name, codes in tables.items():
        assert np.isin(codes, known).all(), name


def test_accounts_and_transfers_are_unique_and_refer_to_existing_accounts(bank_tables):
    all_accounts = np.concatenate([a["account"] for a, _ in bank_tables])
    assert len(np.unique(all_accounts)) == len(all_accounts) == SPEC.account_count
    ids = np.concatenate([t["transfer_id"] for _, t in bank_tables])
    assert len(np.unique(ids)) == len(ids) == SPEC.transfer_count
    start, end = synth.window(SPEC)
    for bank, (own, moves) in enumerate(bank_tables):
        assert set(np.unique(own["owner_type"])) == {"person", "company"}
        # Each bank holds the transfers its own customers paid, to anyone anywhere.
        assert np.isin(moves["payer"], own["account"]).all()
        assert np.isin(moves["payee"], all_accounts).all()
        assert not np.isin(moves["payee"], own["account"]).all()
        assert (moves["payer"] != moves["payee"]).all()
        assert ((moves["ts"] >= start) & (moves["ts"] < end)).all()
        assert (moves["amount"] > 0).all()
        assert own["account"][0].startswith(synth.bank_name(bank)[-1].upper())
    reports = synth.telecom_reports(SPEC)
    assert np.isin(reports["account"], all_accounts).all()
    assert np.isin(synth.mule_truth(SPEC), all_accounts).all()


# -- signal -------------------------------------------------------------------------


def test_defaults_follow_health_at_a_realistic_rate(ent):
    applicants = synth.applications(SPEC, ent, share=0.5)
    outcome = synth.application_outcomes(SPEC, ent, applicants)
    health = ent["_health"][_positions(ent, applicants)]
    assert 0.05 <= outcome.mean() <= 0.18
    assert health[outcome == 1].mean() < health[outcome == 0].mean() - 0.8
    assert _auc(-health, outcome) > 0.8
    book = synth.loans(SPEC, ent, 0)
    borrowers = _positions(ent, book["uscc"])
    assert 0.04 <= book["defaulted"].mean() <= 0.15
    assert _auc(-ent["_health"][borrowers], book["defaulted"]) > 0.8
    # The same enterprise has the same future whoever asks.
    again = synth.application_outcomes(SPEC, ent, applicants[::-1])
    np.testing.assert_array_equal(again, outcome[::-1])
    with pytest.raises(ValueError):
        synth.application_outcomes(SPEC, ent, np.array(["not-a-code"]))


def test_electricity_trend_carries_health(ent):
    power = synth.electricity(SPEC, ent)
    labels = synth.months(SPEC)
    index = _positions(ent, power["uscc"])
    recent = np.isin(power["month"], labels[-6:])
    before = np.isin(power["month"], labels[-12:-6])

    def mean_kwh(mask: np.ndarray) -> np.ndarray:
        n = SPEC.enterprises
        total = np.bincount(index[mask], weights=power["kwh"][mask], minlength=n)
        return total / np.maximum(np.bincount(index[mask], minlength=n), 1)

    trend = np.log1p(mean_kwh(recent)) - np.log1p(mean_kwh(before))
    assert np.corrcoef(trend, ent["_health"])[0, 1] > 0.4


def test_values_go_missing(ent):
    n, m, q = SPEC.enterprises, SPEC.months, len(synth.quarters(SPEC))
    assert 0.9 * n * m < len(synth.electricity(SPEC, ent)["kwh"]) < n * m
    assert 0.9 * n * m < len(synth.headcount(SPEC, ent)["insured_staff"]) < n * m
    tax = synth.tax_filings(SPEC, ent)
    assert len(tax["revenue"]) < n * q and np.isnan(tax["vat_paid"]).any()
    assert np.isnan(synth.loans(SPEC, ent, 0)["rate"]).any()
    assert synth.quarters(SPEC)[:2] == ["2022Q1", "2022Q2"] and len(synth.quarters(SPEC)) == 8


def test_mules_stand_out_only_when_every_banks_transfers_are_pooled(bank_tables):
    _, end = synth.window(SPEC)
    day = [t["ts"] >= end - np.timedelta64(1, "D") for _, t in bank_tables]
    pairs = [
        {(payee, payer) for payee, payer in zip(t["payee"][d], t["payer"][d], strict=True)}
        for (_, t), d in zip(bank_tables, day, strict=True)
    ]

    def distinct_payers(accounts: np.ndarray, pair_sets: list[set[tuple[str, str]]]) -> np.ndarray:
        counts: dict[str, int] = {}
        for pair_set in pair_sets:
            for payee, _ in pair_set:
                counts[payee] = counts.get(payee, 0) + 1
        return np.array([counts.get(a, 0) for a in accounts])

    mules = synth.mule_truth(SPEC)
    everyone = np.concatenate([a["account"] for a, _ in bank_tables])
    pooled = distinct_payers(mules, pairs)
    assert len(mules) == SPEC.mule_count
    assert (pooled >= THRESHOLD).mean() >= 0.9
    assert np.median(distinct_payers(everyone, pairs)) <= 1
    single = np.max([distinct_payers(mules, [p]) for p in pairs], axis=0)
    assert (single < THRESHOLD).mean() >= 0.5, "most mules must look ordinary at every bank"


def test_telecom_reports_favour_mules_but_are_noisy():
    reports = synth.telecom_reports(SPEC)
    mules = synth.mule_truth(SPEC)
    named = reports["account"][reports["reports"] > 0]
    caught = np.isin(mules, named).mean()
    assert 0.5 <= caught < 1.0
    assert (~np.isin(named, mules)).sum() > 0  # false reports exist
    assert set(np.unique(reports["sim_swap_recent"])) == {0, 1}


def test_suspicious_batch_holds_every_mule_and_hard_negatives():
    batch = synth.suspicious_accounts(SPEC)
    mules = synth.mule_truth(SPEC)
    assert len(np.unique(batch)) == len(batch)
    assert np.isin(mules, batch).all()
    assert 4 * len(mules) <= len(batch) <= 6 * len(mules)
    assert not np.array_equal(batch, np.sort(batch))


# -- writing ------------------------------------------------------------------------


EXPECTED = {
    ("samr", "registry"): ["uscc", "city", "industry", "founded", "registered_capital"],
    ("grid", "electricity"): ["uscc", "city", "industry", "month", "kwh", "peak_kw"],
    ("tax", "tax_filings"): ["uscc", "quarter", "revenue", "vat_paid", "arrears"],
    ("hr", "headcount"): ["uscc", "month", "insured_staff"],
    ("bank-a", "loans"): ["loan_id", "uscc", "city", "month", "amount", "rate", "defaulted"],
    ("bank-a", "accounts"): ["account", "owner_type", "opened", "city"],
    ("bank-c", "transfers"): ["transfer_id", "payer", "payee", "amount", "ts", "channel"],
    ("telecom", "fraud_reports"): ["account", "report_day", "reports", "sim_swap_recent"],
}


def test_write_federation_lays_out_holders_inputs_and_truth(federation):
    assert set(federation.holders) == {"samr", "grid", "tax", "hr", "telecom"} | {
        synth.bank_name(b) for b in range(SPEC.banks)
    }
    for bank in range(SPEC.banks):
        assert {"accounts", "transfers"} <= set(federation.holders[synth.bank_name(bank)])
    con = duckdb.connect()
    for (holder, table), columns in EXPECTED.items():
        path = federation.holders[holder][table]
        assert path.parent == federation.root / holder
        described = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        assert [r[0] for r in described] == columns
        assert not any(r[0].startswith("_") for r in described)
    types = dict(
        (r[0], r[1])
        for r in con.sql(
            f"DESCRIBE SELECT * FROM read_parquet('{federation.holders['bank-a']['transfers']}')"
        ).fetchall()
    )
    assert types["ts"] == "TIMESTAMP" and types["payer"] == "VARCHAR"
    for path in [*federation.inputs.values(), *federation.truth.values()]:
        assert path.parent.parent == federation.root and path.exists()
    mules = con.sql(f"SELECT account FROM read_csv('{federation.truth['mules']}')").fetchall()
    assert sorted(r[0] for r in mules) == sorted(synth.mule_truth(SPEC))
    assert (federation.root / "federation.json").exists()


def test_written_files_match_the_in_memory_tables(federation, ent):
    con = duckdb.connect()
    written = con.sql(
        f"SELECT * FROM read_parquet('{federation.holders['bank-b']['transfers']}')"
    ).fetchnumpy()
    expected = synth.transfers(SPEC, 1)
    for column in ("transfer_id", "payer", "payee", "channel"):
        np.testing.assert_array_equal(written[column].astype(str), expected[column])
    np.testing.assert_array_equal(written["ts"], expected["ts"])
    tax = con.sql(
        f"SELECT * FROM read_parquet('{federation.holders['tax']['tax_filings']}')"
    ).fetchnumpy()
    reference = synth.tax_filings(SPEC, ent)
    np.testing.assert_array_equal(tax["uscc"].astype(str), reference["uscc"])
    assert int(tax["vat_paid"].mask.sum()) == int(np.isnan(reference["vat_paid"]).sum())


@pytest.mark.parametrize("fmt", [".csv", ".duckdb", ".sqlite"])
def test_write_federation_in_other_formats_is_readable(tmp_path: Path, fmt: str):
    spec = synth.SynthSpec(seed=3, enterprises=200, transfers=4_000)
    federation = synth.write_federation(spec, tmp_path, fmt)
    path = federation.holders["bank-a"]["transfers"]
    assert path.suffix == fmt
    if fmt == ".csv":
        rows = duckdb.sql(f"SELECT count(*), min(ts) FROM read_csv('{path}')").fetchall()
    elif fmt == ".duckdb":
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.sql("SELECT count(*), min(ts) FROM transfers").fetchall()
    else:
        import sqlite3

        with sqlite3.connect(path) as con:
            rows = con.execute("SELECT count(*), min(ts) FROM transfers").fetchall()
    assert rows[0][0] == federation.rows["bank-a/transfers"] > 0
    assert str(rows[0][1]).startswith("2024-01-01")


def test_city_shards_partition_the_electricity_table(tmp_path: Path):
    spec = replace(SPEC, enterprises=500)
    shards = synth.write_city_shards(spec, tmp_path)
    assert sorted(shards) == sorted(f"grid-{c.lower()}" for c in synth.CITIES)
    con = duckdb.connect()
    total = 0
    for holder, tables in shards.items():
        cities = con.sql(f"SELECT DISTINCT city FROM read_parquet('{tables['electricity']}')")
        found = [r[0] for r in cities.fetchall()]
        assert found in ([], [c for c in synth.CITIES if f"grid-{c.lower()}" == holder])
        counted = con.sql(f"SELECT count(*) FROM read_parquet('{tables['electricity']}')")
        total += counted.fetchall()[0][0]
    assert total == len(synth.electricity(spec, synth.enterprises(spec))["kwh"])


def test_public_relation_turns_nan_into_null_and_hides_latents():
    con = duckdb.connect()
    columns = {
        "x": np.array([1.5, np.nan]),
        "name": np.array(["a", "b"]),
        "day": np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"),
        "_secret": np.array([1, 2]),
    }
    relation = synth.public_relation(con, columns, "v")
    assert relation.columns == ["x", "name", "day"]
    assert [str(t) for t in relation.types] == ["DOUBLE", "VARCHAR", "DATE"]
    assert relation.fetchall()[1][0] is None
