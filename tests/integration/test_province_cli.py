"""The province from the command line: ``unseen coordinator serve --as-holder`` and
``unseen demo --province``, each node its own process.

Two cities of two quick-start holders each: one city names itself with
``--as-holder``, the other with ``as_holder`` in a coordinator config file; the
provincial coordinator takes both as holders. ``unseen query`` against the
province is compared with DuckDB over the pooled rows. The full 21-city demo
runs once (in one process, as the command does; about 20-30 s here).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unseen
from unseen.federation import LocalFederation
from unseen.province import write_province

_READY = re.compile(r"listening on (\S+:\d+)")


def _spawn_province(cities: list[str], log: Path) -> tuple[subprocess.Popen[str], str]:
    args = [sys.executable, "-m", "unseen", "coordinator", "serve", "--listen", "127.0.0.1:0"]
    for address in cities:
        args += ["--holder", address]
    with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        match = _READY.search(line)
        if match:
            return process, match.group(1)
    raise AssertionError(f"the province did not start: {log.read_text()[-500:]}")


def test_cities_started_from_the_cli_answer_a_provincial_query(tmp_path, key):
    data = write_province(tmp_path / "data", cities=2, holders=lambda i: 2)
    (south,) = [c for i, c in enumerate(data.cities) if i == 1]
    config = tmp_path / "south.toml"
    config.write_text(f'[coordinator]\nas_holder = "{south}"\n')
    federations = []
    for i, (city, leaves) in enumerate(data.cities.items()):
        extra = ["--as-holder", city] if i == 0 else ["--config", str(config)]
        fed = LocalFederation(
            {h: {"power": data.shards[h]} for h in leaves}, tmp_path / city, coordinator_args=extra
        )
        fed.start()
        federations.append(fed)
    province, address = _spawn_province([f.address for f in federations], tmp_path / "p.log")
    try:
        key.save(tmp_path / "key")
        sql = "SELECT city, COUNT(*) AS n, SUM(kwh) AS kwh FROM power GROUP BY city ORDER BY city"
        done = unseen(
            "query", "--coordinator", address, "--key", tmp_path / "key", "--format", "json", sql
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        truth = data.con.execute(sql).fetchall()
        assert answer["rows"] == [list(r) for r in truth]
        assert set(answer["meta"]["holders"]) == set(data.shards)
    finally:
        province.terminate()
        province.wait(10)
        assert province.stdout is not None
        province.stdout.close()
        for fed in federations:
            fed.stop()


def test_a_ledger_needs_a_city_name(tmp_path):
    done = unseen(
        "coordinator",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--holder",
        "127.0.0.1:1",
        "--ledger",
        tmp_path / "l.sqlite",
        "--signing-key",
        tmp_path / "k",
    )
    assert done.returncode == 2
    assert "--as-holder" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_21_city_province_demo_verifies_every_answer():
    done = unseen("demo", "--province", timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "21 city coordinators over 52 holders" in done.stdout
    assert re.search(r"4/4 answers agree with DuckDB", done.stdout)
    assert "MISMATCH" not in done.stdout


@pytest.mark.parametrize("cities", ["0", "22"])
def test_the_province_demo_refuses_a_city_count_outside_the_province(cities):
    done = unseen("demo", "--province", "--cities", cities)
    assert done.returncode == 2
    assert "--cities" in done.stderr
