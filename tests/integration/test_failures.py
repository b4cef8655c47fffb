"""A failing holder fails the query, by name, never with a partial sum."""

from __future__ import annotations

import os
import signal
import threading
import time

import duckdb
import pytest

from tests.governance_fixtures import node
from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError
from unseen.engine.query.model import Model, parse_model
from unseen.federation import LocalFederation

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]


@pytest.fixture
def three(tmp_path, federation_factory):
    rows = [("a", 1)] * 10 + [("b", 2)] * 10
    holders = {
        f"h{i}": {"t": write_shard(tmp_path / f"h{i}.parquet", SCHEMA, rows)} for i in range(3)
    }
    return federation_factory(holders)


def test_a_down_holder_is_named_and_no_partial_answer_is_given(three, key):
    client = three.client(key, timeout=20)
    assert client.query("SELECT SUM(v) FROM t").rows == [[90]]
    three.stop_holder("h1")
    three.coordinator.catalog_ttl = 0  # do not answer from the cached catalogs
    with pytest.raises(RemoteError) as info:
        client.query("SELECT SUM(v) FROM t")
    assert info.value.code == "UNAVAILABLE"
    assert "holder h1" in info.value.reason


def test_holder_that_lost_the_key_gets_it_again(three, key):
    client = three.client(key)
    client.register_key()
    for holder in three.holders.values():
        holder.keys = type(holder.keys)()  # as after a holder restart
    assert client.query("SELECT COUNT(*) FROM t").rows == [[60]]


def test_coordinator_that_lost_the_key_asks_the_client_again(three, key):
    client = three.client(key)
    client.register_key()
    three.coordinator.keys = type(three.coordinator.keys)()
    assert client.query("SELECT COUNT(*), SUM(v) FROM t").rows == [[60, 90]]


# -- separate processes: stopped, killed and draining holders --------------------------


@pytest.fixture(scope="module")
def process_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("procs")
    rows = [("a", i) for i in range(30)] + [("b", i) for i in range(30)]
    power = root / "p.parquet"
    # 200k entities, written by DuckDB itself (row-by-row inserts would take a minute).
    duckdb.sql(
        "SELECT 'e' || i::VARCHAR AS id, (i % 1000)::BIGINT AS v FROM range(200000) t(i)"
    ).write_parquet(str(power))
    return {
        "bank-0": {"t": write_shard(root / "b0.parquet", SCHEMA, rows)},
        "bank-1": {"t": write_shard(root / "b1.parquet", SCHEMA, rows)},
        "grid": {"power": power},
    }


@pytest.fixture
def processes(process_data, tmp_path):
    """Two banks hosting `t` and a grid hosting `power`, each its own process."""
    with LocalFederation(process_data, tmp_path / "logs") as fed:
        yield fed


def _power_model(weight: float) -> Model:
    """A one-feature model over the grid's 200k entities."""
    return parse_model(
        {"entity": "id", "features": [{"table": "power", "column": "v", "weight": weight}]}
    )


def test_a_stopped_holder_is_named_within_the_deadline(processes, key):
    fed = processes
    with Client(fed.address, key=key, timeout=6) as client:
        assert client.query("SELECT SUM(v) FROM t").rows == [[2 * sum(range(30)) * 2]]
        bank = node(fed, "bank-1").process
        os.kill(bank.pid, signal.SIGSTOP)  # alive but silent: a hung holder
        try:
            started = time.monotonic()
            with pytest.raises(RemoteError) as info:
                client.query("SELECT SUM(v) FROM t")
            elapsed = time.monotonic() - started
            assert info.value.code == "DEADLINE_EXCEEDED"
            assert "bank-1" in info.value.reason
            assert elapsed < 6.5
            # The coordinator and the other holders keep serving other tables.
            assert client.query("SELECT COUNT(*) FROM power").rows == [[200_000]]
        finally:
            os.kill(bank.pid, signal.SIGCONT)
        assert client.query("SELECT COUNT(*) FROM t").rows == [[120]]


def test_a_holder_killed_mid_query_fails_the_query_by_name(processes, key):
    fed = processes
    grid = node(fed, "grid").process
    model = _power_model(0.5)
    with Client(fed.address, key=key, timeout=60) as client:
        client.register_model(model, [f"e{i}" for i in range(10)])
        errors: list[BaseException] = []

        def score() -> None:
            try:
                client.score(model, [f"e{i}" for i in range(200_000)] * 3)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=score)
        worker.start()
        time.sleep(0.8)
        os.kill(grid.pid, signal.SIGKILL)
        worker.join(30)
        assert not worker.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], RemoteError)
        assert "grid" in errors[0].reason
        assert errors[0].code in ("UNAVAILABLE", "CANCELLED", "INTERNAL", "UNKNOWN")
        # Tables at the other holders still answer.
        assert client.query("SELECT COUNT(*) FROM t").rows == [[120]]


def test_sigterm_drains_in_flight_work_and_refuses_new_calls(processes, key):
    fed = processes
    grid = node(fed, "grid").process
    model = _power_model(1.0)
    entities = [f"e{i}" for i in range(200_000)]
    with Client(fed.address, key=key, timeout=60) as client:
        client.register_model(model, entities[:10])
        results: list[object] = []
        worker = threading.Thread(target=lambda: results.append(client.score(model, entities)))
        worker.start()
        time.sleep(0.5)
        grid.send_signal(signal.SIGTERM)  # graceful: finish what is running
        worker.join(60)
        assert results, "the in-flight score was cut off"
        rows = results[0].rows  # type: ignore[attr-defined]
        assert [r[1] for r in rows[:3]] == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
        assert grid.wait(15) == 0  # exits cleanly once drained
        with pytest.raises(RemoteError) as info:
            client.query("SELECT SUM(v) FROM power")
        assert info.value.code == "UNAVAILABLE" and "grid" in info.value.reason


def _children() -> set[int]:
    """Our direct child processes, zombies included (Linux /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115 - read at once
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == os.getpid():
                found.add(int(entry))
    return found


@pytest.mark.parametrize("failure", ["holder too slow", "coordinator refuses its flags"])
def test_a_failed_start_leaves_no_process_and_no_open_log(tmp_path, failure):
    rows = [("a", 1)] * 10
    holders = {
        f"h{i}": {"t": write_shard(tmp_path / f"h{i}.parquet", SCHEMA, rows)} for i in (0, 1)
    }
    before = _children()
    if failure == "holder too slow":
        fed = LocalFederation(holders, tmp_path / "logs", startup_timeout=0.01)
    else:
        fed = LocalFederation(holders, tmp_path / "logs", coordinator_args=["--no-such-flag"])
    with pytest.raises(Exception, match="start"):
        fed.start()
    assert _children() == before  # every child killed and reaped
    assert fed.nodes == [] and fed.coordinator is None
    assert fed._logs == []
