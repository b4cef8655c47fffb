"""Attacker: the analyst (a bank), calling Align through the coordinator.

It sends a PSI request over a *measure* column of a quick-start holder (every
quick-start column may be an entity key), with guessed values such as
``52340.5``; the intersection would tell it which exact amounts the holder
has — a membership oracle on data. It must learn nothing: alignment runs
only over identifier columns (text or integer), and the request is refused.
"""

from __future__ import annotations

import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.errors import RemoteError


def test_analyst_cannot_align_on_a_measure_column(tmp_path, key):
    rows = [(f"id-{i}", 1000.0 + i) for i in range(20)]
    fed = start_federation(
        {
            "grid": {
                "power": write_shard(
                    tmp_path / "p.csv", [("uscc", "VARCHAR"), ("kwh", "DOUBLE")], rows
                )
            }
        }
    )
    try:
        client = fed.client(key)
        guesses = ["1003.0", "1007.0", "5.0"]
        with pytest.raises(RemoteError) as refused:
            found = client.align("grid", "power", "kwh", guesses)
            pytest.fail(f"the analyst learned which amounts are held: {found.common}")
        assert refused.value.code == "INVALID_ARGUMENT"
        assert "not an identifier" in str(refused.value)
        assert "1003" not in str(refused.value)
    finally:
        fed.close()
