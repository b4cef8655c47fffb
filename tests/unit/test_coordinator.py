"""The coordinator's orchestration with fake holder peers: failures are input.

Each fake stands where an unseen.engine.transport.peers.HolderPeer would: it answers with real
CKKS ciphertexts under the analyst's key (so the coordinator's sums and masks
are checked by decryption against numpy), or fails the way a real holder can
— refuses, hangs past the deadline, sends garbage bytes, lost the key, is
down or overloaded when its catalog is asked for, or comes back with a
different catalog. No network: the gRPC side is unseen.engine.transport.peers' and the
integration tests' business.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from unseen.engine.crypto import bfv, ckks, registration
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.errors import HolderError, PlanError, PolicyError, RemoteError, UnseenError
from unseen.engine.privacy.masks import MaskKey, Participant
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.layout import layout_for
from unseen.engine.query.model import FeatureSpec
from unseen.engine.query.plan import AggregatePlan, SlotCodec
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType
from unseen.engine.transport.peers import (
    AggregateAnswer,
    EncodedPlan,
    ModelUpload,
    PreparedRound,
    ScoreStream,
)
from unseen.engine.transport.serde import catalog_digest
from unseen.nodes.coordinator import Coordinator
from unseen.nodes.holders import combine

SLOTS = bfv.PARAMS.slots  # an aggregate ciphertext's slots
SCORE_SLOTS = ckks.PARAMS.slots  # a score block's entities (8192 at the default key)


def _table(name: str = "t") -> TableInfo:
    return TableInfo(
        name,
        (
            ColumnInfo("g", SqlType("VARCHAR"), frozenset({"group", "filter"}), ("a", "b")),
            ColumnInfo("v", SqlType("INTEGER"), frozenset({"aggregate", "filter", "score"})),
            ColumnInfo("id", SqlType("VARCHAR"), frozenset({"entity"})),
        ),
    )


@dataclass
class FakeHolder:
    """A holder peer that answers ``value`` in every slot, or fails as told."""

    address: str
    value: float = 1.0
    tables: tuple[str, ...] = ("t",)
    mode: str = "ok"  # ok | refuse | hang | garbage | short | lost_key
    catalog_error: UnseenError | None = None
    suppressed: tuple[int, ...] = ()
    reasons: dict[int, str] = field(default_factory=dict)  # failing group -> rule, beside k
    ctx: Any = None  # the analyst's public context, set by _coordinator
    count: int = 0  # ciphertexts the plan needs, set by _coordinator
    name: str = ""
    registered: list[bytes] = field(default_factory=list)
    aggregates: int = 0
    rounds: list[tuple[str, Any]] = field(default_factory=list)
    mask: MaskKey = field(default_factory=MaskKey.generate)
    release: threading.Event = field(default_factory=threading.Event)
    catalog_calls: int = 0

    def catalog(self, budget: float | None = None) -> Catalog:
        self.catalog_calls += 1
        return self._published()

    def _published(self) -> Catalog:
        if self.catalog_error is not None:
            raise self.catalog_error
        self.name = f"h-{self.address}"
        return Catalog(
            self.name,
            tuple(_table(t) for t in self.tables),
            mask_key=Participant(self.name, self.mask.public),
        )

    def close(self) -> None:
        self.release.set()

    def register_key(self, public: bytes, budget: float | None = None) -> str:
        self.registered.append(public)
        if self.mode == "lost_key":
            self.mode = "ok"
        return "k"

    def prepare_aggregate(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[dict[int, str], tuple[str, ...]]:
        self.aggregates += 1
        if self.mode == "refuse":
            raise RemoteError("PERMISSION_DENIED", f"holder {self.name}: no voucher for t")
        if self.mode == "lost_key":
            raise RemoteError("NOT_FOUND", "key is not registered here")
        if self.mode == "hang":
            self.release.wait(30)
            raise RemoteError("CANCELLED", "released")
        assert isinstance(plan, EncodedPlan)
        self.rounds.append(("prepare", query_id))
        failing = dict.fromkeys(self.suppressed, "k")
        failing.update(self.reasons)
        return failing, (f'{{"h": "{self.name}"}}',)

    def prepare_round(
        self,
        key_id: str,
        plan: AggregatePlan | EncodedPlan,
        query_id: str,
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> PreparedRound:
        failing, receipts = self.prepare_aggregate(
            key_id, plan, query_id, vouchers, budget=budget, subject=subject
        )
        # As a real holder's servicer: the digest of the catalog it publishes now.
        return PreparedRound(failing, receipts, catalog_digest(self._published()))

    def masked_aggregate(
        self,
        key_id: str,
        query_id: str,
        nonce: bytes,
        participants: Sequence[Participant],
        suppressed: Sequence[int],
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> AggregateAnswer:
        self.rounds.append(("masked", (query_id, nonce, tuple(participants), tuple(suppressed))))
        count = self.count
        if self.mode == "garbage":
            return AggregateAnswer([b"\x00garbage" * 40] * count, (), (self.name,))
        if self.mode == "short":
            count -= 1
        # A holder without the table sends masks only; the fakes send no masks.
        value = self.value if "t" in self.tables or "u" in self.tables else 0.0
        data = bfv.encrypt_all(self.ctx, [np.full(SLOTS, int(value))] * count)
        return AggregateAnswer(data, tuple(suppressed), (self.name,))

    def prepare_model(
        self,
        key_id: str,
        features: Sequence[FeatureSpec],
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> tuple[list[int], list[str]]:
        if self.mode == "refuse":
            raise RemoteError("PERMISSION_DENIED", "no voucher")
        return [int(self.value)] * len(features), [f"r-{self.name}"]

    def register_model(self, model: ModelUpload, budget: float | None = None) -> str:
        return model.model_id

    def score(
        self,
        key_id: str,
        model_id: str,
        ids: Sequence[str],
        vouchers: Sequence[str] = (),
        *,
        budget: float | None = None,
        subject: str | None = None,
    ) -> ScoreStream:
        raise NotImplementedError


_PLAN = compile_sql(
    "SELECT g, COUNT(*), SUM(v) FROM t GROUP BY g",
    Catalog("x", (_table(),)),
    SlotCodec(slots=SLOTS),
).plan


@pytest.fixture(scope="module")
def analyst() -> AnalystKey:
    return AnalystKey.generate()


def _coordinator(analyst: AnalystKey, *holders: FakeHolder) -> Coordinator:
    public = bfv.load_public_context(registration.split(analyst.public).bfv)
    for holder in holders:
        holder.ctx, holder.count = public, layout_for(_PLAN).ciphertexts
    coordinator = Coordinator.of(list(holders))
    coordinator.keys.register(analyst.public)
    return coordinator


def _decrypt(analyst: AnalystKey, ciphertexts: list[bytes]) -> np.ndarray:
    return np.concatenate([bfv.decrypt(analyst.aggregate_secret, c) for c in ciphertexts])


def test_the_sum_of_every_holder_is_returned_and_everyone_zeroes_the_union(analyst):
    holders = [
        FakeHolder("a", 1.0),
        FakeHolder("b", 2.0, suppressed=(1,)),
        FakeHolder("c", 4.0, suppressed=(0,)),
    ]
    coordinator = _coordinator(analyst, *holders)
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    layout = layout_for(_PLAN)
    # The coordinator only adds: suppression happened at the holders, before encryption.
    expected = np.full(layout.ciphertexts * SLOTS, 7.0)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts), expected, atol=1e-3)
    assert answer.suppressed == (0, 1)
    assert sorted(answer.holders) == ["h-a", "h-b", "h-c"] and answer.missing == ()
    assert len(answer.receipts) == 3
    # Round 2 told every holder the same story: query, nonce, participants, union.
    stories = {h.rounds[1][1] for h in holders}
    assert len(stories) == 1
    query_id, nonce, participants, union = stories.pop()
    assert {h.rounds[0] for h in holders} == {("prepare", query_id)}
    assert len(nonce) == 32 and union == (0, 1)
    assert sorted(p.holder for p in participants) == ["h-a", "h-b", "h-c"]
    assert {p.public for p in participants} == {h.mask.public for h in holders}


def test_round_one_reasons_are_merged_and_returned_beside_the_union(analyst):
    # Group 0 fails k at one holder and dominance at another: the earliest rule
    # (unseen.engine.privacy.suppression.REASONS) is the one the analyst sees.
    holders = [
        FakeHolder("a", 1.0, reasons={0: "dominance", 2: "moments"}),
        FakeHolder("b", 2.0, suppressed=(0,)),
    ]
    answer = _coordinator(analyst, *holders).aggregate(analyst.key_id, _PLAN)
    assert answer.suppressed == (0, 2)
    assert answer.reasons == ("k", "moments")
    # Round 2 carries the union only; the reasons stay with the coordinator's answer.
    assert {h.rounds[1][1][3] for h in holders} == {(0, 2)}


def test_nonces_and_query_ids_are_fresh_per_query(analyst):
    holders = [FakeHolder("a"), FakeHolder("b")]
    coordinator = _coordinator(analyst, *holders)
    coordinator.aggregate(analyst.key_id, _PLAN)
    coordinator.aggregate(analyst.key_id, _PLAN)
    stories = [r[1] for r in holders[0].rounds if r[0] == "masked"]
    assert stories[0][0] != stories[1][0] and stories[0][1] != stories[1][1]


def test_only_hosts_of_the_table_are_asked(analyst):
    other = FakeHolder("o", 100.0, tables=("elsewhere",))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), FakeHolder("b", 2.0), other)
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 3.0, atol=1e-3)
    assert other.aggregates == 0 and sorted(answer.holders) == ["h-a", "h-b"]


def test_a_table_one_holder_hosts_gets_a_mask_only_peer(analyst):
    helper = FakeHolder("o", 100.0, tables=("elsewhere",))
    spare = FakeHolder("p", 100.0, tables=("elsewhere",))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), helper, spare)
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 1.0, atol=1e-3)
    assert answer.holders == ("h-a",)  # the helper hosts nothing: it added masks only
    assert (helper.aggregates, spare.aggregates) == (1, 0)


def test_no_aggregate_with_fewer_than_two_holders(analyst):
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0))
    with pytest.raises(PolicyError, match="at least 2"):
        coordinator.aggregate(analyst.key_id, _PLAN)


@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [
        ("refuse", "PERMISSION_DENIED", "no voucher"),
        ("garbage", "INVALID_ARGUMENT", "does not parse"),
        ("short", "INTERNAL", "the plan needs"),
    ],
)
def test_a_failing_holder_fails_the_query_by_name(analyst, mode, code, words):
    bad = FakeHolder("b", mode=mode)
    coordinator = _coordinator(analyst, FakeHolder("a"), bad, FakeHolder("c"))
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.code == code
    assert info.value.holder == "h-b (b)" and "holder h-b" in str(info.value)
    assert words in str(info.value)


def test_a_holder_that_hangs_fails_the_query_within_the_budget(analyst):
    hung = FakeHolder("b", mode="hang")
    coordinator = _coordinator(analyst, FakeHolder("a"), hung)
    try:
        with pytest.raises(HolderError) as info:
            coordinator.aggregate(analyst.key_id, _PLAN, deadline=0.2)
        assert info.value.code == "DEADLINE_EXCEEDED" and info.value.holder == "h-b (b)"
    finally:
        hung.release.set()


def test_several_failures_are_all_named(analyst):
    coordinator = _coordinator(
        analyst, FakeHolder("a", mode="refuse"), FakeHolder("b"), FakeHolder("c", mode="refuse")
    )
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.holder == "h-a (a)" and "also failed: h-c (c)" in str(info.value)


def test_a_holder_that_lost_the_key_gets_it_once_and_answers(analyst):
    forgetful = FakeHolder("b", 2.0, mode="lost_key")
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), forgetful)
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert forgetful.registered == [analyst.public]  # the public context, once
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 3.0, atol=1e-3)


# -- 12.7: the federation is what the operator configured ---------------------------


def test_a_holder_down_from_the_start_fails_every_query_naming_it(analyst):
    down = FakeHolder("b", catalog_error=RemoteError("UNAVAILABLE", "holder b is unavailable"))
    coordinator = _coordinator(analyst, FakeHolder("a"), down)
    # The analyst can still read the catalog (and compile) ...
    assert coordinator.catalog().table("t") is not None
    # ... but no answer comes from the holders that are up alone.
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.code == "UNAVAILABLE" and info.value.holder == "b"


def test_an_overloaded_holder_at_catalog_time_is_unavailable_not_left_out(analyst):
    busy = FakeHolder("b", catalog_error=RemoteError("RESOURCE_EXHAUSTED", "too many calls"))
    coordinator = _coordinator(analyst, FakeHolder("a"), busy)
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.code == "UNAVAILABLE" and "overloaded" in str(info.value)


def test_a_partial_answer_only_when_asked_and_it_names_who_is_missing(analyst):
    down = FakeHolder("b", 2.0, catalog_error=RemoteError("UNAVAILABLE", "down"))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), down, FakeHolder("c", 4.0))
    answer = coordinator.aggregate(analyst.key_id, _PLAN, allow_partial=True)
    assert answer.missing == ("b",)
    assert sorted(answer.holders) == ["h-a", "h-c"]
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 5.0, atol=1e-3)


def test_a_holder_down_since_the_cached_catalogs_is_left_out_only_when_asked(analyst):
    # Round 1 meets the holder down (UNAVAILABLE): the query starts again from
    # catalogs fetched now, which decide as they would have from the start.
    down = FakeHolder("b", 2.0)
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), down, FakeHolder("c", 4.0))
    coordinator.aggregate(analyst.key_id, _PLAN)  # every catalog cached
    down.catalog_error = RemoteError("UNAVAILABLE", "down")
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.code == "UNAVAILABLE" and info.value.holder == "h-b (b)"
    answer = coordinator.aggregate(analyst.key_id, _PLAN, allow_partial=True)
    assert answer.missing == ("h-b (b)",)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 5.0)


def test_a_holder_that_fails_after_its_catalog_fails_even_a_partial_query(analyst):
    # The participant set is fixed before the plan goes out: a holder that
    # answered its catalog and then fails is an error, never a smaller sum.
    coordinator = _coordinator(analyst, FakeHolder("a"), FakeHolder("b", mode="refuse"))
    with pytest.raises(HolderError):
        coordinator.aggregate(analyst.key_id, _PLAN, allow_partial=True)


def test_a_cached_catalog_does_not_hide_a_holder_that_came_back_hosting_the_table(analyst):
    changing = FakeHolder("b", 2.0, tables=("elsewhere",))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), changing)
    coordinator.catalog_ttl = 3600.0
    coordinator.catalog()  # cached: b hosts only "elsewhere"
    changing.tables = ("t",)  # restarted with a different catalog
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 3.0, atol=1e-3)


def test_queries_after_the_first_fetch_no_catalog_and_still_add_every_holder(analyst):
    holders = [FakeHolder("a", 1.0), FakeHolder("b", 2.0)]
    coordinator = _coordinator(analyst, *holders)
    coordinator.catalog_ttl = 0.0  # the cache of round 1's digests has no age limit
    for _ in range(3):
        answer = coordinator.aggregate(analyst.key_id, _PLAN)
        assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 3.0)
    # One catalog round for three queries: round 1's replies vouched for the rest.
    assert [h.catalog_calls for h in holders] == [1, 1]


def test_a_changed_mask_key_is_never_used_stale(analyst):
    # A holder restarted with a fresh mask key between two queries: its round-1
    # reply carries a new catalog digest, so the coordinator refetches and round 2
    # lists the new key (a stale one would leave masks that do not cancel).
    restarted = FakeHolder("b", 2.0)
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), restarted)
    coordinator.aggregate(analyst.key_id, _PLAN)
    restarted.mask = MaskKey.generate()
    restarted.rounds.clear()
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 3.0)
    masked = [r for kind, r in restarted.rounds if kind == "masked"]
    assert len(masked) == 1
    keys = {p.holder: p.public for p in masked[0][2]}
    assert keys["h-b"] == restarted.mask.public
    # Round 1 ran twice (the stale plan was abandoned before round 2), round 2 once.
    assert [kind for kind, _ in restarted.rounds] == ["prepare", "prepare", "masked"]


def test_a_cached_catalog_does_not_hide_a_holder_outside_the_query(analyst):
    # c hosts another table and is not needed for masks (a and b are two): the
    # query does not reach it, so its catalog is asked for, and it now hosts t.
    changing = FakeHolder("c", 4.0, tables=("elsewhere",))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0), FakeHolder("b", 2.0), changing)
    first = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, first.ciphertexts)[:8], 3.0)
    assert changing.aggregates == 0
    changing.tables = ("t",)
    answer = coordinator.aggregate(analyst.key_id, _PLAN)
    assert np.allclose(_decrypt(analyst, answer.ciphertexts)[:8], 7.0)
    assert changing.aggregates == 1


def test_a_holder_silent_now_fails_queries_on_tables_it_last_published(analyst):
    flaky = FakeHolder("b", 2.0, tables=("t",))
    helper = FakeHolder("c", 0.0, tables=("elsewhere",))
    coordinator = _coordinator(analyst, FakeHolder("a", 1.0, tables=("t", "u")), flaky, helper)
    coordinator.catalog()
    flaky.catalog_error = RemoteError("DEADLINE_EXCEEDED", "did not answer before the deadline")
    with pytest.raises(HolderError) as info:
        coordinator.aggregate(analyst.key_id, _PLAN)
    assert info.value.holder == "h-b (b)"
    # A table it never published keeps being answered by its hosts.
    other = AggregatePlan(**{**_PLAN.__dict__, "table": "u"})
    assert coordinator.aggregate(analyst.key_id, other).holders == ("h-a",)


def test_an_unknown_table_is_a_plan_error(analyst):
    coordinator = _coordinator(analyst, FakeHolder("a"))
    with pytest.raises(PlanError, match="no holder serves a table nowhere"):
        coordinator.aggregate(
            analyst.key_id, AggregatePlan(**{**_PLAN.__dict__, "table": "nowhere"})
        )


def test_combined_error_names_failures_in_order():
    error = combine(
        [HolderError("z", "UNAVAILABLE", "down"), HolderError("m", "PERMISSION_DENIED", "no")]
    )
    assert error.holder == "m" and error.code == "PERMISSION_DENIED"
    assert str(error) == "holder m: no (also failed: z)"


# -- scoring orchestration ----------------------------------------------------------


def test_prepare_takes_the_largest_exponent_and_every_receipt(analyst):
    coordinator = _coordinator(analyst, FakeHolder("a", 3.0), FakeHolder("b", 7.0))
    feature = FeatureSpec(table="t", column="v", key="id")
    exponents, receipts = coordinator.prepare_model(analyst.key_id, (feature,), ["e1", "e2"])
    assert exponents == [7] and sorted(receipts) == ["r-h-a", "r-h-b"]


def test_prepare_fails_by_name_when_a_host_refuses_or_is_silent(analyst):
    feature = FeatureSpec(table="t", column="v", key="id")
    refusing = _coordinator(analyst, FakeHolder("a"), FakeHolder("b", mode="refuse"))
    with pytest.raises(HolderError, match="holder h-b"):
        refusing.prepare_model(analyst.key_id, (feature,), ["e1"])
    silent = _coordinator(
        analyst, FakeHolder("a"), FakeHolder("b", catalog_error=RemoteError("UNAVAILABLE", "x"))
    )
    with pytest.raises(HolderError) as info:
        silent.prepare_model(analyst.key_id, (feature,), ["e1"])
    assert info.value.code == "UNAVAILABLE" and info.value.holder == "b"


def _partial_blocks(analyst: AnalystKey, values: Sequence[np.ndarray]) -> list[bytes]:
    """Blocks one rescale deep, as a holder's weights x features product is."""
    public = ckks.load_public_context(analyst.public)
    ones = [1.0] * SCORE_SLOTS
    return [bytes((ckks.encrypt(public, v) * ones).serialize()) for v in values]


