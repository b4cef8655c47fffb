"""Vertical logistic regression: labels at the bank, features at holders, no rotations.

The protocol (docs/training.md has what each party sees):

- The bank holds the labels, the CKKS secret key and the intercept ``b``;
  holder ``h`` holds its features ``X_h``, whitened with its own statistics
  (:class:`Whitening`), and its weights ``w_h``,
  which never leave it. The logistic link is replaced by its first-order Taylor
  expansion at 0, ``sigmoid(z) ≈ 0.5 + z/4``, so the residual is linear:
  ``d_i = 0.5 + (b + Σ_h x_hi·w_h)/4 - y_i``.
- Per iteration and mini-batch, the bank encrypts its part ``0.5 + b/4 - y_i``
  and each holder encrypts its ``x_hi·w_h/4`` under the bank's public key; the
  key-less coordinator adds them into ``Enc(d)``, which goes to the holders only.
- A gradient ``Σ_i x_ij·d_i`` is a sum over entities, i.e. over slots, which
  would need rotations (Galois keys, ~35 MB). Instead each holder multiplies
  ``Enc(d)`` slot-wise by its plaintext feature column and adds a random mask
  per slot; the bank decrypts and sums the slots *in plaintext*, which gives it
  ``g_j + s_j`` where ``s_j`` (the mask's sum) only the holder knows. The holder
  subtracts ``s_j`` and updates its own weights. Several features share one
  ciphertext: entities are laid out ``replicas`` times (:class:`Layout`), one
  feature per replica segment, so small batches cost few ciphertexts.
- The intercept's gradient ``mean(d)`` reaches the bank the same way through the
  first holder, with a mask whose slots sum to zero: the bank learns the batch
  mean of ``d`` and nothing per entity.
- Early stopping: the holders send ``Enc(x_hi·w_h)`` for the bank's validation
  entities, the coordinator adds them, and the bank computes the validation
  log-loss from the joint scores — scores of entities whose weights it never knows.

The parties here exchange serialised ciphertexts only (``bytes``), so a
transport (gRPC through the coordinator) relays them unchanged.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tenseal as ts

from unseen.engine.crypto import ckks
from unseen.engine.errors import PlanError

__all__ = [
    "MIN_BATCH",
    "BankTrainer",
    "HolderTrainer",
    "Layout",
    "TrainSpec",
    "Whitening",
    "batch_indices",
    "class_weights",
    "log_loss",
    "mask_scale",
    "plaintext_training",
    "standardise",
    "sum_ciphertexts",
]

# Slot masks are uniform in ±2^MASK_BITS: large against a product x·c·d/|B|
# (|x| ≲ 10 after whitening, |d| ≲ 2, class weights c ≲ 4 at 1 % positives),
# small enough that CKKS at scale 2^50 keeps the decrypted slot sums exact to ~1e-10
# (mask_scale shrinks both on a key without room for them).
MASK_BITS = 16

# The fewest entities a batch (and a training set) may hold; see TrainSpec.
MIN_BATCH = 10


@dataclass(frozen=True)
class TrainSpec:
    """The public settings of a training job (both the bank and the holders know them)."""

    iterations: int = 30
    learning_rate: float = 0.5
    l2: float = 0.0
    batch_size: int = 0  # 0: the whole training set every iteration
    patience: int = 0  # early stopping: iterations without validation gain (0: off)
    seed: int = 0  # the public seed of the batch order
    # Class weight of a negative (label 0) against a positive's 1 (1: unweighted).
    # The Taylor objective's optimum ranks as least squares does, which class
    # imbalance (~9 % defaults) pulls away from the logistic optimum; weighting
    # negatives 0.25 keeps the AUC within 0.003 below exact logistic regression
    # on every seed tried (docs/training.md, "Accuracy"; unweighted: up to 0.009).
    # The weights depend on the labels, so they travel encrypted (BankTrainer.label_part).
    negative_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.learning_rate <= 0 or self.l2 < 0:
            raise PlanError("training needs iterations ≥ 1, a positive rate and l2 ≥ 0")
        if self.batch_size < 0 or self.patience < 0:
            raise PlanError("batch size and patience are ≥ 0")
        if not 0 < self.negative_weight <= 1:
            raise PlanError("the negative class weight is in (0, 1]")
        if 0 < self.batch_size < MIN_BATCH:
            # A holder learns X_hᵀd of every batch: over a handful of entities that
            # would be close to their residuals, i.e. to the bank's labels.
            raise PlanError(f"a batch holds at least {MIN_BATCH} entities")

    @property
    def weighted(self) -> bool:
        """Class-weighted: the residual is ``Enc(c)·(…)``, one more CKKS level."""
        return self.negative_weight != 1.0

    @property
    def product_depth(self) -> int:
        """Rescales a masked product has been through when the bank decrypts it."""
        return 2 if self.weighted else 1


def class_weights(labels: np.ndarray, spec: TrainSpec, training: np.ndarray) -> np.ndarray:
    """Per-entity weights ``c_i``: 1 for a positive, ``negative_weight`` for a negative,
    divided by their mean over the whole ``training`` set's labels.

    Normalised to mean 1, the weighted objective's curvature is the unweighted
    one's, so a learning rate means the same with or without weights (unnormalised,
    negatives at 0.25 with ~9 % positives would shrink every step about threefold).
    The normaliser depends on the labels too; it travels only inside ``Enc(c)``.
    """
    raw = np.where(training > 0.5, 1.0, spec.negative_weight)
    return np.where(labels > 0.5, 1.0, spec.negative_weight) / float(raw.mean())


def mask_scale(ctx: ts.Context, depth: int) -> tuple[float, float]:
    """``(bound, factor)`` of the slot masks at a product of ``depth`` rescales.

    A decrypted slot must stay below ``q/(2·scale)`` where ``q`` is the modulus
    left after ``depth`` rescales. The default key (N = 16384, 180 bits left after
    two rescales) has ample room: ``factor`` is 1. An N = 8192 key (60 + 50 + 50
    bits, scale 2^50) has 2^59 after one rescale but only 2^9 after two (the
    class-weighted round): there the masks keep their ±2^MASK_BITS ratio to the
    signal instead — the holder multiplies its column by ``factor < 1`` and masks
    with ``bound = factor·2^MASK_BITS``; both parties divide the sums by ``factor``
    (CKKS noise then weighs 1/factor more: ~1e-7 on the weights, not ~1e-9).
    Both compute it from the (public) parameters, so they agree.
    """
    data = ctx.seal_context().data
    level = data.first_context_data()
    for _ in range(depth):
        following = level.next_context_data()
        if following is None:
            raise PlanError("the registered key has too few CKKS levels for this training")
        level = following
    room = level.total_coeff_modulus_bit_count() - math.log2(ctx.global_scale) - 1
    bits = min(float(MASK_BITS), math.floor(room) - 1.0)
    if bits < 4:
        raise PlanError("the registered key leaves no room for the training masks")
    return 2.0**bits, 2.0 ** (bits - MASK_BITS)


def batch_indices(n: int, spec: TrainSpec, iteration: int) -> np.ndarray:
    """The training rows of one iteration, from the public seed (every party computes it)."""
    size = spec.batch_size if 0 < spec.batch_size < n else n
    if size == n:
        return np.arange(n)
    per_epoch = -(-n // size)
    epoch, step = divmod(iteration, per_epoch)
    order = np.random.default_rng([spec.seed, epoch]).permutation(n)
    return np.sort(order[step * size : (step + 1) * size])


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale by the training rows' own mean and deviation (per holder)."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return [(m - mean) / std for m in (train, *others)]


# Added to the correlation matrix before whitening: keeps a constant or (nearly)
# collinear column finite, its whitened variance at most 1 (mask precision
# assumes |x| ≲ 10), at no visible cost to the fit.
WHITENING_RIDGE = 1e-6


@dataclass(frozen=True)
class Whitening:
    """A holder's own decorrelating transform ``z = (x - mean) @ matrix``.

    Gradient descent on the Taylor objective converges in about as many steps
    as the condition number of the features' covariance, and a holder's features
    are often strongly correlated (revenue last year and this year, staff then
    and now): standardised, the credit features needed ~200 iterations to reach
    the AUC that 10 reach whitened. Each holder whitens its own block with its
    own training rows' statistics (the Cholesky factor of its correlation
    matrix: unique, so the bank's plaintext check reproduces it exactly), which
    reveals nothing and leaves the model's span, hence its optimum, unchanged;
    only correlations *between* holders are left for the iterations.
    """

    mean: np.ndarray
    matrix: np.ndarray

    @classmethod
    def of(cls, train: np.ndarray) -> Whitening:
        mean = train.mean(axis=0)
        std = train.std(axis=0)
        std[std == 0] = 1.0
        scaled = (train - mean) / std
        width = train.shape[1]
        corr = scaled.T @ scaled / max(len(train), 1) + WHITENING_RIDGE * np.eye(width)
        lower = np.linalg.cholesky(corr)
        # z = s @ L^-T, so that cov(z) = L^-1 corr L^-T = I (up to the ridge).
        inverse = np.linalg.solve(lower, np.eye(width)).T
        return cls(mean, inverse / std[:, None])

    def apply(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((rows - self.mean) @ self.matrix)


def log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean logistic loss of linear scores ``z`` (numerically stable)."""
    return float(np.mean(np.logaddexp(0.0, scores) - labels * scores))


