"""Pairwise zero-sum masks, the participant policy and the round-1 store
(unseen.engine.privacy.masks,
unseen.engine.privacy.participants, unseen.engine.data.pending, unseen.engine.data.aggregate's
round 2)."""

from __future__ import annotations

import datetime as dt
import os
from fractions import Fraction

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from unseen.engine.data.aggregate import PreparedAnswer, answer_masked
from unseen.engine.data.pending import PendingAggregate, PendingAggregates
from unseen.engine.errors import CryptoError, PlanError, PolicyError
from unseen.engine.privacy.masks import (
    MASK_BITS,
    MAX_PARTICIPANTS,
    MODULUS,
    MaskKey,
    Participant,
    apply_masks,
    pair_masks,
    query_context,
    reduce_slots,
)
from unseen.engine.privacy.participants import certify_mask_key, check_participants
from unseen.engine.query.expr import Column
from unseen.engine.query.layout import GroupMoments, MeasureMoments, combine_limbs, layout_for
from unseen.engine.query.plan import AggregatePlan, Encoding, GroupColumn, Measure
from unseen.engine.transport.tls import make_bundle

MOD = MODULUS
NONCE = bytes(range(32))


def _holders(n: int) -> list[tuple[MaskKey, Participant]]:
    keys = [MaskKey.generate() for _ in range(n)]
    return [(k, Participant(f"h{i}", k.public)) for i, k in enumerate(keys)]


def _shares(holders, context=b"ctx", nonce=NONCE, length=4096):  # type: ignore[no-untyped-def]
    participants = [p for _, p in holders]
    return [pair_masks(k, p.holder, participants, nonce, context, length) for k, p in holders]


def test_masks_cancel_exactly_over_all_participants():
    shares = _shares(_holders(4))
    assert np.all(sum(shares) % MOD == 0)
    assert all(np.any(s != 0) for s in shares)


def test_a_proper_subset_does_not_cancel():
    shares = _shares(_holders(3))
    assert np.mean((shares[0] + shares[1]) % MOD == 0) < 0.01


def test_masks_depend_on_nonce_and_context():
    holders = _holders(2)
    base = _shares(holders)[0]
    assert np.mean(_shares(holders, nonce=bytes(32))[0] == base) < 0.01
    assert np.mean(_shares(holders, context=b"other")[0] == base) < 0.01


def test_holders_told_different_stories_get_garbage():
    holders = _holders(3)
    participants = [p for _, p in holders]
    contexts = [query_context("plan", "q", participants, s) for s in ([], [], [7])]
    shares = [
        pair_masks(k, p.holder, participants, NONCE, c, 64)
        for (k, p), c in zip(holders, contexts, strict=True)
    ]
    assert np.mean(sum(shares) % MOD == 0) < 0.1


def test_query_context_binds_everything_and_ignores_order():
    a, b = Participant("a", b"\x01" * 32), Participant("b", b"\x02" * 32)
    base = query_context("plan", "q", [a, b], [3, 1])
    assert query_context("plan", "q", [b, a], [1, 3]) == base
    assert query_context("plan2", "q", [a, b], [1, 3]) != base
    assert query_context("plan", "q2", [a, b], [1, 3]) != base
    assert query_context("plan", "q", [a], [1, 3]) != base
    assert query_context("plan", "q", [a, b], [1]) != base
    assert query_context("plan", "q", [a, Participant("b", b"\x03" * 32)], [1, 3]) != base


def test_mask_modulus_is_bfvs_plaintext_prime():
    """Masks live in the group the answer lives in: the integers modulo BFV's t."""
    from unseen.engine.crypto.bfv import PARAMS

    assert PARAMS.plain_modulus == MOD
    assert MOD % 8192 == 1 and 1 << 39 < MOD < 1 << 40
    # t is prime (deterministic Miller-Rabin bases for n < 3.3e24).
    d, r = MOD - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, MOD)
        assert x in (1, MOD - 1) or any(pow(x, 2**i, MOD) == MOD - 1 for i in range(1, r))


def test_one_share_is_uniform_modulo_t():
    """Chi-square goodness of fit of the top 4 bits of one holder's share (seeded keys)."""
    keys = [MaskKey(X25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32)) for i in range(2)]
    holders = [(k, Participant(f"h{i}", k.public)) for i, k in enumerate(keys)]
    share = _shares(holders, length=1 << 16)[0]
    counts = np.bincount((share >> (MASK_BITS - 4)).astype(np.int64), minlength=16)
    expected = len(share) / 16
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 37.7  # 15 degrees of freedom, p = 0.001


