"""Attacker: a quick-start analyst. It holds the secret key and encrypts its own
weights, so it chooses their scale. It registers a model whose weights it encrypted
at the context's own scale (2^50) instead of the scale ``ckks.weight_scale`` picks
(about 2^104 at the default key): the weights' fresh noise is then some 2^54 times
a larger share of every product, the error ``E(x)`` of a partial score grows with
it, and no flood that keeps scores within 1e-6 covers it — the holder's features
could be read back from the noise with enough repetitions (the statistical
security of the widest such flood is far below 30 bits). It sends that model and
scores with it, and it also tries a stale N = 8192 key, which has no room to
smudge at any scale.

It must learn nothing: every holder refuses the model before reading a row
(FAILED_PRECONDITION, a reason that names the 30 bits and ``unseen keys new``);
the client refuses the stale key before sending anything. Before issue 11's
default key, holders flooded whatever arrived as widely as the precision allowed
(s of about -13) and answered.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import start_federation
from tests.shards import write_shard
from unseen.engine.crypto import ckks
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import RemoteError, WeakKeyError
from unseen.engine.query.model import parse_model

COUNT = 50
IDS = [f"acct-{i:03d}" for i in range(COUNT)]
INCOME = np.random.default_rng(3).uniform(1e3, 1e5, COUNT).round(2)
MODEL = {
    "entity": "account",
    "features": [{"table": "tax", "column": "income", "weight": 1e-5}],
}


# workers=0: the holder scores in process; workers=1: in a spawned worker, which
# loads the model itself, so the holder must refuse before the model reaches it.
@pytest.fixture(scope="module", params=[0, 1], ids=["inline", "worker"])
def bureau(request, tmp_path_factory):
    path = write_shard(
        tmp_path_factory.mktemp("noisy") / "tax.csv",
        [("account", "VARCHAR"), ("income", "DOUBLE")],
        list(zip(IDS, INCOME.tolist(), strict=True)),
    )
    fed = start_federation({"bureau": {"tax": path}}, workers=request.param)
    yield fed
    fed.close()


def test_weights_below_the_flooding_scale_are_refused_by_the_holder(bureau, key, monkeypatch):
    # The attacker's client encrypts at the context's scale, not at ckks.weight_scale.
    monkeypatch.setattr(ckks, "weight_scale", lambda ctx, features: 2.0**50)
    client = bureau.client(key)
    with pytest.raises(RemoteError) as info:
        client.score(parse_model(MODEL), IDS)
    assert info.value.code == "FAILED_PRECONDITION", str(info.value)
    assert "30 bits" in str(info.value) and "unseen keys new" in str(info.value)
    assert not bureau.holders["bureau"]._models  # nothing kept, nothing scored


def test_a_stale_n8192_key_is_refused_before_anything_is_sent(bureau):
    stale = AnalystKey.generate(ckks.CkksParams(8192, (60, 50, 50, 58), 50))
    client = bureau.client(stale)
    with pytest.raises(WeakKeyError, match="unseen keys new"):
        client.score(parse_model(MODEL), IDS)
    assert not bureau.holders["bureau"]._models


def test_the_honest_client_scores_at_the_flooding_scale(bureau, key):
    result = bureau.client(key).score(parse_model(MODEL), IDS)
    got = np.array([row[1] for row in result.rows])
    assert np.max(np.abs(got - 1e-5 * INCOME)) < 1e-6
    assert len(bureau.holders["bureau"]._models) == 1
