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
