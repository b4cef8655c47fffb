"""Worker processes for a holder's HE work (CKKS scores, BFV aggregate answers).

TenSEAL holds the GIL for the whole of a ciphertext-plaintext product, so a
holder scoring many blocks in threads would use one core. Blocks are instead
computed in a pool of *spawned* worker processes (forking a process that runs
gRPC is unsafe). A model's public context and encrypted weights are written
once to a spool file; each worker loads it on first use and caches it, so a
task carries only the model's identity, the file's path and one block of features.
That identity (:func:`_identity`) is what the model *is* — analyst key, model id
and weight digests — never the model id alone: ids come from the network, and a
cache keyed by the id would let one analyst's weights, loaded under another
analyst's id, answer that other analyst's requests
(tests/attacks/test_analyst_scores_anothers_entities_under_a_borrowed_model_id.py).
With ``workers=0`` everything runs in the calling process (tests, tiny jobs).
Each process keeps one bounded cache of encoded feature columns
(unseen.engine.crypto.encodings) shared by all its models.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tenseal as ts

from unseen.engine.crypto import bfv, ckks
from unseen.engine.crypto.encodings import EncodedCache
from unseen.engine.crypto.partials import PartialScorer, require_smudging
from unseen.engine.data.scoring import HolderModel, partial_score

__all__ = ["ScoringPool"]

_CACHE_MODELS = 4
# Spooled BFV keys kept on disk (about 134 KB each); an evicted one is written again
# when its analyst next asks.
_MAX_KEY_FILES = 64
# Worker-process cache: model id -> its weights, ready for products.
_loaded: OrderedDict[str, PartialScorer] = OrderedDict()
# Worker-process cache: key id -> BFV public context (for aggregate encryption).
_contexts: dict[str, ts.Context] = {}
# Worker-process cache: encoded feature columns, by digest.
_encoded = EncodedCache()


def _identity(model: HolderModel) -> str:
    """What names a model in every cache: its key, id and weights, hashed.

    The encoded-feature cache is namespaced by it too, so no analyst's request
    can hit (and time) another analyst's entries by reusing that analyst's id.
    """
    digest = hashlib.sha256()
    for part in (model.key_id, model.model_id, *model.digests):
        digest.update(hashlib.sha256(part.encode("utf-8", "surrogatepass")).digest())
    if not model.digests:
        for weight in model.weights:
            digest.update(hashlib.sha256(weight).digest())
    return digest.hexdigest()


def _load(identity: str, path: str) -> PartialScorer:
    entry = _loaded.get(identity)
    if entry is None:
        with open(path, "rb") as handle:
            public, weights = pickle.load(handle)  # noqa: S301 - our own spool file
        ctx = ts.context_from(public)
        entry = PartialScorer(
            ctx, [ts.ckks_vector_from(ctx, w) for w in weights], _encoded, identity.encode()
        )
        _loaded[identity] = entry
        while len(_loaded) > _CACHE_MODELS:
            _loaded.popitem(last=False)
    _loaded.move_to_end(identity)
    return entry


def _work(
    identity: str, path: str, block: np.ndarray, exponents: tuple[int, ...], slots: int
) -> bytes:
    return partial_score(_load(identity, path), block, exponents, slots)


def _encrypt(key_id: str, path: str, vectors: list[np.ndarray]) -> list[bytes]:
    ctx = _contexts.get(key_id)
    if ctx is None:
        with open(path, "rb") as handle:
            ctx = ts.context_from(handle.read())
        _contexts[key_id] = ctx
        while len(_contexts) > _CACHE_MODELS:
            _contexts.pop(next(iter(_contexts)))
    return bfv.encrypt_all(ctx, vectors)


def _warm() -> int:
    return os.getpid()


class ScoringPool:
    """Compute partial-score ciphertexts block by block, in order, in parallel."""

    def __init__(self, workers: int = 0, spool: Path | None = None):
        self.workers = workers
        self._spool = spool or Path(tempfile.mkdtemp(prefix="unseen-spool-"))
        os.chmod(self._spool, 0o700)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._inline: OrderedDict[str, PartialScorer] = OrderedDict()
        self._encoded = EncodedCache()
        # BFV public keys spooled for the workers, most recently used last.
        self._keys: OrderedDict[str, Path] = OrderedDict()
        self.max_key_files = _MAX_KEY_FILES

    def start(self) -> None:
        """Start the workers now (their imports take a second) rather than on first use."""
        if self.workers and self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ProcessPoolExecutor(
                        self.workers, mp_context=multiprocessing.get_context("spawn")
                    )
                    for fut in [self._executor.submit(_warm) for _ in range(self.workers)]:
                        fut.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for path in [*self._paths.values(), *self._keys.values()]:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._spool.rmdir()

    def register(self, model: HolderModel, public: bytes, ctx: ts.Context) -> None:
        """Make a model available to the workers (a spool file) and, without any, inline.

        Refuses weights that are not fresh ciphertexts of a score block's size
        (``PARAMS.slots``, as the client, the coordinator and the blocks use,
        whatever the key's ring degree).
        """
        slots = ckks.PARAMS.slots
        weights = [ckks.load_ciphertext(ctx, w, slots, depth=0) for w in model.weights]
        # Before any worker sees the model: no flood below s = 30 (a stale N = 8192
        # key, or weights not at ckks.weight_scale) is ever computed.
        require_smudging(ctx, weights)
        identity = _identity(model)
        path = self._spool / f"{identity}.model"
        with open(path, "wb") as handle:
            pickle.dump((public, list(model.weights)), handle)
        with self._lock:
            old = self._paths.get(model.model_id)
            self._paths[model.model_id] = path
        if old is not None and old != path:
            old.unlink(missing_ok=True)
        if self.workers:
            return  # the workers load their own copies; these would only hold memory
        with self._lock:
            self._inline[identity] = PartialScorer(ctx, weights, self._encoded, identity.encode())
            while len(self._inline) > _CACHE_MODELS * 4:
                self._inline.popitem(last=False)

    def encrypt(
        self, key_id: str, public: bytes, ctx: ts.Context, vectors: list[np.ndarray]
    ) -> list[bytes]:
        """Encrypt aggregate slot vectors under an analyst's BFV public key (``public``), in a
        worker when there are any."""
        if not self.workers:
            return bfv.encrypt_all(ctx, vectors)
        self.start()
        assert self._executor is not None
        path = self._spool / f"{_file_name(key_id)}.bfv"
        if not path.exists():
            # A private temporary name: two first queries under one key may race here.
            fd, tmp = tempfile.mkstemp(dir=self._spool, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(public)
            os.replace(tmp, path)
        with self._lock:
            self._keys[key_id] = path
            self._keys.move_to_end(key_id)
            evicted = []
            # Bounded: any client may register keys, and each would leave a file.
            while len(self._keys) > self.max_key_files:
                evicted.append(self._keys.popitem(last=False)[1])
        for old in evicted:
            old.unlink(missing_ok=True)
        return self._executor.submit(_encrypt, key_id, str(path), vectors).result()

    def unregister(self, model_id: str) -> None:
        """Forget an evicted model and remove its spool file."""
        with self._lock:
            path = self._paths.pop(model_id, None)
            if path is not None:
                self._inline.pop(path.stem, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def partials(
        self, model: HolderModel, blocks: Iterable[np.ndarray], slots: int
    ) -> Iterator[bytes]:
        """Ciphertexts for ``blocks`` in order; at most 2 blocks per worker in flight."""
        identity = _identity(model)
        if not self.workers:
            with self._lock:
                scorer = self._inline[identity]
            for block in blocks:
                yield partial_score(scorer, block, model.exponents, slots)
            return
        self.start()
        assert self._executor is not None
        path = str(self._spool / f"{identity}.model")
        window: deque[Future[bytes]] = deque()
        for block in blocks:
            window.append(
                self._executor.submit(_work, identity, path, block, model.exponents, slots)
            )
            if len(window) >= 2 * self.workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _file_name(name: str) -> str:
    """Spool file names are digests: ids come from the network and never name a path."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
