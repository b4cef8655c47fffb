"""``unseen query --explain``: the plan each holder would compute, and no data touched.

The CLI runs as a separate process against an in-process federation whose
table sources count their queries; explaining must run none, while the same
query without ``--explain`` runs one per holder.
"""

from __future__ import annotations

import json
import os
from unittest import mock

import pytest

from tests.conftest import start_federation, unseen
from tests.shards import write_shards
from tests.tpch import LINEITEM, Q1, lineitem_rows
from unseen.engine.data.source import FileSource


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("explain")
    holders, _ = write_shards(
        LINEITEM,
        {
            f"h{i}": (root / f"l{i}.parquet", lineitem_rows(60, seed=i, first_order=1 + 60 * i))
            for i in range(3)
        },
        table="lineitem",
    )
    fed = start_federation(holders, k=5)
    yield fed
    fed.close()


def _run(fed, tmp_path, *args):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    calls = []
    original = FileSource.run

    def counting(self, sql, params=()):
        calls.append(sql)
        return original(self, sql, params)

    with mock.patch.object(FileSource, "run", counting):
        done = unseen("query", "--coordinator", fed.address, *args, env=env)
    return done, calls


def test_explain_prints_the_plan_and_touches_no_data(federation, tmp_path):
    sql = (
        "SELECT l_returnflag, EXTRACT(year FROM l_shipdate) AS y, "
        "SUM(l_extendedprice * (1 - l_discount)) AS revenue, "
        "COUNT(*) FILTER (WHERE l_quantity > 30) AS big FROM lineitem "
        "WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY GROUP BY 1, 2"
    )
    done, calls = _run(federation, tmp_path, "--explain", "--format", "json", sql)
    assert done.returncode == 0, done.stderr
    assert calls == []  # no holder ran any SQL on its data
    out = json.loads(done.stdout)
    plan = out["meta"]["plan"]
    assert out["meta"]["ran"] is False
    assert plan["table"] == "lineitem" and len(plan["holders"]) == 3
    assert plan["filter"] == "(l_shipdate <= DATE '1998-09-02')"
    assert [g["origin"] for g in plan["groups"]] == [
        "published domain",
        "derived from the column's published date range",
    ]
    assert plan["measures"][0]["encoding"] == "decimal" and plan["measures"][0]["scale"] == 4
    assert plan["columns"]["l_quantity"] == ["filter"]
    assert plan["columns"]["l_returnflag"] == ["group"]
    assert plan["rules"]["k"] == 5


def test_explain_table_format_names_rules_and_the_real_query_runs(federation, tmp_path):
    done, calls = _run(federation, tmp_path, "--explain", Q1)
    assert done.returncode == 0, done.stderr
    assert calls == []
    for text in ("k = 5", "dominance", "sum_charge = SUM(measure", "exact decimals, scale 6"):
        assert text in done.stdout
    done, calls = _run(federation, tmp_path, Q1)
    assert done.returncode == 0, done.stderr
    assert len(calls) == 3  # one local aggregate per holder


def test_explain_of_a_refused_query_says_why_and_what_instead(federation, tmp_path):
    done, _ = _run(federation, tmp_path, "--explain", "SELECT MEDIAN(l_quantity) FROM lineitem")
    assert done.returncode != 0
    assert "MEDIAN is not supported at line 1, column 8" in done.stderr
    assert "instead" in done.stderr and "Traceback" not in done.stderr
