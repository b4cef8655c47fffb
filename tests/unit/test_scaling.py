"""Feature scaling from whole tables, and which quick-start columns key entities."""

from __future__ import annotations

import math

from tests.shards import write_shard
from unseen.engine.data.scaling import LOG1P_EXPONENT, FeatureScaling
from unseen.engine.data.source import open_source
from unseen.engine.governance.identifiers import is_identifier
from unseen.engine.governance.policy import quickstart_table
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
