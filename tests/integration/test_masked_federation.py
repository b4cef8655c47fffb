"""A governed federation's participant policy, configured per node: ``[node] min_holders``."""

from __future__ import annotations

import pytest

from tests.governance_fixtures import build_world, start_in_process
from unseen.engine.errors import RemoteError

SQL_TOTAL = "SELECT COUNT(*), SUM(amount) FROM loans"


def test_a_node_that_requires_three_holders_refuses_two(tmp_path, key):
    world = build_world(tmp_path / "world")
    config = world.configs["bank-a"]
    config.write_text(config.read_text().replace("[node]\n", "[node]\nmin_holders = 3\n", 1))
    fed = start_in_process(world)
    try:
        assert fed.holders["bank-a"].min_holders == 3
        vouchers = [world.voucher(h, key.key_id) for h in ("bank-a", "bank-b")]
        # loans is hosted by the two banks: two participants, fewer than bank-a requires.
        with pytest.raises(RemoteError) as info:
            fed.client(key, vouchers).query(SQL_TOTAL)
        assert info.value.code == "PERMISSION_DENIED"
        assert "at least 3" in info.value.reason
    finally:
        fed.close()