class ScoringHolder(FakeHolder):
    """A holder that scores: each block ``value`` times the block index plus one."""

    def __init__(self, address: str, value: float, blocks: list[bytes], **kw: Any):
        super().__init__(address, value, **kw)
        self.stream_blocks = blocks
        self.models: list[ModelUpload] = []
        self.scores = 0

    def register_model(self, model: ModelUpload, budget: float | None = None) -> str:
        self.models.append(model)
        return model.model_id

    def score(self, key_id, model_id, ids, vouchers=(), *, budget=None, subject=None):
        self.scores += 1
        if self.mode == "lost_model" and self.scores == 1:
            raise RemoteError("NOT_FOUND", "model is not registered here")
        if self.mode == "refuse":
            raise RemoteError("PERMISSION_DENIED", f"holder {self.name}: entity out of scope")
        return _Stream(self.stream_blocks, (self.name,), (f"r-{self.name}",), self.mode)


class _Stream:
    def __init__(self, blocks, holders, receipts, mode):
        self.data, self.holders, self.receipts, self.mode = blocks, holders, receipts, mode
        self.count = len(blocks)
        self.cancelled = False

    def blocks(self):
        for index, data in enumerate(self.data):
            if self.mode == "dies" and index == 1:
                raise RemoteError("UNAVAILABLE", "holder went away")
            yield b"garbage" if self.mode == "garbage" else data

    def cancel(self) -> None:
        self.cancelled = True


