"""Attacker: the analyst (a bank), calling Align through the coordinator.

It sends a PSI request over a *measure* column of a quick-start holder (every
quick-start column may be an entity key), with guessed values such as
``52340.5``; the intersection would tell it which exact amounts the holder
has — a membership oracle on data. It must learn nothing: alignment runs
only over identifier columns (text or integer), and the request is refused.
"""

from __future__ import annotations

import re

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
        # Refused by the quick-start policy before the alignment's own identifier check:
        # a measure column has no `entity` use (only identifier-like columns do).
        assert refused.value.code in ("INVALID_ARGUMENT", "PERMISSION_DENIED")
        assert re.search(r"not an identifier|may not be used as an entity key", str(refused.value))
        assert "1003" not in str(refused.value)
    finally:
        fed.close()
