"""A cancelled call scope interrupts the local engines (real DuckDB and SQLite) mid-query."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.shards import write_shard
from unseen.engine.data.source import TableSource, open_source
from unseen.engine.errors import CallCancelled
from unseen.engine.transport.cancellation import CallScope, checkpoint, interruptible, serving

# Queries that run for minutes unless interrupted (a few hundred billion steps).
SLOW = {
    "duckdb": "SELECT SUM(HASH(a.range + b.range)) FROM range(2000000) a, range(200000) b",
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000000) "
        "SELECT SUM(x) FROM c"
    ),
}


@pytest.fixture(params=["parquet", "sqlite"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> TableSource:
    path = write_shard(tmp_path / f"t.{request.param}", [("v", "BIGINT")], [(1,), (2,)])
    return open_source("t", path)


def _cancel_soon(scope: CallScope, started: threading.Event) -> threading.Thread:
    def cancel() -> None:
        started.wait(30)
        time.sleep(0.3)  # into the query, not before it starts (either way it must stop)
        scope.cancel()

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_a_running_query_is_interrupted_when_its_call_ends(source: TableSource):
    scope = CallScope("Aggregate")
    started = threading.Event()
    scope_interrupts = scope.interruptible

    def announce(interrupt):  # the query registers its interrupt just before it runs
        started.set()
        return scope_interrupts(interrupt)

    scope.interruptible = announce  # type: ignore[method-assign]
    thread = _cancel_soon(scope, started)
    with serving(scope), pytest.raises(CallCancelled, match="Aggregate was stopped"):
        source.run(SLOW[source.dialect])
    thread.join()
    # The source still answers the next call.
    assert source.run(f"SELECT COUNT(*) FROM {source.sql_name}") == [(2,)]


def test_a_streamed_query_is_interrupted_too(source: TableSource):
    # Scores read their features through TableSource.stream, with a request relation.
    scope = CallScope("Score")
    started = threading.Event()
    scope_interrupts = scope.interruptible

    def announce(interrupt):
        started.set()
        return scope_interrupts(interrupt)

    scope.interruptible = announce  # type: ignore[method-assign]
    thread = _cancel_soon(scope, started)
    with serving(scope), pytest.raises(CallCancelled):
        stream = source.stream(SLOW[source.dialect], {}, {"k": np.array([1, 2])})
        try:
            while stream.fetch(1024):
                pass
        finally:
            stream.close()
    thread.join()


def test_work_in_a_cancelled_call_does_not_start(source: TableSource):
    scope = CallScope("Score")
    scope.cancel()
    with serving(scope):
        with pytest.raises(CallCancelled):
            checkpoint()
        with pytest.raises(CallCancelled):
            source.run("SELECT 1")


def test_outside_a_served_call_nothing_is_interrupted(source: TableSource):
    calls = []
    with interruptible(lambda: calls.append("interrupted")):
        checkpoint()
    assert calls == []
    assert source.run("SELECT 41 + 1") == [(42,)]


def test_an_engine_error_in_a_live_call_stays_an_engine_error():
    scope = CallScope("Aggregate")
    with serving(scope), pytest.raises(ValueError), interruptible(lambda: None):
        raise ValueError("not a cancellation")