def _scoring(analyst: AnalystKey, *holders: ScoringHolder) -> tuple[Coordinator, str, list[str]]:
    coordinator = _coordinator(analyst, *holders)
    feature = FeatureSpec(table="t", column="v", key="id")
    public = ckks.load_public_context(analyst.public)
    weight = bytes(ckks.encrypt(public, np.ones(SCORE_SLOTS)).serialize())
    model_id = "ab" * 32
    coordinator.register_model(analyst.key_id, model_id, (feature,), (0,), (weight,))
    return coordinator, model_id, [f"e{i}" for i in range(SCORE_SLOTS + 5)]  # two blocks


def test_scores_are_the_sum_of_every_holders_partials_block_by_block(analyst):
    a = [np.arange(SCORE_SLOTS) * 1.0, np.full(SCORE_SLOTS, 2.0)]
    b = [np.full(SCORE_SLOTS, 0.5), np.arange(SCORE_SLOTS) * -1.0]
    coordinator, model_id, ids = _scoring(
        analyst,
        ScoringHolder("a", 1, _partial_blocks(analyst, a)),
        ScoringHolder("b", 1, _partial_blocks(analyst, b)),
    )
    answer = coordinator.score(analyst.key_id, model_id, ids)
    assert answer.count == 2 and sorted(answer.receipts) == ["r-h-a", "r-h-b"]
    got = [ckks.decrypt(analyst.secret, block) for block in answer.blocks]
    for index in range(2):
        assert np.allclose(got[index], a[index] + b[index], atol=1e-4)


