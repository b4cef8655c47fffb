"""Attacker: any client of a quick-start federation whose holders encrypt in worker
processes (``--workers``), or any analyst of a governed one.

It registers one fresh analyst key after another and asks one aggregate under each.
A holder spools every key's BFV public context (about 134 KB) to a file its workers
load; were those files kept for the node's lifetime, a client could fill the holder's
disk at 134 KB per query. It must gain nothing: the spool keeps a bounded number of key
files (least recently used out), and each answer still equals DuckDB's.
"""

from __future__ import annotations

from tests.shards import write_shards
from unseen.engine.crypto.keys import AnalystKey

SCHEMA = [("city", "VARCHAR"), ("amount", "BIGINT")]
SQL = "SELECT city, COUNT(*), SUM(amount) FROM t GROUP BY city ORDER BY city"


def test_the_key_spool_stays_bounded(tmp_path, federation_factory, key):
    rows = [(c, 10 * i + j) for i, c in enumerate(["north", "south"]) for j in range(12)]
    holders, reference = write_shards(SCHEMA, {"w": (tmp_path / "t.parquet", rows)}, table="t")
    holders["x"] = {"other": holders["w"]["t"]}  # a second holder masks w's answer
    fed = federation_factory(holders, workers=1)
    pool = fed.holders["w"].pool
    pool.max_key_files = 2
    expected = [list(r) for r in reference.con.sql(SQL).fetchall()]
    for analyst in [key, *(AnalystKey.generate() for _ in range(3))]:
        assert fed.client(analyst).query(SQL).rows == expected
        assert len(list(pool._spool.glob("*.bfv"))) <= 2
    assert not list(pool._spool.glob("*.tmp"))
    # An evicted key is spooled again when its analyst returns.
    assert fed.client(key).query(SQL).rows == expected
