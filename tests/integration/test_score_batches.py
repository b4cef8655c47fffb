"""Scores of more entities than one request may carry go in batches, joined in order.

Nodes take at most ``unseen.engine.transport.serde.MAX_ENTITIES`` (a million) entities per request;
the client
splits a larger list into requests of that size. Here the client's batch size is lowered to
500 so that 1 203 entities make three real requests over a real five-holder federation, and
the joined scores are compared with the same model computed in plaintext (DuckDB + numpy).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.integration.test_scoring import MODEL, scoring_world
from unseen.engine.query.model import parse_model
from unseen.engine.transport import serde
from unseen.oracle.plaintext import plaintext_scores

__all__ = ["scoring_world"]  # the module-scoped federation fixture, shared by import


def test_more_entities_than_one_request_carries_are_scored_in_batches(
    scoring_world, key, monkeypatch: pytest.MonkeyPatch
):
    fed, reference, ids = scoring_world
    monkeypatch.setattr(serde, "MAX_ENTITIES", 500)
    entities = [*random.Random(7).sample(ids, 1200), "unknown-entity", ids[0], ids[0]]
    result = fed.client(key).score(parse_model(MODEL), entities)
    assert result.meta["batches"] == 3
    assert result.meta["entities"] == len(entities)
    assert [r[0] for r in result.rows] == entities  # input order across batches
    ours = np.array([r[1] for r in result.rows])
    expected = plaintext_scores(reference, parse_model(MODEL), entities)
    assert np.max(np.abs(ours - expected)) < 1e-6