def test_masked_sums_reduce_to_the_true_limbs():
    holders = _holders(3)
    shares = _shares(holders, length=8)
    rng = np.random.default_rng(5)
    values = [rng.integers(-(1 << 20) + 1, 1 << 20, 8) for _ in holders]
    masked = [apply_masks([v[:4], v[4:]], s) for v, s in zip(values, shares, strict=True)]
    for part in masked:
        for vector in part:
            assert vector.dtype == np.int64
            assert np.all(np.abs(vector) <= MOD // 2)
    total = sum(np.concatenate(m) for m in masked)  # what BFV adds, before its reduction
    assert np.array_equal(reduce_slots(total), sum(values))


def test_reduce_centres_modulo_t_and_the_range_guard_refuses_garbage():
    assert reduce_slots(np.array([MOD + 5, 2 * MOD - 5, -MOD + 3])).tolist() == [5, -5, 3]
    assert combine_limbs(reduce_slots(np.array([MOD + 5])), 20) == 5
    # A wrong key decrypts to integers uniform modulo t: far outside the limbs' range.
    with pytest.raises(CryptoError):
        combine_limbs(reduce_slots(np.array([MOD // 3])), 20)
    with pytest.raises(CryptoError):
        combine_limbs(np.array([np.nan]), 20)


def test_a_bad_peer_key_or_nonce_is_refused():
    (key, me), _ = _holders(2)
    with pytest.raises(CryptoError):
        pair_masks(key, me.holder, [me, Participant("z", bytes(32))], NONCE, b"", 4)
    with pytest.raises(PolicyError):
        pair_masks(key, me.holder, [me], b"short", b"", 4)


# -- participant policy -----------------------------------------------------------


def test_participant_rules():
    (_, me), (_, peer), (_, third) = _holders(3)
    check_participants(me, [me, peer])
    with pytest.raises(PolicyError, match="not among"):
        check_participants(me, [peer, third])
    with pytest.raises(PolicyError, match="stale"):
        check_participants(me, [Participant(me.holder, peer.public + b""), third])
    with pytest.raises(PolicyError, match="at least 2"):
        check_participants(me, [me])
    with pytest.raises(PolicyError, match="at least 3"):
        check_participants(me, [me, peer], min_holders=3)
    with pytest.raises(PolicyError, match="repeats a mask key"):
        check_participants(me, [me, Participant("x", peer.public), peer])
    with pytest.raises(PolicyError, match="repeats a holder"):
        check_participants(me, [me, peer, Participant(peer.holder, third.public)])
    with pytest.raises(PolicyError, match="voucher"):
        check_participants(me, [me, peer], expected=frozenset({me.holder, third.holder}))
    check_participants(me, [me, peer, third], expected=frozenset({"h0", "h1", "h2"}))
    many = [me] + [Participant(f"p{i}", os.urandom(32)) for i in range(MAX_PARTICIPANTS)]
    with pytest.raises(PolicyError, match="at most"):
        check_participants(me, many)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("tls")
    return make_bundle(out, [("h0", "holder"), ("h1", "holder"), ("eve", "analyst")])


def _certified(files, name, key):  # type: ignore[no-untyped-def]
    cert, private, _ = files.read()
    return certify_mask_key(name, key.public, cert, private)


def test_governed_participants_must_be_ca_certified_holders(bundle, tmp_path):
    ca = bundle["h0"].read()[2]
    k0, k1, ke = MaskKey.generate(), MaskKey.generate(), MaskKey.generate()
    me, peer = _certified(bundle["h0"], "h0", k0), _certified(bundle["h1"], "h1", k1)
    check_participants(me, [me, peer], ca_pem=ca)
    with pytest.raises(PolicyError, match="not a holder"):
        check_participants(me, [me, _certified(bundle["eve"], "eve", ke)], ca_pem=ca)
    with pytest.raises(PolicyError, match="another party"):
        check_participants(me, [me, _certified(bundle["h1"], "h9", ke)], ca_pem=ca)
    forged = Participant("h1", ke.public, peer.certificate, peer.signature)
    with pytest.raises(PolicyError, match="signature"):
        check_participants(me, [me, forged], ca_pem=ca)
    with pytest.raises(PolicyError, match="trusted CA"):
        check_participants(me, [me, Participant("h1", ke.public)], ca_pem=ca)
    other = make_bundle(tmp_path / "other", [("h1", "holder")])
    with pytest.raises(PolicyError, match="trusted CA"):
        check_participants(me, [me, _certified(other["h1"], "h1", ke)], ca_pem=ca)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(PolicyError, match="not valid now"):
        check_participants(me, [me, peer], ca_pem=ca, now=later)


def test_a_comma_in_the_organisation_does_not_make_a_holder(bundle):
    """A CA-signed analyst certificate with O = "evil,OU=holder" is no holder."""
    ca_dir = bundle["h0"].ca.parent
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil,OU=holder"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "analyst"),
            x509.NameAttribute(NameOID.COMMON_NAME, "h1"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    mask = MaskKey.generate()
    evil = certify_mask_key("h1", mask.public, pem, private)
    me = _certified(bundle["h0"], "h0", MaskKey.generate())
    with pytest.raises(PolicyError, match="not a holder"):
        check_participants(me, [me, evil], ca_pem=(ca_dir / "ca.crt").read_bytes())


# -- round-1 store ----------------------------------------------------------------


def _plan() -> AggregatePlan:
    return AggregatePlan(
        "t",
        None,
        (GroupColumn("g", ("a", "b")),),
        (Measure(Column("v"), Encoding.INTEGER),),
    )


def _entry(key_id: str = "k") -> PendingAggregate:
    return PendingAggregate(key_id, _plan(), "d", PreparedAnswer({}, frozenset()), 0.0)


def test_a_round_one_result_is_taken_once_under_a_fresh_nonce():
    store = PendingAggregates(ttl=1e12)
    store.put("q1", _entry())
    with pytest.raises(PolicyError, match="already pending"):
        store.put("q1", _entry())
    with pytest.raises(PlanError):
        store.take("q1", "other key", NONCE)
    assert store.take("q1", "k", NONCE).plan_digest == "d"
    with pytest.raises(PlanError):
        store.take("q1", "k", bytes(32))
    store.put("q2", _entry())
    with pytest.raises(PolicyError, match="nonce"):
        store.take("q2", "k", NONCE)
    with pytest.raises(PolicyError):
        store.put("", _entry())


def test_round_one_results_expire_and_are_bounded():
    store = PendingAggregates(max_entries=2, ttl=1e12)
    for q in ("a", "b", "c"):
        store.put(q, _entry())
    with pytest.raises(PlanError):
        store.take("a", "k", NONCE)
    expired = PendingAggregates(ttl=-1.0)
    expired.put("a", _entry())
    with pytest.raises(PlanError):
        expired.take("a", "k", NONCE)


# -- round 2 at a holder ----------------------------------------------------------


class _Ctx:
    """Stands in for a TenSEAL context: round 2 passes it to ``encrypt`` only."""


def _round_two(suppressed, masks=None):  # type: ignore[no-untyped-def]
    plan = _plan()
    moments = {
        0: GroupMoments(40, (MeasureMoments(40, Fraction(4000)),)),
        1: GroupMoments(3, (MeasureMoments(3, Fraction(30)),)),
    }
    prepared = PreparedAnswer(moments, frozenset({1}))
    seen: list[np.ndarray] = []

    def encrypt(vectors):  # type: ignore[no-untyped-def]
        seen.extend(vectors)
        return [b"x" for _ in vectors]

    zero = masks or (lambda n: np.zeros(n, dtype=np.int64))
    answer_masked(plan, prepared, frozenset(suppressed), zero, _Ctx(), encrypt=encrypt)  # type: ignore[arg-type]
    return plan, np.concatenate(seen)


def test_round_two_zeroes_every_suppressed_group():
    plan, flat = _round_two({0, 1})
    assert not np.any(flat)
    plan, flat = _round_two({1})
    width = layout_for(plan).record_width
    assert flat[0] == 40 and not np.any(flat[width:])


def test_round_two_refuses_a_union_missing_its_own_failing_group():
    with pytest.raises(PolicyError, match="failing"):
        _round_two({0})


def test_round_two_adds_the_masks():
    _, flat = _round_two({1}, masks=lambda n: np.full(n, 7, dtype=np.int64))
    assert flat[0] == 47 and flat[-1] == 7


def test_mask_words_at_or_above_t_are_rejected_not_wrapped(monkeypatch):
    """Rejection sampling: a 40-bit word >= t is skipped, so each kept value is uniform mod t.

    Reducing such words modulo t instead would make the values below 2^40 - t twice as
    likely; a scripted keystream whose words alternate between ``t + 5`` and valid
    values shows they are dropped.
    """
    import unseen.engine.privacy.masks as masks

    words = [MOD + 5, 7, MOD, 11, (1 << 40) - 1, 13] * 8

    class Script:
        def __init__(self) -> None:
            self.at = 0

        def update(self, data: bytes) -> bytes:
            count = len(data) // 8
            out = [words[(self.at + i) % len(words)] for i in range(count)]
            self.at += count
            return np.asarray(out, dtype="<u8").tobytes()

    class FakeCipher:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def encryptor(self) -> Script:
            return Script()

    monkeypatch.setattr(masks, "Cipher", FakeCipher)
    values = masks._stream(b"\x01" * 32, NONCE, b"ctx", 30)
    assert values.tolist() == [7, 11, 13] * 10
