"""The federation is what the operator configured: never a partial total unasked.

Real holders and a real coordinator on loopback, real TenSEAL, and every
encrypted answer compared with DuckDB over the same shards. A configured
holder that may host the table and cannot be reached — down when the
coordinator starts, overloaded when catalogs are fetched — fails the query
with UNAVAILABLE naming it; a holder restarted with a different catalog is
seen at once, cached catalogs notwithstanding. (A holder overloaded on
purpose is tests/attacks/test_overloading_a_holder_to_drop_it_from_totals.py.) Only the analyst's
``allow_partial`` gives an answer without a holder, labelled as partial.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import duckdb
import pytest

from tests.conftest import unseen
from tests.running import Running
from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]
SQL = "SELECT g, COUNT(*), SUM(v) FROM t GROUP BY g ORDER BY g"


def _rows(offset: int) -> list[tuple[str, int]]:
    return [("a", offset + i) for i in range(12)] + [("b", offset * 2 + i) for i in range(9)]


def _plaintext(*paths: object) -> list[list[object]]:
    files = ", ".join(f"'{p}'" for p in paths)
    sql = SQL.replace("FROM t", f"FROM read_parquet([{files}])")
    return [list(r) for r in duckdb.sql(sql).fetchall()]


@pytest.fixture
def running() -> Iterator[Running]:
    started = Running()
    yield started
    started.close()


@pytest.fixture
def shards(tmp_path):
    return [write_shard(tmp_path / f"h{i}.parquet", SCHEMA, _rows(100 * i)) for i in range(3)]


def test_a_holder_down_when_the_coordinator_starts_fails_the_query_by_name(running, shards, key):
    up = [running.holder(f"h{i}", {"t": shards[i]}) for i in (0, 1)]
    down = running.holder("h2", {"t": shards[2]})
    running.servers[-1].stop(grace=None).wait()  # configured, but down from the start
    address = running.coordinator([*up, down])
    with Client(address, key=key, timeout=20) as client:
        with pytest.raises(RemoteError) as info:
            client.query(SQL)
        assert info.value.code == "UNAVAILABLE"
        assert down in info.value.reason
    # The same federation, asked for a partial answer, says what it left out.
    with Client(address, key=key, timeout=20, allow_partial=True) as client:
        result = client.query(SQL)
    assert result.rows == _plaintext(shards[0], shards[1])
    assert result.meta["partial"] is True and result.meta["missing_holders"] == [down]
    assert sorted(result.meta["holders"]) == ["h0", "h1"]
    assert "PARTIAL" in result.format("table") and down in result.format("table")


def test_the_cli_gives_a_partial_answer_only_with_allow_partial(running, shards, tmp_path):
    up = running.holder("h0", {"t": shards[0]})
    down = running.holder("h1", {"t": shards[1]})
    running.servers[-1].stop(grace=None).wait()
    # A holder of another table: it masks h0's answer when h1 is left out.
    helper = running.holder("h2", {"u": shards[2]})
    address = running.coordinator([up, down, helper])
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    refused = unseen("query", "--coordinator", address, "--format", "json", SQL, env=env)
    assert refused.returncode == 3 and refused.stdout == ""  # EXIT_UNAVAILABLE
    assert down in refused.stderr and "Traceback" not in refused.stderr
    done = unseen(
        "query", "--coordinator", address, "--format", "json", "--allow-partial", SQL, env=env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["rows"] == _plaintext(shards[0])
    assert out["meta"]["partial"] is True and out["meta"]["missing_holders"] == [down]


def test_a_complete_answer_says_it_is_not_partial(running, shards, key):
    address = running.coordinator([running.holder(f"h{i}", {"t": shards[i]}) for i in (0, 1)])
    with Client(address, key=key, timeout=20, allow_partial=True) as client:
        result = client.query(SQL)
    assert result.rows == _plaintext(shards[0], shards[1])
    assert result.meta["partial"] is False and "missing_holders" not in result.meta
    assert "PARTIAL" not in result.format("table")


def test_a_holder_restarted_with_a_different_catalog_is_seen_at_once(running, shards, key):
    other = shards[2].with_name("u.parquet")
    other.write_bytes(shards[2].read_bytes())
    first = running.holder("h0", {"t": shards[0]})
    second = running.holder("h1", {"u": other})
    address = running.coordinator([first, second], ttl=3600.0)  # a long-lived catalog cache
    with Client(address, key=key, timeout=20) as client:
        assert client.query(SQL).rows == _plaintext(shards[0])
        # h1 restarts on the same address, now hosting t as well.
        running.servers[1].stop(grace=None).wait()
        running.holder("h1", {"t": shards[1], "u": other}, listen=second)
        assert client.query(SQL).rows == _plaintext(shards[0], shards[1])


def test_a_coordinator_names_an_unreachable_holder_in_its_log_at_start_up(running, shards):
    import socket
    import subprocess
    import sys

    down = running.holder("h0", {"t": shards[0]})
    running.servers[-1].stop(grace=None).wait()
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{probe.getsockname()[1]}"
    command = ["coordinator", "serve", "--listen", listen, "--holder", down]
    process = subprocess.Popen(
        [sys.executable, "-m", "unseen", "--log-level", "INFO", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)  # a missing line fails, never hangs
    watchdog.start()
    try:
        seen = []
        assert process.stderr is not None
        for line in process.stderr:  # ends when the process is killed below, at the latest
            seen.append(line)
            if "catalog" in line and down in line:
                break
        assert any("did not answer its catalog request" in s and down in s for s in seen), seen
    finally:
        watchdog.cancel()
        process.kill()
        process.wait(timeout=30)
