"""The analyst's client: compile, register the key and models once, decrypt, finish.

The only place the secret key is used. What it sends: the public context
(once per coordinator), typed plans, encrypted weights, entity ids and the
analyst's vouchers. What it receives: combined ciphertexts, the indices of
suppressed groups, the names of the holders whose answers are inside, and
the holders' signed ledger receipts (kept in ``Result.meta["receipts"]`` for
a supervisor). Everything else — decryption, exact recombination of limbs,
AVG/VAR/STDDEV, HAVING, ORDER BY, LIMIT, intercepts and links — happens here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from unseen.engine.crypto import bfv, ckks
from unseen.engine.crypto.flooding import check_weight_bound
from unseen.engine.crypto.keys import AnalystKey, load_or_create
from unseen.engine.errors import PlanError, RemoteError, WeakKeyError
from unseen.engine.governance.approval import ApprovedWeights
from unseen.engine.privacy.dp_result import cell_noise, dp_meta
from unseen.engine.privacy.masks import reduce_slots
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.compiled import CompiledQuery
from unseen.engine.query.finish import finish
from unseen.engine.query.layout import layout_for, unpack
from unseen.engine.query.model import FeatureSpec, Model, check_feature, model_fingerprint
from unseen.engine.query.plan import AggregatePlan, SlotCodec
from unseen.engine.query.result import Result
from unseen.engine.query.sql import compile_condition, compile_sql
from unseen.engine.training.align import Alignment, align_entities
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.training_client import (
    JointModel,
    model_holders,
    predict_jointly,
    train_jointly,
)
from unseen.engine.training.vertical_lr import TrainSpec
from unseen.engine.transport import serde
from unseen.engine.transport.peers import CoordinatorPeer, ModelUpload, ScoreStream, retry_not_found
from unseen.engine.transport.tls import TlsFiles

__all__ = ["AggregateReply", "Client", "feature_specs"]

_T = TypeVar("_T")
# Compiled queries a client remembers (by SQL text, for the catalog it holds).
_REMEMBERED_QUERIES = 64


@dataclass(frozen=True)
class AggregateReply:
    ciphertexts: list[bytes]
    suppressed: tuple[int, ...]
    holders: tuple[str, ...]
    receipts: tuple[str, ...]
    missing: tuple[str, ...] = ()  # holders left out of an allow_partial answer
    reasons: dict[int, str] = field(default_factory=dict)  # suppressed group -> why


class Client:
    """A connection to a coordinator with the analyst's key (and vouchers).

    Use as a context manager, or call :meth:`close`. ``vouchers`` are signed
    voucher lines; every request carries all of them and each holder uses
    the ones issued for it. ``allow_partial`` accepts an aggregate without the
    configured holders that are unavailable when it starts; such a result says
    so (``meta["partial"]`` and ``meta["missing_holders"]``). Without it, any
    unavailable holder fails the query.
    """

    def __init__(
        self,
        coordinator: str,
        key: AnalystKey | None = None,
        key_dir: Path | None = None,
        timeout: float | None = None,
        vouchers: Sequence[str] = (),
        tls: TlsFiles | None = None,
        allow_partial: bool = False,
    ):
        self.address = coordinator
        self.key = key if key is not None else load_or_create(key_dir)
        self.vouchers = list(vouchers)
        self.allow_partial = allow_partial
        self._peer = CoordinatorPeer(coordinator, tls, timeout)
        self._registered = False
        self.model_bytes_sent = 0
        # A query compiles against a catalog at most this old (one round trip saved).
        self.catalog_ttl = 5.0
        self._catalog: tuple[float, Catalog] | None = None
        # Compiled queries by SQL text, each with the catalog it was compiled against.
        self._compiled: OrderedDict[str, tuple[Catalog, CompiledQuery]] = OrderedDict()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def timeout(self) -> float | None:
        return self._peer.timeout

    @timeout.setter
    def timeout(self, seconds: float | None) -> None:
        self._peer.timeout = seconds

    def close(self) -> None:
        self._peer.close()

    # -- entity alignment (issue 15) --------------------------------------------------
    def align(self, holder: str, table: str, column: str, ids: Sequence[str]) -> Alignment:
        """Which of ``ids`` the holder has in ``table.column`` (PSI; see
        unseen.engine.training.align)."""
        return align_entities(
            self._peer, self.key.key_id, holder, table, column, ids, self.vouchers
        )

    def train(
        self,
        labels: Mapping[str, float],
        holders: Sequence[TrainFeatures],
        spec: TrainSpec,
        validation: float = 0.2,
    ) -> JointModel:
        """Train a logistic model on holders' features and these labels
        (unseen.engine.training.training_client)."""
        self.register_key()
        parts = self.derived_features(holders)
        return train_jointly(self._peer, self.key, labels, parts, spec, validation, self.vouchers)

    def predict(self, model: Mapping[str, Any], entities: Sequence[str]) -> Result:
        """Score entities with a jointly trained model (kind ``joint-logistic``)."""
        self.register_key()
        ids = [str(e) for e in entities]
        parts = self.derived_features(model_holders(model))
        scores, receipts = predict_jointly(self._peer, self.key, model, ids, self.vouchers, parts)
        return Result(
            ["entity", "score"],
            [[i, float(s)] for i, s in zip(ids, scores, strict=True)],
            {"kind": "joint-logistic", "receipts": [json.loads(r) for r in receipts]},
        )

    def derived_features(self, holders: Sequence[TrainFeatures]) -> list[TrainFeatures]:
        """Check each holder's derived features against the catalog (filters compiled
        as for a scorecard); plain columns pass unchanged."""
        if not any(h.derived for h in holders):
            return list(holders)
        catalog = self.catalog(refresh=False)
        out = []
        for part in holders:
            if part.derived:
                model = Model(entity=part.key, features=part.derived)
                part = replace(part, definitions=feature_specs(model, catalog))
            out.append(part)
        return out

    def _with_key(self, call: Callable[[], _T]) -> _T:
        """Run ``call``; if the coordinator lost the key (restart), register and retry once."""
        if not self._registered:
            self.register_key()
        return retry_not_found(call, lambda: self.register_key(force=True))

    # -- federation -------------------------------------------------------------
    def catalog(self, refresh: bool = True) -> Catalog:
        """The federation's merged catalog; ``refresh=False`` accepts one a few seconds old."""
        if not refresh and self._catalog is not None:
            fetched_at, catalog = self._catalog
            if time.monotonic() - fetched_at < self.catalog_ttl:
                return catalog
        catalog = self._peer.catalog()
        self._catalog = (time.monotonic(), catalog)
        return catalog

    def _compile_fresh(self, sql: str) -> tuple[Catalog, CompiledQuery]:
        """Compile against a recent catalog; if that fails, against a fresh one."""
        cached = self._catalog
        catalog = self.catalog(refresh=False)
        # The same text against the same catalog object compiles to the same plan:
        # a repeated query skips sqlglot (about a millisecond).
        remembered = self._compiled.get(sql)
        if remembered is not None and remembered[0] is catalog:
            self._compiled.move_to_end(sql)
            return catalog, remembered[1]
        try:
            compiled = self.compile(sql, catalog)
        except PlanError:
            if cached is None or cached[1] is not catalog:
                raise  # the catalog was just fetched: a fresh one would say the same
            fresh = self.catalog()
            return fresh, self.compile(sql, fresh)
        self._compiled[sql] = (catalog, compiled)
        while len(self._compiled) > _REMEMBERED_QUERIES:
            self._compiled.popitem(last=False)
        return catalog, compiled

    def register_key(self, force: bool = False) -> str:
        """Register the public context with the coordinator (and so every holder)."""
        if not force and self._peer.has_key(self.key.key_id):
            self._registered = True
            return self.key.key_id
        key_id = self._peer.register_key(self.key.public)
        if key_id != self.key.key_id:
            raise RemoteError("INTERNAL", "the coordinator named the key differently")
        self._registered = True
        return key_id

    # -- aggregates -------------------------------------------------------------
    def compile(self, sql: str, catalog: Catalog | None = None) -> CompiledQuery:
        codec = SlotCodec(slots=bfv.PARAMS.slots)
        return compile_sql(sql, catalog or self.catalog(), codec)

    def aggregate(self, plan: AggregatePlan) -> AggregateReply:
        """Send a plan; returns the combined ciphertexts and what came with them."""
        answer = self._with_key(
            lambda: self._peer.aggregate(
                self.key.key_id, plan, self.vouchers, allow_partial=self.allow_partial
            )
        )
        if answer.missing and not self.allow_partial:
            raise RemoteError("INTERNAL", "the coordinator left holders out unasked")
        return AggregateReply(
            answer.ciphertexts,
            answer.suppressed,
            answer.holders,
            answer.receipts,
            answer.missing,
            answer.reasons,
        )

    def query(self, sql: str) -> Result:
        """Answer one SELECT over the federation; see docs/architecture.md."""
        started = time.perf_counter()
        catalog, compiled = self._compile_fresh(sql)
        plan = compiled.plan
        table = catalog.table(plan.table)
        layout = layout_for(plan)
        reply = self.aggregate(plan)
        if len(reply.ciphertexts) != layout.ciphertexts:
            raise PlanError("the coordinator answered with the wrong number of ciphertexts")
        secret = self.key.aggregate_secret
        slots = np.concatenate([bfv.decrypt(secret, c) for c in reply.ciphertexts])
        # Holders' pairwise masks cancel modulo BFV's t in the sum of all answers.
        moments = unpack(plan, layout, reduce_slots(slots))
        meta = {
            "holders": list(reply.holders),
            "k": table.min_group_size if table is not None else None,
            "ciphertexts": len(reply.ciphertexts),
            "bytes_received": sum(len(c) for c in reply.ciphertexts),
            "key_id": self.key.key_id,
            "receipts": [json.loads(r) for r in reply.receipts],
            "elapsed_ms": 0.0,
            "partial": bool(reply.missing),
        }
        if reply.missing:
            meta["missing_holders"] = list(reply.missing)
        policy = table.dp if table is not None else None
        # The noise shares inside this answer: the table's hosts that answered.
        hosts = set(table.holders) if table is not None else set()
        holders = len(hosts & set(reply.holders)) or len(hosts) or 1
        noise = cell_noise(compiled, policy, holders) if policy is not None else None
        result = finish(compiled, moments, set(reply.suppressed), meta, noise, reply.reasons)
        if policy is not None:
            sds = result.meta.pop("noise_sd")
            result.meta["dp"] = dp_meta(compiled, policy, holders, sds, result.rows)
            # Each holder's charge receipt carries its budget after this query.
            result.meta["dp"]["budget"] = [
                r["privacy"] for r in result.meta["receipts"] if "privacy" in r
            ]
        result.meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    # -- scoring ----------------------------------------------------------------
    def feature_specs(self, model: Model, catalog: Catalog) -> tuple[FeatureSpec, ...]:
        """Check the model against the catalog and strip its weights for the holders."""
        return feature_specs(model, catalog)

    def register_model(
        self,
        model: Model,
        entities: Sequence[str],
        catalog: Catalog | None = None,
        approved: ApprovedWeights | None = None,
    ) -> tuple[str, list[str]]:
        """Register the model's encrypted weights once; returns its id and any receipts.

        Phase 1 asks the holders for a power-of-two bound ``2^e`` of each
        feature over ``entities``; phase 2 sends ``Enc(w * 2^e)`` (the holders
        use ``x / 2^e``), which keeps CKKS noise far below 1e-6 for features of
        any magnitude. A model already registered (same fingerprint) is reused.

        With ``approved`` (an issuer's :class:`ApprovedWeights`), its exponents and
        weight ciphertexts are registered as they are and phase 1 is skipped.
        """
        if not self._registered:
            self.register_key()
        catalog = catalog or self.catalog()
        specs = self.feature_specs(model, catalog)
        tag = ""
        if approved is not None:
            if approved.key_id != self.key.key_id:
                raise PlanError("the approved weights were encrypted for another analyst key")
            if len(approved.weights) != len(specs) or len(approved.exponents) != len(specs):
                raise PlanError("the approved weights do not match the model's features")
            tag = hashlib.sha256(b"".join(approved.weights)).hexdigest()
        model_id = model_fingerprint(self.key.salt, self.key.key_id, model, tag)
        if self._peer.has_model(self.key.key_id, model_id):
            return model_id, []
        receipts: list[str] = []
        if approved is not None:
            exponents, weights = list(approved.exponents), list(approved.weights)
        else:
            scale = ckks.weight_scale(self.key.secret, len(model.features))
            if scale is None:
                # Holders would refuse it (no flood of SECURITY_BITS fits this key): say so
                # before the preparation is charged.
                raise WeakKeyError(
                    "this key is too small for flooded scores (holders refuse it): "
                    "create a new key with 'unseen keys new' and have vouchers reissued"
                )
            exponents, receipts = self.prepare(specs, entities)
            slots = ckks.PARAMS.slots
            check_weight_bound([f.weight for f in model.features], exponents)
            weights = [
                bytes(
                    ckks.encrypt(
                        self.key.secret, np.full(slots, f.weight * 2.0**e), scale
                    ).serialize()
                )
                for f, e in zip(model.features, exponents, strict=True)
            ]
        self.model_bytes_sent = sum(len(w) for w in weights)
        upload = ModelUpload(self.key.key_id, model_id, specs, tuple(exponents), tuple(weights))
        return self._peer.register_model(upload), receipts

    def prepare(
        self, specs: Sequence[FeatureSpec], entities: Sequence[str]
    ) -> tuple[list[int], list[str]]:
        """Phase 1: per feature, the exponent ``e`` the holders report (and receipts).

        The exponents are whole-table bounds, the same for any entities; an
        issuer approving a model encrypts ``w * 2^e`` with them.
        """
        if not self._registered:
            self.register_key()
        exponents, receipts = self._peer.prepare_model(
            self.key.key_id, specs, list(entities), self.vouchers
        )
        return list(exponents), list(receipts)

    def score(
        self, model: Model, entities: Sequence[str], approved: ApprovedWeights | None = None
    ) -> Result:
        """Score ``entities`` (in order) with ``model``; rows are ``[entity, score]``.

        Under vouchers, ``approved`` is the issuer's encryption of the model's
        weights (holders refuse any other weight ciphertext). Nodes take at most
        ``serde.MAX_ENTITIES`` entities per request; more are scored in batches of
        that size, one request each, and joined in order.
        """
        if len(entities) > serde.MAX_ENTITIES:
            return self._score_in_batches(model, entities, approved)
        started = time.perf_counter()
        catalog = self.catalog()
        ids = list(entities)

        def run() -> tuple[str, list[str], ScoreStream]:
            model_id, prepared = self.register_model(model, ids, catalog, approved)
            stream = self._peer.score(self.key.key_id, model_id, ids, self.vouchers)
            return model_id, prepared, stream

        model_id, prepared, stream = self._with_key(run)
        slots = ckks.PARAMS.slots
        rows: list[list[Any]] = []
        received = 0
        for index, data in enumerate(stream.blocks()):
            received += len(data)
            chunk = ids[index * slots : (index + 1) * slots]
            linear = (ckks.decrypt(self.key.secret, data)[: len(chunk)] + model.intercept).tolist()
            rows.extend(
                [entity, model.apply_link(x)] for entity, x in zip(chunk, linear, strict=True)
            )
        if len(rows) != len(ids):
            raise RemoteError("INTERNAL", "the coordinator sent fewer score blocks than needed")
        meta = {
            "model_id": model_id,
            "holders": list(stream.holders),
            "entities": len(ids),
            "ciphertexts": stream.count,
            "bytes_received": received,
            "link": model.link,
            "receipts": [json.loads(r) for r in [*prepared, *stream.receipts]],
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return Result([model.entity, "score"], rows, meta)

    def _score_in_batches(
        self, model: Model, entities: Sequence[str], approved: ApprovedWeights | None
    ) -> Result:
        started = time.perf_counter()
        size = serde.MAX_ENTITIES
        parts = [
            self.score(model, entities[i : i + size], approved)
            for i in range(0, len(entities), size)
        ]
        meta = dict(parts[0].meta)
        for name in ("entities", "ciphertexts", "bytes_received"):
            meta[name] = sum(part.meta[name] for part in parts)
        meta["receipts"] = [r for part in parts for r in part.meta["receipts"]]
        meta["batches"] = len(parts)
        meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return Result(parts[0].columns, [row for part in parts for row in part.rows], meta)


def feature_specs(model: Model, catalog: Catalog) -> tuple[FeatureSpec, ...]:
    """Check a model against a catalog and strip its weights: the features as holders
    compute them (the analyst's client, and an issuer approving the model, both use it)."""
    specs = []
    for feature in model.features:
        table, column, key_column = check_feature(feature, model.key_of(feature), catalog)
        condition = None
        if feature.filter is not None:
            condition = compile_condition(feature.filter, table, catalog)
        specs.append(
            FeatureSpec(
                table=table.name,
                column=column.name,
                key=key_column.name,
                aggregate=feature.aggregate,
                filter=condition,
                transform=feature.transform,
                default=feature.default,
            )
        )
    return tuple(specs)
