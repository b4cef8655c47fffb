"""Attacker: the analyst (a bank), calling Align through the coordinator.

It sends a PSI request over a *measure* column of a holder, with guessed
values such as ``52340.5``; the intersection would tell it which exact
amounts the holder has — a membership oracle on data. It must learn nothing:
quick-start grants the entity use only to identifier-like columns (since
issue 11), and even a column an operator granted it is aligned on only if it
is an identifier (text or integer); the request is refused either way.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.errors import RemoteError


def _start(tmp_path):
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
    return fed


def _refused(fed, key) -> str:
    guesses = ["1003.0", "1007.0", "5.0"]
    with pytest.raises(RemoteError) as refused:
        found = fed.client(key).align("grid", "power", "kwh", guesses)
        pytest.fail(f"the analyst learned which amounts are held: {found.common}")
    assert refused.value.code == "INVALID_ARGUMENT"
    assert "1003" not in str(refused.value)
    return str(refused.value)


def test_analyst_cannot_align_on_a_quick_start_measure_column(tmp_path, key):
    fed = _start(tmp_path)
    try:
        assert "may not be used as an entity key" in _refused(fed, key)
    finally:
        fed.close()


def test_analyst_cannot_align_on_a_measure_column_granted_the_entity_use(tmp_path, key):
    fed = _start(tmp_path)
    try:
        # The operator grants kwh the entity use (as a config's uses list could).
        node = fed.holders["grid"]
        table = node.tables["power"]
        columns = tuple(replace(c, uses=c.uses | {"entity"}) for c in table.columns)
        node.tables["power"] = replace(table, columns=columns, _index={})
        assert node.tables["power"].column("kwh").allows("entity")
        assert "not an identifier" in _refused(fed, key)
    finally:
        fed.close()
