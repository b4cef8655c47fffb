"""Attack: overload one holder so that the coordinator silently leaves it out of totals.

Attacker: an outsider (any caller that can reach a holder's port, or a
malicious analyst). It sends never-ending RegisterKey streams that fill the
holder's call slots at the moment the coordinator fetches catalogs, so the
holder sheds the coordinator's GetCatalog with RESOURCE_EXHAUSTED.

What it must achieve: nothing. Before this was fixed, the coordinator treated
the shedding holder as hosting no table and answered every query from the
others: an honest analyst received a total without that holder's rows
(200 where 300 was true), exit code 0, unlabelled — a falsified statistic
without touching any data. Now the query fails with UNAVAILABLE naming the
holder, and once the holder is free again the answer equals DuckDB's over
every shard.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import duckdb
import grpc
import pytest

from tests.running import Running
from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.v1 import holder_pb2_grpc

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]
SQL = "SELECT g, COUNT(*), SUM(v) FROM t GROUP BY g ORDER BY g"


@pytest.fixture
def running() -> Iterator[Running]:
    started = Running()
    yield started
    started.close()


def test_a_shedding_holder_fails_the_query_instead_of_vanishing_from_it(running, tmp_path, key):
    rows = [
        [("a", 10 * h + i) for i in range(7)] + [("b", h + i) for i in range(6)] for h in (1, 2)
    ]
    shards = [write_shard(tmp_path / f"h{h}.parquet", SCHEMA, rows[h]) for h in (0, 1)]
    honest = running.holder("h0", {"t": shards[0]})
    victim = running.holder("h1", {"t": shards[1]}, max_concurrent=1)
    address = running.coordinator([honest, victim])

    # The attacker holds the victim's only call slot with a key upload that never ends.
    release = threading.Event()

    def never_ending_upload() -> Iterator:
        yield from serde.key_chunks(b"x")
        release.wait(60)

    channel = create_channel(victim)
    attack = holder_pb2_grpc.HolderStub(channel).RegisterKey.future(
        never_ending_upload(), timeout=60
    )
    try:
        with Client(address, key=key, timeout=20) as client:
            with pytest.raises(RemoteError) as info:
                client.query(SQL)
            assert info.value.code == "UNAVAILABLE"
            assert victim in info.value.reason and "overloaded" in info.value.reason
            release.set()
            with pytest.raises(grpc.RpcError):
                attack.result(timeout=30)  # the bogus key is refused once the stream ends
            files = ", ".join(f"'{p}'" for p in shards)
            truth = duckdb.sql(SQL.replace("FROM t", f"FROM read_parquet([{files}])")).fetchall()
            assert client.query(SQL).rows == [list(r) for r in truth]
    finally:
        release.set()
        channel.close()
