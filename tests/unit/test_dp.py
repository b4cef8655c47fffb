"""Differential privacy, layer by layer: policy, pushdown, accounting, noise, budgets.

Statistical checks are goodness-of-fit tests against the target distribution.
OpenDP samples from the operating system's generator and cannot be seeded, so
each test uses a fixed, CI-sized sample and a significance level (1e-4) that
makes a false alarm negligible, as OpenDP's own sampler tests do.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from scipy import stats

from tests.governance_fixtures import request
from unseen.engine.config import parse_config
from unseen.engine.data.aggregate import compute_moments
from unseen.engine.data.source import open_source
from unseen.engine.errors import ConfigError, PlanError, PolicyError
from unseen.engine.governance.ledger import Ledger, read_ledger
from unseen.engine.governance.policy import quickstart_table
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import SignedVoucher, issue
from unseen.engine.privacy.budget import spent_by_voucher
from unseen.engine.privacy.dp_accounting import calibrate, epsilon_for, query_cost
from unseen.engine.privacy.dp_charge import query_rho
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.dp_quantities import quantities
from unseen.engine.privacy.noise import add_noise, sample
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.layout import GroupMoments, MeasureMoments, layout_for, pack, unpack
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport.serde import catalog_from_proto, catalog_to_proto

ROOT = Path(__file__).resolve().parents[2]
ALPHA = 1e-4
UTC = dt.UTC

POLICY = DpPolicy(
    unit="person",
    max_rows=2,
    rho=Fraction(1, 2),
    bounds=MappingProxyType({"amount": (Fraction(0), Fraction(1000))}),
)


def _table(tmp_path: Path, suffix: str = ".duckdb"):
    from tests.shards import write_shard

    schema = [("person", "VARCHAR"), ("city", "VARCHAR"), ("amount", "BIGINT")]
    # p0 has 5 rows (3 beyond the bound), amounts beyond the clamp; others one row each.
    rows = [("p0", "A", 5000)] * 5 + [(f"p{i}", "A" if i % 2 else "B", 10 * i) for i in range(1, 9)]
    path = write_shard(tmp_path / f"t{suffix}", schema, rows, table="t")
    source = open_source("t", path)
    info = quickstart_table(source, k=1)
    import dataclasses

    return source, dataclasses.replace(info, dp=POLICY), rows


def _plan(table, sql: str):
    return compile_sql(sql, Catalog("h", (table,))).plan


# -- policy -------------------------------------------------------------------------------------


def test_config_reads_a_dp_section():
    config = parse_config(
        {
            "governance": {"require_vouchers": False},
            "tables": {
                "t": {
                    "columns": {"amount": {"uses": ["aggregate"]}},
                    "dp": {
                        "unit": "person",
                        "max_rows": 3,
                        "rho": 0.25,
                        "honest_holders": 2,
                        "bounds": {"Amount": [0, "12.5"]},
                    },
                }
            },
        }
    )
    dp = config.tables["t"].dp
    assert dp is not None
    assert (dp.unit, dp.max_rows, dp.rho, dp.honest_holders) == ("person", 3, Fraction(1, 4), 2)
    assert dp.bound("AMOUNT") == (Fraction(0), Fraction(25, 2))


@pytest.mark.parametrize(
    ("dp", "message"),
    [
        ({"max_rows": 1, "rho": 1}, "missing key 'unit'"),
        ({"unit": "p", "max_rows": 0, "rho": 1}, "max_rows"),
        ({"unit": "p", "max_rows": 1, "rho": 0}, "must be positive"),
        ({"unit": "p", "max_rows": 1, "rho": 1, "bounds": {"a": [2, 1]}}, "lower bound above"),
        ({"unit": "p", "max_rows": 1, "rho": 1, "epsilon": 1}, "epsilon"),
    ],
)
def test_config_refuses_a_bad_dp_section(dp, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"governance": {"require_vouchers": False}, "tables": {"t": {"dp": dp}}})


def test_the_policy_travels_in_the_catalog(tmp_path):
    _, table, _ = _table(tmp_path)
    back = catalog_from_proto(catalog_to_proto(Catalog("h", (table,)))).tables[0]
    assert back.dp == POLICY


# -- pushdown: bounded contributions and clamping -----------------------------------------------


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite"])
def test_each_unit_contributes_at_most_max_rows_clamped(tmp_path, suffix):
    source, table, rows = _table(tmp_path, suffix)
    plan = _plan(table, "SELECT city, COUNT(*), SUM(amount) FROM t GROUP BY city")
    moments = compute_moments(plan, source, table)
    # Plaintext reference: p0 keeps 2 of its 5 rows, each clamped to 1000.
    expect = {"A": [2, 2000], "B": [0, 0]}
    for _person, city, amount in rows[5:]:
        expect[city][0] += 1
        expect[city][1] += min(amount, 1000)
    index = {v: i for i, v in enumerate(plan.groups[0].domain)}
    for city, (count, total) in expect.items():
        got = moments[index[city]]
        assert (got.rows, got.measures[0].total) == (count, total)


def test_an_expression_measure_is_refused_in_dp_mode(tmp_path):
    _, table, _ = _table(tmp_path)
    plan = _plan(table, "SELECT SUM(amount * 1000) FROM t")
    with pytest.raises(PlanError, match="differential privacy"):
        quantities(plan, POLICY)


# -- accounting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "count"),
    [
        ("SELECT COUNT(*) FROM t", 1),
        ("SELECT SUM(amount) FROM t", 3),
        ("SELECT city, COUNT(*), SUM(amount), AVG(amount) FROM t GROUP BY city", 3),
        ("SELECT city, VAR_POP(amount), COUNT(amount) FROM t GROUP BY city", 4),
    ],
)
def test_the_query_cost_is_the_tables_rho_for_any_measures_and_groups(tmp_path, sql, count):
    _, table, _ = _table(tmp_path)
    plan = _plan(table, sql)
    calibrated = calibrate(plan, POLICY)
    assert len(calibrated) == count
    # OpenDP composes the quantities' Gaussian mechanisms back to the table's rho ...
    assert query_cost(calibrated) == pytest.approx(0.5, rel=1e-9)
    assert query_rho(plan, POLICY) == Fraction(1, 2)
    # ... and each quantity's sigma grows as sqrt(Q): Delta / sqrt(2 rho / Q).
    rows = calibrated[0]
    assert rows.sensitivity == 2
    assert rows.sigma == pytest.approx(2 / math.sqrt(2 * 0.5 / count))


def test_sensitivity_follows_bounds_rows_and_unit_holders(tmp_path):
    _, table, _ = _table(tmp_path)
    plan = _plan(table, "SELECT SUM(amount), VAR_POP(amount) FROM t")
    wide = DpPolicy("person", 3, Fraction(1), POLICY.bounds, unit_holders=2)
    by_part = {q.part: q.sensitivity for q in quantities(plan, wide)}
    assert by_part["rows"] == by_part["count"] == 6
    assert by_part["sum"] == 6 * 1000
    assert by_part["square"] == 6 * 1000**2 * 2**plan.codec.fraction_bits


def test_epsilon_conversion_is_openDPs():
    # rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP; OpenDP's bound is tighter.
    eps = epsilon_for(0.5, 1e-6)
    assert 0.5 < eps <= 0.5 + 2 * math.sqrt(0.5 * math.log(1e6))
    assert epsilon_for(0.1, 1e-6) < eps


# -- noise --------------------------------------------------------------------------------------


def _discrete_gaussian_pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    wide = np.arange(-int(12 * sigma) - 1, int(12 * sigma) + 2)
    norm = np.exp(-(wide.astype(float) ** 2) / (2 * sigma**2)).sum()
    return np.exp(-(support.astype(float) ** 2) / (2 * sigma**2)) / norm


def _chi_square_p(values: list[int], pmf) -> float:
    values_arr = np.asarray(values)
    edges = np.arange(values_arr.min(), values_arr.max() + 1)
    probs = pmf(edges)
    observed = np.array([(values_arr == e).sum() for e in edges], dtype=float)
    expected = probs * len(values)
    # Pool the tails so that every bin expects at least 5.
    keep = expected >= 5
    observed = np.append(observed[keep], len(values) - observed[keep].sum())
    expected = np.append(expected[keep], len(values) - expected[keep].sum())
    return float(stats.chisquare(observed, expected).pvalue)


def test_a_holders_share_is_discrete_gaussian():
    sigma = 3.0
    shares = sample(sigma, 20_000)
    assert _chi_square_p(shares, lambda x: _discrete_gaussian_pmf(sigma, x)) > ALPHA


def test_the_federations_total_noise_has_the_stated_distribution():
    # Three holders with honest_holders = 2: each share has sigma/sqrt(2), the total
    # is their sum; its pmf is the 3-fold convolution of the shares' pmf.
    sigma, holders, honest = 4.0, 3, 2
    share = sigma / math.sqrt(honest)
    draws = np.array([sample(share, 8_000) for _ in range(holders)]).sum(axis=0)
    half = int(12 * share)
    support = np.arange(-half, half + 1)
    one = _discrete_gaussian_pmf(share, support)
    total = one
    for _ in range(holders - 1):
        total = np.convolve(total, one)
    offset = holders * half

    def pmf(x: np.ndarray) -> np.ndarray:
        return total[x + offset]

    assert _chi_square_p(list(draws), pmf) > ALPHA
    assert np.var(draws) == pytest.approx(holders * share**2, rel=0.1)


def test_noise_is_added_to_every_group_on_the_limbs(tmp_path):
    _source, table, _ = _table(tmp_path)
    plan = _plan(table, "SELECT city, COUNT(*), SUM(amount) FROM t GROUP BY city")
    layout = layout_for(plan)
    exact = {0: GroupMoments(3, (MeasureMoments(3, Fraction(1234)),))}
    clean = unpack(plan, layout, np.concatenate(pack(plan, layout, exact)))
    calibrated = calibrate(plan, POLICY)
    diffs = []
    for _ in range(300):
        noisy = add_noise(plan, layout, pack(plan, layout, exact), calibrated, 1)
        got = unpack(plan, layout, np.concatenate(noisy))
        for group, base in zip(got, clean, strict=True):
            noisy_total, base_total = group.measures[0].total, base.measures[0].total
            assert noisy_total is not None and base_total is not None
            assert noisy_total.denominator == 1  # still on the grid
            diffs.append(float(noisy_total - base_total))
    sum_sigma = next(c.sigma for c in calibrated if c.quantity.part == "sum")
    # The group with rows and the empty group get noise of the calibrated scale alike.
    assert np.std(diffs[0::2]) == pytest.approx(sum_sigma, rel=0.2)
    assert np.std(diffs[1::2]) == pytest.approx(sum_sigma, rel=0.2)


def test_a_coarse_step_rounds_the_value_then_adds_noise_on_the_step(tmp_path):
    _source, table, _ = _table(tmp_path)
    plan = _plan(table, "SELECT SUM(amount) FROM t")
    layout = layout_for(plan)
    exact = {0: GroupMoments(1, (MeasureMoments(1, Fraction(777)),))}
    (_rows, _count, total) = calibrate(plan, POLICY)
    coarse = type(total)(total.quantity, 64, total.sensitivity, total.sigma)
    noisy = add_noise(plan, layout, pack(plan, layout, exact), (coarse,), 1)
    value = unpack(plan, layout, np.concatenate(noisy))[0].measures[0].total
    assert value % 64 == 0  # 777 rounded to the step, plus noise in whole steps


# -- budgets ------------------------------------------------------------------------------------


@pytest.fixture
def issuer() -> SigningKey:
    return SigningKey.generate()


def _voucher(issuer: SigningKey, rho: str | None = "1") -> SignedVoucher:
    return issue(
        issuer,
        grantee="a1" * 32,
        holder="tax",
        scope={"tax": {"revenue": ["aggregate"]}},
        purpose="dp test",
        not_after=dt.datetime.now(UTC) + dt.timedelta(hours=1),
        voucher_id="v-dp",
        privacy_rho=rho,
    )


def test_a_voucher_carries_a_budget_and_one_without_keeps_its_payload(issuer):
    signed = _voucher(issuer, "3/4")
    back = SignedVoucher.decode(signed.encode())
    assert back.voucher.privacy_rho == Fraction(3, 4)
    assert b"privacy" not in _voucher(issuer, None).payload


def test_charges_refuse_once_the_budget_is_spent_and_a_supervisor_recomputes_it(tmp_path, issuer):
    key = SigningKey.generate()
    with Ledger(tmp_path / "tax.ledger", "tax", key) as ledger:
        for _ in range(4):
            ledger.charge_privacy(request(), "v-dp", Fraction(1, 4), Fraction(1))
        with pytest.raises(PolicyError, match="privacy budget"):
            ledger.charge_privacy(request(), "v-dp", Fraction(1, 4), Fraction(1))
        assert ledger.privacy_spent("v-dp") == 1
        # Charges are not queries: the quota does not count them.
        assert ledger.answered_count("v-dp") == 0
    entries = read_ledger(tmp_path / "tax.ledger").entries
    assert spent_by_voucher(entries) == {"v-dp": Fraction(1)}


CHARGER = """
import sys
from fractions import Fraction
from unseen.engine.errors import PolicyError
from unseen.engine.governance.ledger import Ledger
from unseen.engine.governance.signing import SigningKey
from tests.governance_fixtures import request
ledger = Ledger(sys.argv[1], "tax", SigningKey.load(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
charged = 0
for _ in range(int(sys.argv[3])):
    try:
        ledger.charge_privacy(request(), "v-dp", Fraction(1, 10), Fraction(1))
        charged += 1
    except PolicyError:
        pass
print(charged, flush=True)
"""


def test_threads_and_processes_cannot_overspend(tmp_path):
    key = SigningKey.generate()
    key_file = tmp_path / "holder.key"
    key_file.write_bytes(key.to_pem())
    os.chmod(key_file, 0o600)
    path = tmp_path / "tax.ledger"
    ledger = Ledger(path, "tax", key)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHARGER, str(path), str(key_file), "5"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start = threading.Barrier(5)
    charged: list[int] = []

    def spend() -> None:
        start.wait()
        for _ in range(2):
            try:
                ledger.charge_privacy(request(), "v-dp", Fraction(1, 10), Fraction(1))
                charged.append(1)
            except PolicyError:
                pass

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    start.wait()
    for t in threads:
        t.join()
    from_procs = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        from_procs += int(out)
    ledger.close()
    # 18 attempts of 1/10 against a budget of 1: exactly ten succeed, wherever they ran.
    assert len(charged) + from_procs == 10
    assert spent_by_voucher(read_ledger(path).entries) == {"v-dp": Fraction(1)}


def test_rows_outside_the_public_domain_are_dropped_not_reported(tmp_path):
    import dataclasses

    source, table, _ = _table(tmp_path)
    # The published domain of city lacks "B": an exact table refuses with an error that
    # depends on the data; a dp table drops those rows silently.
    city = dataclasses.replace(table.column("city"), domain=("A",), uses=frozenset({"group"}))
    columns = tuple(city if c.name == "city" else c for c in table.columns)
    narrow = dataclasses.replace(table, columns=columns, _index={})
    plan = _plan(narrow, "SELECT city, COUNT(*) FROM t GROUP BY city")
    moments = compute_moments(plan, source, narrow)
    assert list(moments) == [0] and moments[0].rows == 2 + 4
    with pytest.raises(PlanError, match="outside the plan's group domain"):
        compute_moments(plan, source, dataclasses.replace(narrow, dp=None, _index={}))


def test_a_catalog_refuses_a_dp_table_with_fewer_hosts_than_honest_holders(tmp_path):
    import dataclasses

    from unseen.engine.query.catalog import merge

    _, table, _ = _table(tmp_path)
    assuming_two = dataclasses.replace(
        table, dp=dataclasses.replace(POLICY, honest_holders=2), _index={}
    )
    alone = merge([Catalog("h1", (assuming_two,))])
    assert not alone.tables and "honest holders" in (alone.conflict("t") or "")
    pair = merge([Catalog("h1", (assuming_two,)), Catalog("h2", (assuming_two,))])
    assert pair.table("t") is not None
