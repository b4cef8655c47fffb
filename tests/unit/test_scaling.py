"""Feature scaling from policy or whole tables, and which quick-start columns key entities."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tests.shards import write_shard
from unseen.engine.data.scaling import LOG1P_EXPONENT, FeatureScaling
from unseen.engine.data.scoring import feature_blocks
from unseen.engine.data.source import open_source
from unseen.engine.governance.identifiers import is_identifier
from unseen.engine.governance.policy import quickstart_table
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.model import FeatureSpec

SCHEMA = [("account", "VARCHAR"), ("city", "VARCHAR"), ("amount", "DOUBLE")]
# acct-1 has +1000 and -999: its sum is 1, yet a filter keeping only +1000 gives 1000.
ROWS = [("acct-1", "A", 1000.0), ("acct-1", "B", -999.0), ("acct-2", "A", 3.0)]


def _world(tmp_path):
    source = open_source("t", write_shard(tmp_path / "t.csv", SCHEMA, ROWS))
    return {"t": source}, {"t": quickstart_table(source)}


def test_bounds_cover_any_filtered_value_and_ignore_the_request(tmp_path):
    sources, tables = _world(tmp_path)
    features = [
        FeatureSpec("t", "amount", "account", "sum"),
        FeatureSpec("t", "amount", "account", ""),
        FeatureSpec("t", "amount", "account", "count"),
        FeatureSpec("t", "amount", "account", "avg", transform="log1p"),
        FeatureSpec("t", "amount", "account", "", default=1e6),
    ]
    exponents = FeatureScaling().exponents(features, sources, tables)
    # sum of |x| per key: 1999 <= 2^11, though the plain sum of acct-1 is 1.
    assert exponents == [11, 10, 1, LOG1P_EXPONENT, math.ceil(math.log2(1e6))]


def test_identifiers_are_thin_keys_not_dimensions(tmp_path):
    rows = [(f"acct-{i}", "ABC"[i % 3], float(i)) for i in range(300)]
    source = open_source("p", write_shard(tmp_path / "p.csv", SCHEMA, rows))
    schema = dict(source.schema())
    assert is_identifier(source, "account", schema["account"], 100)
    assert not is_identifier(source, "city", schema["city"], 100)
    assert not is_identifier(source, "amount", schema["amount"], 100)  # floats never key
    uses = {c.name: c.uses for c in quickstart_table(source).columns}
    assert "entity" in uses["account"] and "entity" not in uses["city"]


def _declared(table: TableInfo, value: float | None, total: float | None) -> TableInfo:
    columns = tuple(
        dataclasses.replace(c, score_bound=value, score_sum_bound=total)
        if c.name == "amount"
        else c
        for c in table.columns
    )
    return dataclasses.replace(table, columns=columns, _index={})


def test_declared_bounds_replace_the_data_and_clip_it(tmp_path):
    sources, tables = _world(tmp_path)
    tables = {"t": _declared(tables["t"], 100.0, 5000.0)}
    features = [
        FeatureSpec("t", "amount", "account", "sum"),
        FeatureSpec("t", "amount", "account", "max"),
        FeatureSpec("t", "amount", "account", "count"),
    ]
    # 100 and 5000 from the policy (the data's 1000 and 1999 are never read); count
    # has no declared bound and falls back to the whole table.
    assert FeatureScaling().exponents(features, sources, tables) == [13, 7, 1]
    (block,) = feature_blocks(features, sources, tables, ["acct-1", "acct-2"], 4)
    # acct-1's max of 1000 is clipped to the declared 100; its sum of 1 and acct-2's
    # values are inside their bounds and pass unchanged.
    assert np.array_equal(block, [[1.0, 100.0, 2.0], [3.0, 3.0, 1.0]])


def test_without_a_declared_bound_values_pass_unclipped(tmp_path):
    sources, tables = _world(tmp_path)
    tables = {"t": _declared(tables["t"], None, 5000.0)}
    features = [FeatureSpec("t", "amount", "account", "max")]
    assert FeatureScaling().exponents(features, sources, tables) == [10]
    (block,) = feature_blocks(features, sources, tables, ["acct-1"], 4)
    assert block.tolist() == [[1000.0]]
