"""The flood: its sampler's distribution, what it adds to a ciphertext, its budget,
and the encoded-column cache that shares the scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi
from scipy import stats

from unseen.engine.crypto import ckks
from unseen.engine.crypto.encodings import EncodedCache
from unseen.engine.crypto.flooding import (
    SECURITY_BITS,
    FloodBudget,
    Flooder,
    computed_noise_bound,
    noise_residues,
    uniform_noise,
)
from unseen.engine.crypto.partials import SCORE_TOLERANCE, PartialScorer, require_smudging
from unseen.engine.errors import WeakKeyError

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def ctx() -> ts.Context:
    return ckks.new_secret_context()


def test_the_sampler_is_uniform_on_its_power_of_two_range():
    draws = np.array(uniform_noise(64_000, 3, KEY))
    assert draws.min() == -8 and draws.max() == 7
    counts = np.bincount(draws + 8, minlength=16)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_wide_draws_use_every_bit():
    draws = uniform_noise(4000, 100, KEY)
    assert all(-(2**100) <= d < 2**100 for d in draws)
    assert max(draws) > 2**99 and min(draws) < -(2**99)
    # The top bit and a low bit are both fair coins (no zeroed low bits, as a double has).
    top = sum(d >= 0 for d in draws)
    low = sum(d & 1 for d in draws)
    assert stats.binomtest(top, 4000).pvalue > 1e-3
    assert stats.binomtest(low, 4000).pvalue > 1e-3


def test_fresh_keys_give_fresh_noise():
    assert list(uniform_noise(16, 40)) != list(uniform_noise(16, 40))
    assert list(uniform_noise(16, 40, KEY)) == list(uniform_noise(16, 40, KEY))
    assert list(uniform_noise(16, 80, KEY)) == list(uniform_noise(16, 80, KEY))


@pytest.mark.parametrize("bits", [20, 63, 64, 143, 190])
def test_fast_residues_are_the_wide_draws_reduced_exactly(ctx, bits):
    # The holders' path (32-bit words, float quotient estimates) against Python integers.
    moduli = [
        m.value() for m in ctx.seal_context().data.first_context_data().parms().coeff_modulus()
    ]
    fast = noise_residues(4096, bits, moduli, KEY)
    exact = [[int(d) % q for d in uniform_noise(4096, bits, KEY)] for q in moduli]
    assert fast.tolist() == exact


def _decode(ctx: ts.Context, cipher: sealapi.Ciphertext) -> np.ndarray:
    seal = ctx.seal_context().data
    plain = sealapi.Plaintext()
    sealapi.Decryptor(seal, ctx.secret_key().data).decrypt(cipher, plain)
    return np.array(sealapi.CKKSEncoder(seal).decode_complex(plain))


@pytest.mark.parametrize("bits", [30, 70])  # int64 draws, and Python integers past 62 bits
def test_the_flood_covers_real_and_imaginary_parts_at_the_predicted_size(ctx, bits):
    seal = ctx.seal_context().data
    evaluator = sealapi.Evaluator(seal)
    values = np.linspace(-3.0, 3.0, ckks.PARAMS.slots)
    cipher = ts.ckks_vector(ctx, values.tolist()).ciphertext()[0]
    before = _decode(ctx, cipher)
    Flooder(seal, evaluator).flood(cipher, bits, KEY)
    added = _decode(ctx, cipher) - before
    budget = FloodBudget.of(ckks.PARAMS.poly_modulus_degree, bits, cipher.scale, 1.0)
    # Each part of a slot sums N uniform coefficients: normal, of the predicted deviation.
    for part in (added.real, added.imag):
        assert stats.kstest(part / budget.error, "norm").pvalue > 1e-3
    assert np.allclose(before.real, values, atol=1e-9)


def test_the_budget_meets_what_it_promises():
    bound = computed_noise_bound(16384, 30, 1.0, 1.0, 2.0**60, 2.0**60, 2.0**90)
    secure = FloodBudget.for_security(16384, 2.0**90, 30, bound)
    assert secure.security >= 30
    precise = FloodBudget.for_precision(8192, 2.0**50, 1e-6, bound)
    assert precise.error <= 1e-6 / 8
    assert FloodBudget.of(8192, precise.bits + 1, 2.0**50, bound).error > 1e-6 / 8


def test_the_bound_grows_with_what_the_analyst_can_compute():
    base = computed_noise_bound(8192, 30, 1.0, 1.0, 2.0**50, 2.0**50, 2.0**50)
    assert computed_noise_bound(8192, 60, 1.0, 1.0, 2.0**50, 2.0**50, 2.0**50) > base
    assert computed_noise_bound(8192, 30, 2.0, 1.0, 2.0**50, 2.0**50, 2.0**50) > base
    assert computed_noise_bound(8192, 30, 1.0, 2.0**10, 2.0**50, 2.0**50, 2.0**50) > base
    # The weights' fresh noise dominates at unit weights: about F * 2 sigma * sqrt(4 N^2 / 3).
    assert math.log2(base) == pytest.approx(
        math.log2(30 * 2 * 3.2 * 8192 * math.sqrt(4 / 3)), abs=0.1
    )


def _weights(ctx: ts.Context, values) -> list[ts.CKKSVector]:
    """Weight ciphertexts as the client and the issuer make them (at ckks.weight_scale)."""
    scale = ckks.weight_scale(ctx, len(values))
    return [ckks.encrypt(ctx, np.full(ckks.PARAMS.slots, w), scale) for w in values]


def test_scores_stay_within_the_tolerance_with_the_flood_on(ctx):
    rng = np.random.default_rng(5)
    weights = rng.normal(size=30)
    columns = rng.uniform(-1, 1, (ckks.PARAMS.slots, 30))
    scorer = PartialScorer(ctx, _weights(ctx, weights))
    assert scorer.plan.smudging and scorer.flood.security >= SECURITY_BITS
    got = ckks.decrypt(ctx, scorer.partial(columns, ckks.PARAMS.slots))
    assert np.max(np.abs(got - columns @ weights)) < SCORE_TOLERANCE / 2


def test_the_cache_returns_the_same_plaintext_for_the_same_column_only(ctx):
    rng = np.random.default_rng(9)
    weights = _weights(ctx, [0.25] * 3)
    cache = EncodedCache(1 << 28)
    scorer = PartialScorer(ctx, weights, cache)
    columns = rng.uniform(-1, 1, (ckks.PARAMS.slots, 3))
    first = ckks.decrypt(ctx, scorer.partial(columns, ckks.PARAMS.slots))
    assert (cache.hits, cache.misses) == (0, 3)
    again = ckks.decrypt(ctx, scorer.partial(columns, ckks.PARAMS.slots))
    assert (cache.hits, cache.misses) == (3, 3)
    changed = columns.copy()
    changed[17, 1] += 1e-9
    scorer.partial(changed, ckks.PARAMS.slots)
    assert (cache.hits, cache.misses) == (5, 4)
    assert np.allclose(first, again, atol=1e-6)
    assert np.allclose(first[:100], 0.25 * columns.sum(axis=1)[:100], atol=1e-6)


def test_the_cache_holds_at_most_its_capacity(ctx):
    weights = _weights(ctx, [1.0])
    limbs = len(ckks.PARAMS.coeff_mod_bit_sizes) - 1  # fresh weights: every data prime
    cache = EncodedCache(capacity=3 * 8 * limbs * ckks.PARAMS.poly_modulus_degree)
    scorer = PartialScorer(ctx, weights, cache)
    for i in range(6):
        scorer.products(np.full((ckks.PARAMS.slots, 1), 0.1 * (i + 1)))
    assert len(cache) == 3 and cache.size <= cache.capacity


@pytest.mark.parametrize("features", [1, 30, 512])
def test_the_default_key_smudges_at_30_bits_within_the_precision(ctx, features):
    scale = ckks.weight_scale(ctx, features)
    assert scale is not None and scale >= 2.0**90
    weights = [ckks.encrypt(ctx, np.full(ckks.PARAMS.slots, 0.5), scale)] * features
    plan = PartialScorer(ctx, weights).plan
    assert plan.smudging and plan.budget.security >= SECURITY_BITS
    assert plan.budget.error * 8 <= SCORE_TOLERANCE


def test_an_old_n8192_key_is_refused_not_flooded_weakly():
    # N = 8192 at 2^50: the weights' own noise is too large a share of the score,
    # so the widest flood within 1e-6 reaches s of about -13. Holders refuse it.
    old = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 50, 50, 58])
    old.global_scale = 2.0**50
    assert ckks.weight_scale(old, 30) is None
    weights = [ts.ckks_vector(old, [0.5] * 4096) for _ in range(30)]
    with pytest.raises(WeakKeyError, match="unseen keys new"):
        PartialScorer(old, weights)
    with pytest.raises(WeakKeyError):
        require_smudging(old, weights)


def test_weights_at_the_contexts_own_scale_are_refused_on_the_wide_key(ctx):
    # An analyst (quick-start) encrypting at 2^50 instead of ckks.weight_scale: the
    # weights' noise would be too large a share for any flood within 1e-6.
    weights = [ts.ckks_vector(ctx, [0.5] * ckks.PARAMS.slots) for _ in range(30)]
    with pytest.raises(WeakKeyError, match="30 bits"):
        PartialScorer(ctx, weights)


def test_the_cache_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("UNSEEN_ENCODED_CACHE_MB", "0")
    assert EncodedCache().capacity == 0
    monkeypatch.setenv("UNSEEN_ENCODED_CACHE_MB", "3")
    assert EncodedCache().capacity == 3 << 20
    monkeypatch.setenv("UNSEEN_ENCODED_CACHE_MB", "lots")
    assert EncodedCache().capacity == 64 << 20


def test_one_models_cached_columns_are_not_anothers(ctx):
    # A hit would be faster: it must not tell one analyst what another scored.
    weights = _weights(ctx, [1.0])
    cache = EncodedCache(1 << 26)
    column = np.full((ckks.PARAMS.slots, 1), 0.5)
    PartialScorer(ctx, weights, cache, b"model-a").products(column)
    PartialScorer(ctx, weights, cache, b"model-b").products(column)
    assert (cache.hits, cache.misses) == (0, 2)
    PartialScorer(ctx, weights, cache, b"model-a").products(column)
    assert (cache.hits, cache.misses) == (1, 2)
