"""Entity alignment by PSI over real gRPC (coordinator relay), checked against the
plaintext intersection computed in DuckDB; governed alignment is charged and ledgered."""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from tests.conftest import start_federation, unseen
from tests.governance_fixtures import ACCOUNTS, build_world, entries, start_in_process
from tests.shards import write_shard
from unseen.engine.errors import RemoteError

PEOPLE = [("uscc", "VARCHAR"), ("kwh", "DOUBLE")]
TAXES = [("code", "BIGINT"), ("paid", "DOUBLE")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("psi")
    rng = random.Random(15)
    universe = [f"9144{i:06d}" for i in range(600)]
    bank = rng.sample(universe, 250)
    grid = [(u, rng.uniform(1, 9e4)) for u in rng.sample(universe, 300)]
    tax = [(int(u), rng.uniform(1, 9e4)) for u in rng.sample(universe, 200)]
    fed = start_federation(
        {
            "grid": {"power": write_shard(root / "power.csv", PEOPLE, grid)},
            "tax": {"taxes": write_shard(root / "taxes.parquet", TAXES, tax)},
        }
    )
    bank_file = root / "bank.txt"
    bank_file.write_text("id\n" + "".join(f"{b}\n" for b in bank))
    yield fed, bank, grid, tax, bank_file
    fed.close()


def _plaintext(bank, rows, cast=str):
    con = duckdb.connect()
    con.execute("CREATE TABLE bank (id VARCHAR)")
    con.executemany("INSERT INTO bank VALUES (?)", [(b,) for b in bank])
    con.execute("CREATE TABLE holder (id VARCHAR)")
    con.executemany("INSERT INTO holder VALUES (?)", [(cast(r[0]),) for r in rows])
    return {
        r[0] for r in con.execute("SELECT id FROM bank INTERSECT SELECT id FROM holder").fetchall()
    }


def test_alignment_equals_the_plaintext_intersection(world, key):
    fed, bank, grid, tax, _ = world
    client = fed.client(key)
    grid_side = client.align("grid", "power", "uscc", bank)
    tax_side = client.align("tax", "taxes", "code", bank)
    assert set(grid_side.common) == _plaintext(bank, grid)
    assert set(tax_side.common) == _plaintext(bank, tax)
    assert list(grid_side.common) == [b for b in bank if b in set(grid_side.common)]  # bank order
    assert grid_side.requested == len(bank) and grid_side.holder_size == len(grid)
    assert tax_side.holder_size == len(tax)


def test_alignment_refuses_a_measure_column(world, key):
    fed, *_ = world
    with pytest.raises(RemoteError, match="may not be used as an entity key"):
        fed.client(key).align("grid", "power", "kwh", ["1.5"])


def test_alignment_names_an_unknown_holder(world, key):
    fed, bank, *_ = world
    with pytest.raises(RemoteError, match="no configured holder is named 'bank-z'"):
        fed.client(key).align("bank-z", "power", "uscc", bank)


def test_psi_command_prints_sizes_and_writes_the_common_ids(world, tmp_path):
    fed, bank, grid, tax, bank_file = world
    out = tmp_path / "common.txt"
    done = unseen(
        "psi", "--coordinator", fed.address, "--ids", bank_file,
        "--with", "grid=power.uscc", "--with", "tax=taxes.code", "--out", out, "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    both = _plaintext(bank, grid) & _plaintext(bank, tax)
    assert printed["meta"]["common"] == len(both)
    assert [r[4] for r in printed["rows"]] == [
        len(_plaintext(bank, grid)),
        len(_plaintext(bank, tax)),
    ]
    assert out.read_text().split() == [b for b in bank if b in both]


def test_governed_alignment_needs_a_voucher_and_is_ledgered(tmp_path, key):
    world = build_world(tmp_path)
    fed = start_in_process(world)
    try:
        ids = [*ACCOUNTS[5:], "acct-999"]
        before = len(entries(world.ledgers["grid"]))
        with pytest.raises(RemoteError) as refused:
            fed.client(key).align("grid", "power", "account", ids)
        assert refused.value.code == "PERMISSION_DENIED"
        voucher = world.voucher("grid", key.key_id, {"power": {"account": ["entity"]}})
        aligned = fed.client(key, [voucher]).align("grid", "power", "account", ids)
        assert list(aligned.common) == ACCOUNTS[5:10]  # the grid serves the first ten accounts
        assert len(aligned.receipts) == 1
        logged = entries(world.ledgers["grid"])[before:]
        assert [(e.kind, e.outcome) for e in logged] == [
            ("align", "refused"),
            ("align", "answered"),
        ]
        wide = world.voucher("grid", key.key_id, {"power": {"kwh": ["entity"]}})
        with pytest.raises(RemoteError, match="may not be used as an entity key"):
            fed.client(key, [wide]).align("grid", "power", "kwh", ["1.5"])
        text = world.ledgers["grid"].read_bytes()
        assert b"acct-005" not in text  # counts and digests, never an id
    finally:
        fed.close()
