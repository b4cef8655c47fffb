"""Attack: the analyst reads a column graded core (or sensitive) by going around the catalog.

Attacker: the analyst, colluding with the coordinator (it sends plans straight
to a holder). The exchange graded ``loans.officer`` core and ``loans.rate``
sensitive; the catalog publishes neither for aggregation, so the friendly
client refuses. The analyst obtains a voucher that covers both columns (the
issuer erred) and sends the holder hand-built plans: ``GROUP BY officer``,
``COUNT(*) WHERE officer = ...`` and ``SUM(rate)``.

It must learn nothing: the holder refuses each plan before touching data
(``column loans.officer is graded core: it never leaves the holder, not even
encrypted``) and ledgers the refusal; the voucher cannot lift a grade. The rule
is ``check_grades`` in ``unseen/engine/governance/grades.py``, called by ``Stewardship.check``
(deleting that call makes this test fail: the holder's own column policy would
still refuse, but with a reason that no longer names the grade, and a config
that listed the uses would let the plan through). Before this branch grades did
not exist, so a config that listed the uses was the only guard.
"""

from __future__ import annotations

import pytest

from tests.consent_fixtures import build_consent_world
from tests.governance_fixtures import entries, head, start_in_process
from unseen.engine.errors import PolicyError
from unseen.engine.query.expr import Binary, BinaryOp, Column, Literal
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure

PLANS = {
    "group-by-core": AggregatePlan("loans", None, (GroupColumn("officer", ("officer-1",)),), ()),
    "filter-on-core": AggregatePlan(
        "loans", Binary(BinaryOp.EQ, Column("officer"), Literal("officer-1")), (), ()
    ),
    "sum-of-sensitive": AggregatePlan(
        "loans", None, (), (Measure(Column("rate"), Encoding.FLOAT),)
    ),
}


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    cw = build_consent_world(tmp_path_factory.mktemp("core"))
    # The config itself lists officer's uses: only the grade stands in the way.
    config = cw.world.configs["bank-a"]
    config.write_text(
        config.read_text().replace(
            "officer = { uses = [] }", 'officer = { uses = ["filter", "group"] }'
        )
    )
    federation = start_in_process(cw.world)
    yield cw, federation
    federation.close()


@pytest.mark.parametrize("name", sorted(PLANS))
def test_a_voucher_cannot_lift_a_grade(fed, key, name):
    cw, federation = fed
    node = federation.holders["bank-a"]
    node.keys.register(key.public)
    scope = {"loans": {"officer": ["filter", "group"], "rate": ["aggregate"]}}
    voucher = cw.world.voucher("bank-a", key.key_id, scope)
    before = head(cw.world.ledgers["bank-a"])
    with pytest.raises(PolicyError) as info:
        # Round 1 reads the data: that is where the grade must refuse.
        node.prepare_aggregate(key.key_id, PLANS[name], "q-core", (voucher,), b"plan")
    column = "rate" if "sensitive" in name else "officer"
    assert str(info.value).startswith(f"column loans.{column} is graded ")
    logged = entries(cw.world.ledgers["bank-a"], before)
    assert [(e.outcome, e.result_digest) for e in logged] == [("refused", "")]