def test_a_holder_that_lost_the_model_gets_it_again_and_scores(analyst):
    forgetful = ScoringHolder(
        "b", 1, _partial_blocks(analyst, [np.ones(SCORE_SLOTS)] * 2), mode="lost_model"
    )
    coordinator, model_id, ids = _scoring(
        analyst,
        ScoringHolder("a", 1, _partial_blocks(analyst, [np.ones(SCORE_SLOTS)] * 2)),
        forgetful,
    )
    registered = len(forgetful.models)
    answer = coordinator.score(analyst.key_id, model_id, ids)
    assert [
        np.allclose(ckks.decrypt(analyst.secret, b), 2.0, atol=1e-4) for b in answer.blocks
    ] == [
        True,
        True,
    ]
    assert len(forgetful.models) == registered + 1 and forgetful.scores == 2


@pytest.mark.parametrize(
    ("mode", "code", "when"),
    [
        ("refuse", "PERMISSION_DENIED", "header"),
        ("dies", "UNAVAILABLE", "block"),
        ("garbage", "INVALID_ARGUMENT", "block"),
    ],
)
def test_a_failing_scorer_fails_the_score_by_name(analyst, mode, code, when):
    blocks = _partial_blocks(analyst, [np.ones(SCORE_SLOTS)] * 2)
    bad = ScoringHolder("b", 1, blocks, mode=mode)
    coordinator, model_id, ids = _scoring(analyst, ScoringHolder("a", 1, blocks), bad)
    with pytest.raises(HolderError) as info:
        answer = coordinator.score(analyst.key_id, model_id, ids)
        assert when == "block"  # the header came through: the error comes with the blocks
        list(answer.blocks)
    assert info.value.code == code and info.value.holder == "h-b (b)"


def test_a_score_for_an_unknown_model_is_not_found_before_any_holder_is_asked(analyst):
    holder = ScoringHolder("a", 1, [])
    coordinator = _coordinator(analyst, holder)
    with pytest.raises(UnseenError, match="not registered"):
        coordinator.require_model(analyst.key_id, "cd" * 32)
    with pytest.raises(UnseenError, match="not registered"):
        coordinator.score(analyst.key_id, "cd" * 32, ["e1"])
    assert holder.scores == 0
