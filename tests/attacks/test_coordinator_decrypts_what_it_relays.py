"""Attacker: a curious coordinator colluding with the analyst (quick-start).

The coordinator runs the protocol honestly but hands the analyst every holder
answer it relays; the analyst decrypts them with its secret key. It must learn
nothing but the published result: each single holder's answer reads as random,
and the suppressed group ``Alpha`` (40 + 40 + 3 rows, k = 5) reads exactly zero
in the sum of all answers, whatever the holders' Alpha rows hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.attacks._city import SQL, alpha_truth, decrypt_moments, write_city
from unseen.engine.crypto import bfv
from unseen.engine.errors import UnseenError
from unseen.engine.query.layout import layout_for
from unseen.nodes.servicers import HolderServicer


def _relayed(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bytes]]:
    """Every aggregate ciphertext a holder sends the coordinator, by holder."""
    seen: dict[str, list[bytes]] = {}
    original = HolderServicer.Aggregate

    def spy(self, request, context):  # type: ignore[no-untyped-def]
        for reply in original(self, request, context):
            if reply.WhichOneof("part") == "ciphertext":
                seen.setdefault(self.node.name, []).append(reply.ciphertext.data)
            yield reply

    monkeypatch.setattr(HolderServicer, "Aggregate", spy)
    return seen


def _alpha_slots(key, plan, ciphertexts) -> np.ndarray:  # type: ignore[no-untyped-def]
    layout = layout_for(plan)
    slots = np.concatenate([bfv.decrypt(key.aggregate_secret, c) for c in ciphertexts])
    alpha = plan.groups[0].domain.index("Alpha")
    return slots[alpha * layout.record_width : (alpha + 1) * layout.record_width]


def _sum(key, answers):  # type: ignore[no-untyped-def]
    ctx = key.aggregate_secret
    per_index = zip(*answers, strict=True)
    return [
        bfv.serialize(bfv.add_all([bfv.load_ciphertext(ctx, c, bfv.PARAMS.slots) for c in cs]))
        for cs in per_index
    ]


def test_one_relayed_answer_reveals_nothing(tmp_path, federation_factory, key, monkeypatch):
    seen = _relayed(monkeypatch)
    fed = federation_factory(write_city(tmp_path))
    client = fed.client(key)
    plan = client.compile(SQL).plan
    client.query(SQL)
    alpha = plan.groups[0].domain.index("Alpha")
    beta = plan.groups[0].domain.index("Beta")
    for holder in ("h0", "h1", "h2"):
        number = int(holder[1])
        moments = decrypt_moments_or_none(key, plan, seen[holder])
        if moments is None:
            continue
        # Alpha (suppressed) and Beta (published: 10 rows at each holder) both read as noise.
        rows, total = alpha_truth(number)
        assert (moments[alpha].rows, moments[alpha].measures[-1].total) != (rows, total)
        beta_total = sum(50 + number * 10 + i for i in range(10))
        assert (moments[beta].rows, moments[beta].measures[-1].total) != (10, beta_total)
        assert moments[alpha].rows != 0  # not zeroed either: masked


def decrypt_moments_or_none(key, plan, ciphertexts):  # type: ignore[no-untyped-def]
    # Masked answers are uniformly random modulo t: far from the small integers
    # unpack expects, they may not even recombine.
    try:
        return decrypt_moments(key, plan, ciphertexts)
    except UnseenError:  # any failure to read is the attack failing
        return None


@pytest.mark.parametrize("alpha_base", [1000, 90_000])
def test_the_suppressed_group_sums_to_exact_zero(
    tmp_path, federation_factory, key, monkeypatch, alpha_base
):
    seen = _relayed(monkeypatch)
    fed = federation_factory(write_city(tmp_path / str(alpha_base), alpha_base))
    client = fed.client(key)
    plan = client.compile(SQL).plan
    client.query(SQL)
    total = _alpha_slots(key, plan, _sum(key, [seen[h] for h in ("h0", "h1", "h2")]))
    # Independent of the data: exactly zero for both datasets (BFV adds exactly modulo t).
    assert total.dtype == np.int64
    assert np.all(total == 0)