@dataclass(frozen=True)
class Layout:
    """Entities of a batch block in ``width`` slots, repeated ``replicas`` times.

    Replica ``r`` of a holder's product ciphertext carries feature ``r`` of a
    group, so one ciphertext serves ``replicas`` features and no rotation is needed.
    """

    width: int
    replicas: int
    slots: int

    @classmethod
    def for_batch(cls, size: int, slots: int) -> Layout:
        width = min(size, slots)
        return cls(width, slots // width, slots)

    def blocks(self, size: int) -> list[slice]:
        return [slice(s, min(s + self.width, size)) for s in range(0, size, self.width)]

    def spread(self, values: np.ndarray) -> np.ndarray:
        """One block's values in every replica segment (zeros pad a short block)."""
        out = np.zeros(self.slots)
        for r in range(self.replicas):
            out[r * self.width : r * self.width + len(values)] = values
        return out

    def columns(self, block: np.ndarray) -> list[np.ndarray]:
        """A block's feature columns, ``replicas`` per slot vector (zeros elsewhere)."""
        rows, features = block.shape
        out = []
        for start in range(0, features, self.replicas):
            vector = np.zeros(self.slots)
            for r, j in enumerate(range(start, min(start + self.replicas, features))):
                vector[r * self.width : r * self.width + rows] = block[:, j]
            out.append(vector)
        return out

    def segment_sums(self, values: np.ndarray, count: int) -> np.ndarray:
        """The sum of each replica segment's first ``count`` slots."""
        return np.array(
            [values[r * self.width : r * self.width + count].sum() for r in range(self.replicas)]
        )


def _groups(features: int, replicas: int) -> int:
    return -(-features // replicas)


def sum_ciphertexts(public: bytes, parts: Sequence[Sequence[bytes]], depth: int = 0) -> list[bytes]:
    """The coordinator's step: add every party's ciphertexts position by position.

    It needs only the public context; ciphertexts of another key, shape or
    level (``depth`` rescales) are refused.
    """
    ctx = ckks.load_public_context(public)
    slots = ckks.slot_count(ctx)
    counts = {len(p) for p in parts}
    if len(counts) != 1:
        raise PlanError("the parties sent different numbers of ciphertexts")
    total = []
    for position in range(counts.pop()):
        vectors = [ckks.load_ciphertext(ctx, p[position], slots, depth=depth) for p in parts]
        total.append(bytes(ckks.add_all(vectors).serialize()))
    return total


def _times_plain(ctx: ts.Context, vector: ts.CKKSVector, values: np.ndarray) -> ts.CKKSVector:
    """``vector·values`` one level down, even when ``values`` encode to zero.

    TenSEAL answers a product with an all-zero plaintext (a holder's first
    partial, when its weights are still zero) with a fresh encryption of zero
    at the input's level; the coordinator would refuse its level. An encryption
    of zero times ones is the same value at the expected level.
    """
    product = vector * values.tolist()
    data = ctx.seal_context().data
    before = data.get_context_data(vector.ciphertext()[0].parms_id()).chain_index()
    after = data.get_context_data(product.ciphertext()[0].parms_id()).chain_index()
    if after == before:
        product = ckks.encrypt(ctx, np.zeros(len(values))) * np.ones(len(values)).tolist()
    return product


@dataclass
class HolderTrainer:
    """One holder's side: its whitened features, its weights and its open masks."""

    name: str
    public: bytes
    train: np.ndarray  # training rows (the aligned ids, in the bank's order) by features
    validation: np.ndarray
    spec: TrainSpec
    carries_intercept: bool = False
    weights: np.ndarray = field(init=False)
    history: list[np.ndarray] = field(init=False, default_factory=list)
    _ctx: ts.Context = field(init=False, repr=False)
    _mask_sums: np.ndarray | None = field(init=False, default=None, repr=False)
    _factor: float = field(init=False, default=1.0, repr=False)

    def __post_init__(self) -> None:
        if self.train.ndim != 2 or self.validation.shape[1:] != self.train.shape[1:]:
            raise PlanError(f"holder {self.name}: training and validation features differ")
        if len(self.train) < MIN_BATCH:
            raise PlanError(f"a training set holds at least {MIN_BATCH} entities")
        self.whitening = Whitening.of(self.train)
        self.mean = self.whitening.mean  # what an entity without rows is scored as
        self.train = self.whitening.apply(self.train)
        self.validation = self.whitening.apply(self.validation)
        self.weights = np.zeros(self.train.shape[1])
        self._ctx = ckks.load_public_context(self.public)
        self.slots = ckks.slot_count(self._ctx)

    @property
    def features(self) -> int:
        return int(self.train.shape[1])

    def _layout(self, size: int) -> Layout:
        return Layout.for_batch(size, self.slots)

    def partial(self, iteration: int, weights: Sequence[bytes] = ()) -> list[bytes]:
        """``Enc(x_i·w/4)`` for the iteration's batch, one ciphertext per block.

        Class-weighted, the bank's ``Enc(c)`` (one per block) comes with the
        call and the holder returns ``Enc(c)·(x_i·w/4)`` instead (ciphertext
        times plaintext: no relinearisation key), re-randomised. It never sees a ``c_i``.
        """
        rows = self.train[batch_indices(len(self.train), self.spec, iteration)]
        layout = self._layout(len(rows))
        pieces = rows @ self.weights / 4.0
        blocks = layout.blocks(len(rows))
        if not self.spec.weighted:
            if weights:
                raise PlanError(f"holder {self.name}: class weights sent to an unweighted job")
            return [
                bytes(ckks.encrypt(self._ctx, layout.spread(pieces[b])).serialize()) for b in blocks
            ]
        if len(weights) != len(blocks):
            raise PlanError(f"holder {self.name}: expected {len(blocks)} class-weight ciphertexts")
        out = []
        for block, data in zip(blocks, weights, strict=True):
            c = ckks.load_ciphertext(self._ctx, data, self.slots, depth=0)
            product = _times_plain(self._ctx, c, layout.spread(pieces[block]))
            # The coordinator relayed Enc(c), and a ciphertext-plaintext product is
            # deterministic: re-randomised, it confirms no guess of these partial scores.
            out.append(bytes(ckks.rerandomize(self._ctx, product).serialize()))
        return out

    def masked_products(self, iteration: int, residual: Sequence[bytes]) -> list[bytes]:
        """``Enc(d)·x_j/|B| + mask`` per block and feature group (the intercept's
        constant column last, with a zero-sum mask, if this holder carries it)."""
        rows = self.train[batch_indices(len(self.train), self.spec, iteration)]
        layout = self._layout(len(rows))
        blocks = layout.blocks(len(rows))
        if len(residual) != len(blocks):
            raise PlanError(f"holder {self.name}: expected {len(blocks)} residual ciphertexts")
        bound, factor = mask_scale(self._ctx, self.spec.product_depth)
        self._factor = factor
        columns = self.features + (1 if self.carries_intercept else 0)
        rng = np.random.default_rng(secrets.randbits(128))
        sums = np.zeros(_groups(columns, layout.replicas) * layout.replicas)
        out = []
        for block, data in zip(blocks, residual, strict=True):
            d = ckks.load_ciphertext(self._ctx, data, self.slots, depth=self.spec.product_depth - 1)
            values = rows[block]
            if self.carries_intercept:
                values = np.hstack([values, np.ones((len(values), 1))])
            for g, column in enumerate(layout.columns(values * (factor / len(rows)))):
                mask = np.zeros(self.slots)
                for r in range(layout.replicas):
                    j = g * layout.replicas + r
                    if j >= columns:
                        break
                    seg = slice(r * layout.width, r * layout.width + len(values))
                    noise = rng.uniform(-bound, bound, len(values))
                    if self.carries_intercept and j == columns - 1:
                        noise -= noise.mean()  # zero-sum: the bank learns mean(d) exactly
                    mask[seg] = noise
                    sums[j] += noise.sum()
                product = d * column.tolist() + mask.tolist()
                out.append(bytes(product.serialize()))
        self._mask_sums = sums[:columns]
        return out

    def update(self, masked_gradient: np.ndarray) -> None:
        """Unmask the gradient the bank returned and take one step (L2 on weights)."""
        if self._mask_sums is None or len(masked_gradient) != self.features:
            raise PlanError(f"holder {self.name}: a gradient without an open round")
        gradient = (masked_gradient - self._mask_sums[: self.features]) / self._factor
        self._mask_sums = None
        self.weights = self.weights - self.spec.learning_rate * (
            gradient + self.spec.l2 * self.weights
        )
        self.history.append(self.weights.copy())

    def validation_partial(self) -> list[bytes]:
        """``Enc(x_i·w)`` for the bank's validation entities, for its early stopping."""
        layout = Layout(self.slots, 1, self.slots)
        pieces = self.validation @ self.weights
        return [
            bytes(ckks.encrypt(self._ctx, layout.spread(pieces[b])).serialize())
            for b in layout.blocks(len(pieces))
        ]

    def keep(self, iteration: int) -> None:
        """Adopt the weights after ``iteration`` (0-based), the bank's early-stopping pick."""
        self.weights = self.history[iteration].copy()
        del self.history[iteration + 1 :]

    def predict(self, rows: np.ndarray) -> list[bytes]:
        """``Enc(x_i·w)`` for new entities, whitened with the training statistics
        (joint prediction: the coordinator adds the holders' pieces, the bank decrypts)."""
        if rows.ndim != 2 or rows.shape[1] != self.features:
            raise PlanError(f"holder {self.name}: expected {self.features} features per entity")
        pieces = self.whitening.apply(rows) @ self.weights
        layout = Layout(self.slots, 1, self.slots)
        return [
            bytes(ckks.encrypt(self._ctx, layout.spread(pieces[b])).serialize())
            for b in layout.blocks(len(pieces))
        ]

    def abort(self) -> None:
        """Drop the job: the weights and their history are forgotten."""
        self.weights = np.zeros(self.features)
        self.history.clear()
        self._mask_sums = None

    def weight_digest(self) -> str:
        """What a holder signs for the lineage record: SHA-256 of its weights."""
        return hashlib.sha256(np.asarray(self.weights, dtype="<f8").tobytes()).hexdigest()


@dataclass
class BankTrainer:
    """The bank's side: labels, the secret key and the intercept."""

    secret: ts.Context
    labels: np.ndarray  # of the training entities, in their aligned order
    validation_labels: np.ndarray
    spec: TrainSpec
    intercept: float = 0.0
    history: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = ckks.slot_count(self.secret)

    def label_part(self, iteration: int) -> list[bytes]:
        """``Enc(0.5 + b/4 - y_i)`` for the iteration's batch.

        Class-weighted: ``Enc(c_i·(0.5 + b/4 - y_i))`` brought to the holders'
        level (times a plaintext of ones), then ``Enc(c_i)`` — one ciphertext per
        block each, the class weights last. Everything label-dependent is
        encrypted; a holder multiplies ``Enc(c)`` by its own piece.
        """
        labels = self.labels[batch_indices(len(self.labels), self.spec, iteration)]
        layout = Layout.for_batch(len(labels), self.slots)
        blocks = layout.blocks(len(labels))
        part = 0.5 + self.intercept / 4.0 - labels
        if not self.spec.weighted:
            return [
                bytes(ckks.encrypt(self.secret, layout.spread(part[b])).serialize()) for b in blocks
            ]
        c = class_weights(labels, self.spec, self.labels)
        ones = [1.0] * self.slots
        weighted = [
            bytes((ckks.encrypt(self.secret, layout.spread((c * part)[b])) * ones).serialize())
            for b in blocks
        ]
        return weighted + [
            bytes(ckks.encrypt(self.secret, layout.spread(c[b])).serialize()) for b in blocks
        ]

    def open_gradients(
        self, iteration: int, products: Sequence[bytes], features: int, intercept: bool
    ) -> np.ndarray:
        """Decrypt one holder's masked products and sum slots: its masked gradient.

        From the holder that carries the intercept the last column is the
        (zero-sum masked) mean residual: the bank updates ``b`` with it.
        """
        size = len(batch_indices(len(self.labels), self.spec, iteration))
        layout = Layout.for_batch(size, self.slots)
        blocks = layout.blocks(size)
        columns = features + (1 if intercept else 0)
        groups = _groups(columns, layout.replicas)
        if len(products) != groups * len(blocks):
            raise PlanError(f"expected {groups * len(blocks)} gradient ciphertexts")
        _, factor = mask_scale(self.secret, self.spec.product_depth)
        sums = np.zeros(groups * layout.replicas)
        for index, data in enumerate(products):
            block = blocks[index // groups]
            g = index % groups
            values = ckks.decrypt(self.secret, data)
            seg = layout.segment_sums(values, block.stop - block.start)
            sums[g * layout.replicas : (g + 1) * layout.replicas] += seg
        if intercept:
            step = sums[columns - 1] / factor
            self.intercept -= self.spec.learning_rate * step
            self.history.append(self.intercept)
        return sums[:features]

    def validation_loss(self, summed: Sequence[bytes]) -> float:
        """The log-loss of the joint validation scores ``b + Σ_h x_hi·w_h``."""
        n = len(self.validation_labels)
        if n == 0:
            return math.nan
        values = np.concatenate([ckks.decrypt(self.secret, c) for c in summed])[:n]
        loss = log_loss(values + self.intercept, self.validation_labels)
        self.losses.append(loss)
        return loss

    def should_stop(self) -> bool:
        """Early stopping: no validation gain for ``patience`` iterations."""
        p = self.spec.patience
        if p == 0 or len(self.losses) <= p:
            return False
        return min(self.losses[-p:]) >= min(self.losses[:-p])

    def best_iteration(self) -> int:
        return int(np.argmin(self.losses)) if self.losses and self.spec.patience else -1


def plaintext_training(
    blocks: Sequence[np.ndarray], labels: np.ndarray, spec: TrainSpec, iterations: int
) -> tuple[list[np.ndarray], float]:
    """The same Taylor-approximated objective and updates on pooled plaintext
    (each block whitened by its own training statistics): the oracle."""
    scaled = [Whitening.of(b).apply(b) for b in blocks]
    weights = [np.zeros(b.shape[1]) for b in scaled]
    intercept = 0.0
    for t in range(iterations):
        rows = batch_indices(len(labels), spec, t)
        z = intercept + sum(x[rows] @ w for x, w in zip(scaled, weights, strict=True))
        d = class_weights(labels[rows], spec, labels) * (0.5 + z / 4.0 - labels[rows])
        grads = [x[rows].T @ d / len(rows) for x in scaled]
        weights = [
            w - spec.learning_rate * (g + spec.l2 * w) for w, g in zip(weights, grads, strict=True)
        ]
        intercept -= spec.learning_rate * float(d.mean())
    return weights, intercept
