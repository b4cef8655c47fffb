"""unseen.engine.client against a fake coordinator peer: what it accepts as an answer."""

from __future__ import annotations

import pytest

from tests.unit.test_peers import _plan
from unseen.engine.client import Client
from unseen.engine.errors import RemoteError
from unseen.engine.transport.peers import AggregateAnswer


def _answering(monkeypatch, client: Client, missing: tuple[str, ...]) -> list[dict]:
    calls: list[dict] = []

    def aggregate(key_id, plan, vouchers=(), **kwargs):
        calls.append(kwargs)
        return AggregateAnswer([b"c"], (), ("h0",), (), missing)

    monkeypatch.setattr(client, "_registered", True)
    monkeypatch.setattr(client._peer, "aggregate", aggregate)
    return calls


def test_a_partial_answer_the_analyst_did_not_ask_for_is_refused(monkeypatch, key):
    # A coordinator (buggy or curious) must not slip a smaller total past the analyst.
    with Client("127.0.0.1:1", key=key) as client:
        calls = _answering(monkeypatch, client, ("h1",))
        with pytest.raises(RemoteError, match="left holders out unasked"):
            client.aggregate(_plan())
    assert calls == [{"allow_partial": False}]


def test_a_partial_answer_asked_for_is_kept_with_its_missing_holders(monkeypatch, key):
    with Client("127.0.0.1:1", key=key, allow_partial=True) as client:
        calls = _answering(monkeypatch, client, ("h1",))
        reply = client.aggregate(_plan())
    assert reply.missing == ("h1",) and calls == [{"allow_partial": True}]


def test_a_repeated_query_is_compiled_once_per_catalog(monkeypatch, key):
    # The analyst remembers compiled queries (issue 9, performance), but only
    # against the catalog object they were compiled with: a fetched catalog
    # compiles again (it may have changed a group domain or a policy).
    from unseen.engine import client as client_module
    from unseen.engine.query.catalog import Catalog

    compiled: list[str] = []
    monkeypatch.setattr(
        client_module, "compile_sql", lambda sql, catalog, codec: compiled.append(sql) or sql
    )
    catalogs = [Catalog("one", ()), Catalog("two", ())]
    with Client("127.0.0.1:1", key=key) as client:
        monkeypatch.setattr(client._peer, "catalog", lambda: catalogs[0])
        assert client._compile_fresh("SELECT 1")[1] == "SELECT 1"
        client._compile_fresh("SELECT 1")
        client._compile_fresh("SELECT 2")
        assert compiled == ["SELECT 1", "SELECT 2"]
        client.catalog_ttl = 0.0  # the next query fetches a new catalog
        monkeypatch.setattr(client._peer, "catalog", lambda: catalogs[1])
        assert client._compile_fresh("SELECT 1")[0] is catalogs[1]
        assert compiled == ["SELECT 1", "SELECT 2", "SELECT 1"]
