"""Worker processes for a holder's HE work (CKKS scores, BFV aggregate answers).

TenSEAL holds the GIL for the whole of a ciphertext-plaintext product, so a
holder scoring many blocks in threads would use one core. Blocks are instead
computed in a pool of *spawned* worker processes (forking a process that runs
gRPC is unsafe). A model's public context and encrypted weights are written
once to a spool file; each worker loads it on first use and caches it, so a
task carries only the model id, the file's path and one block of features.
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
# Worker-process cache: model id -> its weights, ready for products.
_loaded: OrderedDict[str, PartialScorer] = OrderedDict()
# Worker-process cache: key id -> BFV public context (for aggregate encryption).
_contexts: dict[str, ts.Context] = {}
# Worker-process cache: encoded feature columns, by digest.
_encoded = EncodedCache()


def _load(model_id: str, path: str) -> PartialScorer:
    entry = _loaded.get(model_id)
    if entry is None:
        with open(path, "rb") as handle:
            public, weights = pickle.load(handle)  # noqa: S301 - our own spool file
        ctx = ts.context_from(public)
        entry = PartialScorer(
            ctx, [ts.ckks_vector_from(ctx, w) for w in weights], _encoded, model_id.encode()
        )
        _loaded[model_id] = entry
        while len(_loaded) > _CACHE_MODELS:
            _loaded.popitem(last=False)
    _loaded.move_to_end(model_id)
    return entry


def _work(
    model_id: str, path: str, block: np.ndarray, exponents: tuple[int, ...], slots: int
) -> bytes:
    return partial_score(_load(model_id, path), block, exponents, slots)


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
        for path in self._paths.values():
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
        path = self._spool / f"{_file_name(model.model_id)}.model"
        with open(path, "wb") as handle:
            pickle.dump((public, list(model.weights)), handle)
        self._paths[model.model_id] = path
        if self.workers:
            return  # the workers load their own copies; these would only hold memory
        with self._lock:
            self._inline[model.model_id] = PartialScorer(
                ctx, weights, self._encoded, model.model_id.encode()
            )
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
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(public)
            os.replace(tmp, path)
            self._paths[f"key:{key_id}"] = path
        return self._executor.submit(_encrypt, key_id, str(path), vectors).result()

    def unregister(self, model_id: str) -> None:
        """Forget an evicted model and remove its spool file."""
        path = self._paths.pop(model_id, None)
        if path is not None:
            path.unlink(missing_ok=True)
        with self._lock:
            self._inline.pop(model_id, None)

    def partials(
        self, model: HolderModel, blocks: Iterable[np.ndarray], slots: int
    ) -> Iterator[bytes]:
        """Ciphertexts for ``blocks`` in order; at most 2 blocks per worker in flight."""
        if not self.workers:
            with self._lock:
                scorer = self._inline[model.model_id]
            for block in blocks:
                yield partial_score(scorer, block, model.exponents, slots)
            return
        self.start()
        assert self._executor is not None
        path = str(self._paths[model.model_id])
        window: deque[Future[bytes]] = deque()
        for block in blocks:
            window.append(
                self._executor.submit(_work, model.model_id, path, block, model.exponents, slots)
            )
            if len(window) >= 2 * self.workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _file_name(name: str) -> str:
    """Spool file names are digests: ids come from the network and never name a path."""
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
