"""In-process baselines for scoring: the HE kernel floor, its pipeline, and numpy.

The *kernel floor* is the least CKKS work any protocol of this shape must do:
``ceil(entities / slots)`` blocks (8192 slots at the default key) times
``features`` ciphertext x plaintext products, timed alone in one process
with the plaintext columns prepared beforehand — nothing else. Two floors:
TenSEAL's ``CKKSVector.mul`` (which encodes, multiplies and rescales every
product; the figure the bench reported first) and the SEAL evaluator path the holders use
(``unseen.engine.crypto.partials``: encode at the weight's level, ``multiply_plain``
without rescaling, add, one rescale per block). The *pipeline* times every HE step of the real
protocol in one process, block by block (holders' products, additions,
re-randomisation and serialisation; the coordinator's loads, sums and
serialisation; the analyst's load and decryption), which shows where the
gap between the floor and the end-to-end time is spent.

Issue 11 added two figures beside the floors: the cost of flooding one block's
partial score (:func:`flood_per_block`: sampling, RNS reduction, NTT, add) and
the SEAL floor when every feature column is already encoded
(:func:`sealapi_floor` with ``cached=True``: what the encoded-column cache buys
a repeated request).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from unseen.bench.measure import Stat, timings
from unseen.engine.crypto import ckks
from unseen.engine.crypto.encodings import EncodedCache
from unseen.engine.crypto.flooding import Flooder
from unseen.engine.crypto.partials import PartialScorer

__all__ = ["flood_per_block", "kernel_floor", "numpy_scores", "pipeline", "sealapi_floor"]


def _setup(
    features: int, blocks: int, seed: int, smudging: bool = False
) -> tuple[ts.Context, list[ts.CKKSVector], list[list[list[float]]]]:
    """A key, weights and two blocks of columns. ``smudging``: weights at the scale
    ``ckks.weight_scale`` picks, as the holders' scorer requires (TenSEAL's own
    ``mul`` path keeps the context's scale: its floor is timing only)."""
    ctx = ckks.new_secret_context()
    slots = ckks.PARAMS.slots
    rng = np.random.default_rng(seed)
    scale = ckks.weight_scale(ctx, features) if smudging else None
    weights = [
        ckks.encrypt(ctx, np.full(slots, float(w)), scale) for w in rng.normal(size=features)
    ]
    # A product's cost does not depend on the values: two distinct blocks, reused.
    lists = [
        [rng.uniform(-1, 1, slots).tolist() for _ in range(features)] for _ in range(min(blocks, 2))
    ]
    return ctx, weights, lists


def kernel_floor(entities: int, features: int, runs: int, seed: int = 11) -> Stat:
    """Seconds for the ``blocks x features`` products alone (median of ``runs``)."""
    blocks = math.ceil(entities / ckks.PARAMS.slots)
    _, weights, lists = _setup(features, blocks, seed)

    def products() -> None:
        for block in range(blocks):
            columns = lists[block % len(lists)]
            for weight, column in zip(weights, columns, strict=True):
                weight.mul(column)

    stat = timings(products, runs)
    stat.note = f"{blocks} blocks x {features} products in one process"
    return stat


def sealapi_floor(
    entities: int, features: int, runs: int, seed: int = 11, cached: bool = False
) -> Stat:
    """Seconds for the same products through SEAL's evaluator, one rescale per block.

    With ``cached``, every column's plaintext is already in the encoded-column
    cache (one untimed warm-up run): the products, additions and rescale only.
    """
    blocks = math.ceil(entities / ckks.PARAMS.slots)
    ctx, weights, lists = _setup(features, blocks, seed, smudging=True)
    scorer = PartialScorer(ctx, weights, EncodedCache(1 << 30) if cached else None)
    matrices = [np.array(columns).T for columns in lists]

    def products() -> None:
        for block in range(blocks):
            scorer.products(matrices[block % len(matrices)])

    stat = timings(products, runs, warmup=1 if cached else 0)
    stat.note = f"{blocks} blocks x {features} products, one rescale per block" + (
        ", columns already encoded" if cached else ""
    )
    return stat


def flood_per_block(runs: int, seed: int = 11) -> Stat:
    """Seconds to flood one block's partial score (at the width the holders use)."""
    ctx, weights, lists = _setup(30, 1, seed, smudging=True)
    scorer = PartialScorer(ctx, weights)
    cipher = scorer.products(np.array(lists[0]).T)
    limbs = cipher.coeff_modulus_size()
    seal = ctx.seal_context().data
    flooder = Flooder(seal, sealapi.Evaluator(seal))
    stat = timings(lambda: flooder.flood(cipher, scorer.flood.bits), runs, warmup=1)
    stat.note = (
        f"uniform noise of 2^{scorer.flood.bits} in {ckks.PARAMS.poly_modulus_degree} "
        f"coefficients x {limbs} limbs, s = {scorer.flood.security:.1f} bits at 30 features"
    )
    return stat


def pipeline(entities: int, features: Sequence[int]) -> dict[str, float]:
    """Seconds per HE step of the whole protocol in one process (one run).

    ``features`` gives each holder's feature count. Steps: ``products``,
    ``additions``, ``rerandomise``, ``serialise`` (holders), ``coordinator``
    (load with checks, sum, serialise), ``analyst`` (load, decrypt).
    """
    slots = ckks.PARAMS.slots
    blocks = math.ceil(entities / slots)
    total = sum(features)
    ctx, weights, lists = _setup(total, blocks, 13)
    public = ts.context_from(ckks.public_bytes(ctx))
    steps = dict.fromkeys(
        ("products", "additions", "rerandomise", "serialise", "coordinator", "analyst"), 0.0
    )
    clock = time.perf_counter
    for block in range(blocks):
        columns = lists[block % len(lists)]
        partials: list[bytes] = []
        start = 0
        for count in features:
            began = clock()
            terms = [weights[j].mul(columns[j]) for j in range(start, start + count)]
            steps["products"] += clock() - began
            began = clock()
            partial = terms[0]
            for term in terms[1:]:
                partial.add_(term)
            steps["additions"] += clock() - began
            began = clock()
            partial = ckks.rerandomize(ctx, partial)
            steps["rerandomise"] += clock() - began
            began = clock()
            partials.append(bytes(partial.serialize()))
            steps["serialise"] += clock() - began
            start += count
        began = clock()
        loaded = [ckks.load_ciphertext(public, data, slots) for data in partials]
        combined = bytes(ckks.add_all(loaded).serialize())
        steps["coordinator"] += clock() - began
        began = clock()
        ckks.decrypt(ctx, combined)
        steps["analyst"] += clock() - began
    steps["total"] = sum(steps.values())
    steps["partial_bytes"] = float(len(partials[0]))
    return steps


def numpy_scores(matrix: np.ndarray, weights: np.ndarray, runs: int) -> Stat:
    """Seconds for the plaintext score ``matrix @ weights`` in numpy."""
    stat = timings(lambda: matrix @ weights, runs, warmup=1)
    stat.note = "matrix @ weights on the pooled plaintext features"
    return stat
