"""Training jobs at the nodes: a holder's side (:class:`HolderJobs`) and the
coordinator's relay (:class:`CoordinatorJobs`) of vertical logistic regression.

A holder answers the steps of a job the coordinator forwards: ``start`` reads
its feature columns for the aligned entities (governed: voucher-checked and
ledgered, the columns used as ``score`` and the key as ``entity``), then every
iteration is one more governed use (ledgered with counts only, charged to the
voucher's quota: the job's iteration budget). Its weights never leave it;
``finish`` keeps them for joint prediction and reports their SHA-256.

The coordinator keeps, per job, a :class:`~unseen.engine.training.joint_training.LocalRelay`
over remote-holder proxies and the bank's public key: it adds ciphertexts and
relays, and holds no key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from unseen.engine.data.scoring import check_features, feature_blocks
from unseen.engine.errors import PlanError, PolicyError, UnseenError
from unseen.engine.governance.access import digest, score_reads
from unseen.engine.governance.lineage import sign_statement
from unseen.engine.governance.voucher import AccessRequest, SignedVoucher, entity_ids
from unseen.engine.training.joint_training import LocalRelay
from unseen.engine.training.train_job import (
    COORDINATOR_STEPS,
    HOLDER_STEPS,
    TrainAnswer,
    TrainCall,
    TrainFeatures,
    spec_from_json,
)
from unseen.engine.training.vertical_lr import HolderTrainer, sum_ciphertexts
from unseen.engine.transport.peers import HolderPeer
from unseen.nodes.alignment import IDENTIFIER_KINDS
from unseen.nodes.holders import as_holder_error

if TYPE_CHECKING:
    from unseen.engine.query.catalog import TableInfo
    from unseen.nodes.holder import HolderNode
    from unseen.nodes.holders import HolderSet

__all__ = ["CoordinatorJobs", "HolderJobs", "RemoteHolder"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Jobs a node keeps at once (each holds its features for the aligned entities).
MAX_JOBS = 8
# A job with no step for this long gives its place to a new one: a bank that starts
# MAX_JOBS jobs and walks away must not lock every other bank out of training
# (tests/attacks/test_abandoned_training_jobs_lock_out_other_banks.py).
JOB_IDLE_SECONDS = 900.0


# The one order of a round at a holder: which stages each step may follow. A
# step out of order (a second ``products`` for one iteration, an ``update``
# with no open round, ``validate`` twice) is refused: each would let whoever
# sends it learn a mask or shift the weights by an amount it knows.
_ORDER = {
    "partial": ("idle", "updated", "validated"),
    "products": ("partial",),
    "update": ("products",),
    "validate": ("updated",),
    "finish": ("idle", "updated", "validated"),
}


def require_coordinator(role: str | None) -> None:
    """Training steps reach a holder only from the coordinator.

    An analyst calling a holder directly could send its own "residual" (an
    encryption of zero) and read the masks back, then steer the weights by
    amounts it knows and read features off the validation scores. On mTLS the
    caller's certificate role decides; without TLS (quick-start on loopback)
    there is no role to check (docs/threat-model.md).
    """
    if role is not None and role != "coordinator":
        raise PolicyError(f"training steps reach a holder only through the coordinator, not {role}")


@dataclass
class _Job:
    trainer: HolderTrainer
    features: TrainFeatures
    key_id: str
    vouchers: tuple[str, ...]
    done: set[int] = field(default_factory=set)  # iterations already charged
    stage: str = "idle"  # where the job is in its round (see _ORDER)
    touched: float = field(default_factory=time.monotonic)  # its last step


@dataclass
class HolderJobs:
    """The training jobs one holder takes part in, and the models they left."""

    jobs: dict[str, _Job] = field(default_factory=dict)
    models: dict[str, _Job] = field(default_factory=dict)  # finished jobs (their weights)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, node: HolderNode, call: TrainCall, subject: str | None, role: str | None = None
    ) -> TrainAnswer:
        require_coordinator(role)
        if call.step not in HOLDER_STEPS:
            raise PlanError(f"unknown training step {call.step!r}")
        if call.step == "start":
            return self._start(node, call, subject)
        if call.step == "predict":
            return self._predict(node, call, subject)
        with self._lock:
            job = self.jobs.get(call.job_id)
        if job is None:
            raise PlanError(f"holder {node.name} has no training job {call.job_id[:16]}")
        job.touched = time.monotonic()
        if call.step in _ORDER:
            if job.stage not in _ORDER[call.step]:
                raise PlanError(f"training step {call.step} cannot follow {job.stage}")
            if call.step == "products" and call.iteration != max(job.done, default=-1):
                raise PlanError("products answer only the iteration just started")
        answer = self._step(node, job, call, subject)
        # The stage moves only once the step succeeded (a refused one changes nothing).
        job.stage = {"update": "updated", "validate": "validated"}.get(call.step, call.step)
        return answer

    def _step(
        self, node: HolderNode, job: _Job, call: TrainCall, subject: str | None
    ) -> TrainAnswer:
        trainer = job.trainer
        if call.step == "abort":
            trainer.abort()
            with self._lock:
                self.jobs.pop(call.job_id, None)
            return TrainAnswer()
        if call.step == "partial":
            self._charge(node, job, call, subject)
            return TrainAnswer(ciphertexts=trainer.partial(call.iteration, call.ciphertexts))
        if call.step == "products":
            return TrainAnswer(
                ciphertexts=trainer.masked_products(call.iteration, call.ciphertexts)
            )
        if call.step == "update":
            trainer.update(np.asarray(call.gradients.get(node.name, []), dtype=np.float64))
            return TrainAnswer()
        if call.step == "validate":
            return TrainAnswer(ciphertexts=trainer.validation_partial())
        # finish
        if call.best >= 0:
            trainer.keep(call.best)
        with self._lock:
            self.jobs.pop(call.job_id, None)
            self.models[call.job_id] = job
        log.info("training job %s finished: %d weights kept", call.job_id[:16], trainer.features)
        weights = trainer.weight_digest()
        statements = {}
        if node.gov.ledger is not None:  # a governed holder signs what it keeps
            mine = [v for v in job.vouchers if _voucher_holder(v) == node.name]
            statements[node.name] = sign_statement(
                node.gov.ledger.key,
                call.job_id,
                node.name,
                weights,
                len(trainer.history),
                len(trainer.train),
                [_voucher_id(v) for v in mine],
            )
        return TrainAnswer(digests={node.name: weights}, statements=statements)

    def _request(
        self,
        node: HolderNode,
        call: TrainCall,
        mine: TrainFeatures,
        subject: str | None,
        kind: str = "train",
    ) -> AccessRequest:
        reads = score_reads(mine.definitions) if mine.definitions else _column_reads(mine)
        return AccessRequest(
            analyst=call.key_id,
            holder=node.name,
            kind=kind,
            plan_digest=digest(f"{call.job_id}\n{call.iteration}\n{call.spec}".encode()),
            reads=reads,
            entities=entity_ids([*call.ids, *call.validation_ids]),
            subject=subject,
        )

    def _charge(self, node: HolderNode, job: _Job, call: TrainCall, subject: str | None) -> None:
        """Ledger one iteration (counts, never values) and charge the voucher's quota."""
        if call.iteration >= job.trainer.spec.iterations:
            raise PlanError(f"the job's budget is {job.trainer.spec.iterations} iterations")
        if call.iteration in job.done:
            raise PlanError(f"iteration {call.iteration + 1} of this job was already run")
        request = self._request(
            node,
            TrainCall(call.job_id, "partial", call.iteration, job.key_id),
            job.features,
            subject,
        )
        node.gov.run(request, job.vouchers, lambda: None, lambda _: b"")
        job.done.add(call.iteration)

    def _start(self, node: HolderNode, call: TrainCall, subject: str | None) -> TrainAnswer:
        mine = [f for f in call.features if f.holder == node.name]
        if len(mine) != 1:
            raise PlanError(f"the job names holder {node.name} {len(mine)} times, not once")
        spec = spec_from_json(call.spec)
        public = node.keys.public_bytes(call.key_id)
        table = node.tables.get(mine[0].table.lower())
        if table is None:
            raise PlanError(f"holder {node.name} serves no table {mine[0].table}")
        key = table.column(mine[0].key)
        if key is None or not key.allows("entity") or key.type.kind not in IDENTIFIER_KINDS:
            raise PlanError(f"{table.name}.{mine[0].key} is not an entity identifier")
        _check_columns(node, table, mine[0])

        def load() -> HolderTrainer:
            if call.validation_ids:
                # The bank reads joint scores of its validation entities: a score.
                _check_batch(node, mine[0], call.validation_ids)
            # One read of the table for both sets (entities in request order).
            both = _feature_matrix(node, mine[0], [*call.ids, *call.validation_ids], None)
            train, valid = both[: len(call.ids)], both[len(call.ids) :]
            return HolderTrainer(node.name, public, train, valid, spec, mine[0].intercept)

        trainer, receipts = node.gov.run(
            self._request(node, call, mine[0], subject), call.vouchers, load, lambda _: b""
        )
        with self._lock:
            if len(self.jobs) >= MAX_JOBS:
                _drop_idle(self.jobs, lambda j: j.touched)
            if len(self.jobs) >= MAX_JOBS:
                raise PlanError(f"holder {node.name} runs {MAX_JOBS} training jobs already")
            self.jobs[call.job_id] = _Job(trainer, mine[0], call.key_id, call.vouchers)
        log.info("training job %s started over %d entities", call.job_id[:16], len(call.ids))
        return TrainAnswer(receipts=receipts)

    def model(self, job_id: str) -> HolderTrainer:
        job = self.models.get(job_id)
        if job is None:
            raise PlanError(f"no trained model {job_id[:16]} here")
        return job.trainer

    def _predict(self, node: HolderNode, call: TrainCall, subject: str | None) -> TrainAnswer:
        """This holder's encrypted partial scores ``x_i·w`` under the model's own key."""
        with self._lock:
            job = self.models.get(call.job_id)
        if job is None:
            raise PlanError(f"holder {node.name} has no trained model {call.job_id[:16]}")
        if call.key_id != job.key_id:
            # The model answers only the bank that trained it (its key): anyone else
            # scoring with it would use weights the bank's labels paid for.
            raise PolicyError("this model answers only the key that trained it")
        trainer = job.trainer
        step = TrainCall(call.job_id, "predict", 0, call.key_id, ids=call.ids)
        request = self._request(node, step, job.features, subject, kind="predict")

        def answer() -> list[bytes]:
            # A prediction is a score: the table's batch rule applies (inside the run,
            # so a refusal is ledgered like a score's).
            _check_batch(node, job.features, call.ids)
            mean = [float(v) for v in trainer.mean]
            return trainer.predict(_feature_matrix(node, job.features, call.ids, mean))

        partials, receipts = node.gov.run(request, call.vouchers, answer, lambda c: c)
        return TrainAnswer(ciphertexts=partials, receipts=receipts)


def _drop_idle(
    jobs: dict[str, _T], last: Callable[[Any], float], touched: dict[str, float] | None = None
) -> list[_T]:
    """Remove (and return) the jobs idle for over ``JOB_IDLE_SECONDS``; caller holds the lock.

    ``last`` gives a job's last step from the job (holder) or its id (coordinator).
    """
    now = time.monotonic()
    idle = [
        job_id
        for job_id, job in jobs.items()
        if now - last(job if touched is None else job_id) > JOB_IDLE_SECONDS
    ]
    for job_id in idle:
        if touched is not None:
            touched.pop(job_id, None)
        log.info("dropped training job %s after it went idle", job_id[:16])
    return [jobs.pop(job_id) for job_id in idle]


def _check_batch(node: HolderNode, mine: TrainFeatures, ids: Sequence[str]) -> None:
    """Refuse a prediction naming fewer distinct entities than the table's
    ``min_score_batch`` (as :func:`unseen.engine.data.scoring.check_batch` does for scores)."""
    table = node.tables.get(mine.table.lower())
    distinct = len(set(ids))
    if table is not None and distinct < table.min_score_batch:
        raise PolicyError(
            f"table {table.name} scores at least {table.min_score_batch} distinct entities "
            f"per request; this one names {distinct}"
        )


def _voucher_holder(text: str) -> str:
    return SignedVoucher.decode(text).voucher.holder


def _voucher_id(text: str) -> str:
    return SignedVoucher.decode(text).voucher_id


def _column_reads(mine: TrainFeatures) -> dict[str, dict[str, frozenset[str]]]:
    """What training on plain columns reads: the key as ``entity``, columns as ``score``."""
    columns = {mine.key: frozenset({"entity"})}
    columns |= {c: frozenset({"score"}) for c in mine.columns}
    return {mine.table: columns}


def _check_columns(node: HolderNode, table: TableInfo, mine: TrainFeatures) -> None:
    """Refuse columns (or derived features) this holder's policy keeps from models."""
    if not mine.definitions:
        for name in mine.columns:
            info = table.column(name)
            if info is None or not info.allows("score") or not info.type.numeric:
                raise PlanError(f"{table.name}.{name} may not feed a model")
        return
    if len(mine.definitions) != len(mine.columns):
        raise PlanError("a derived feature is defined for every trained column, in order")
    for feature, column in zip(mine.definitions, mine.columns, strict=True):
        if feature.table.lower() != table.name.lower() or feature.column != column:
            raise PlanError(f"derived feature {feature.column} is not {table.name}.{column}")
        if feature.key.lower() != mine.key.lower():
            raise PlanError(f"derived feature {feature.column} keys on another column")
    check_features(mine.definitions, node.tables)


def _feature_matrix(
    node: HolderNode, mine: TrainFeatures, ids: Sequence[str], missing: list[float] | None
) -> np.ndarray:
    """Entities by trained columns, in the order of ``ids``.

    Derived features are computed as ``unseen score`` computes them (entities
    without rows get the feature's default); plain columns are per-entity means
    and an entity without rows gets ``missing`` (zeros when None).
    """
    width = len(mine.columns)
    if mine.definitions:
        if not ids:
            return np.zeros((0, width))
        blocks = feature_blocks(mine.definitions, node.sources, node.tables, ids, len(ids))
        return np.vstack(list(blocks)).reshape(len(ids), width)
    values = _feature_rows(node.sources[mine.table.lower()], mine)
    fill = missing if missing is not None else [0.0] * width
    return np.array([values.get(i, fill) for i in ids], dtype=np.float64).reshape(-1, width)


def _feature_rows(source: object, features: TrainFeatures) -> dict[str, list[float]]:
    """Per entity id (as text), the mean of each feature column over its rows."""
    run = source.run  # type: ignore[attr-defined]
    name = '"' + source.sql_name.replace('"', '""') + '"'  # type: ignore[attr-defined]
    key = '"' + features.key.replace('"', '""') + '"'
    cols = ", ".join(
        'AVG(CAST("' + c.replace('"', '""') + '" AS DOUBLE))' for c in features.columns
    )
    rows = run(
        f"SELECT CAST({key} AS TEXT), {cols} FROM {name} "  # noqa: S608 - names from the catalog
        f"WHERE {key} IS NOT NULL GROUP BY 1"
    )
    return {str(r[0]): [0.0 if v is None else float(v) for v in r[1:]] for r in rows}


@dataclass
class RemoteHolder:
    """A holder's side of a job as the coordinator's relay calls it (over gRPC)."""

    peer: HolderPeer
    job_id: str
    name: str
    carries_intercept: bool
    count: int
    subject: str | None = None
    statement: str = ""  # the holder's signed lineage statement, once finished

    @property
    def features(self) -> int:
        return self.count

    def _call(self, step: str, **kwargs: object) -> TrainAnswer:
        return self.peer.train(TrainCall(self.job_id, step, **kwargs), subject=self.subject)  # type: ignore[arg-type]

    def partial(self, iteration: int, weights: Sequence[bytes] = ()) -> list[bytes]:
        return self._call("partial", iteration=iteration, ciphertexts=tuple(weights)).ciphertexts

    def masked_products(self, iteration: int, residual: Sequence[bytes]) -> list[bytes]:
        return self._call("products", iteration=iteration, ciphertexts=tuple(residual)).ciphertexts

    def update(self, masked_gradient: np.ndarray) -> None:
        self._call("update", gradients={self.name: [float(v) for v in masked_gradient]})

    def validation_partial(self) -> list[bytes]:
        return self._call("validate").ciphertexts

    def keep(self, iteration: int) -> None:
        self._best = iteration

    def weight_digest(self) -> str:
        answer = self._call("finish", best=getattr(self, "_best", -1))
        self.statement = answer.statements.get(self.name, "")
        return answer.digests.get(self.name, "")

    def abort(self) -> None:
        self._call("abort")


@dataclass
class CoordinatorJobs:
    """The coordinator's relays, one per running job (bounded)."""

    relays: dict[str, LocalRelay] = field(default_factory=dict)
    _touched: dict[str, float] = field(default_factory=dict)  # job id -> its last step
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, holders: HolderSet, public: bytes | None, call: TrainCall, subject: str | None
    ) -> TrainAnswer:
        if call.step not in COORDINATOR_STEPS:
            raise PlanError(f"unknown training step {call.step!r}")
        if call.step in ("start", "predict") and public is None:
            raise PlanError("register the key before training or predicting")
        if call.step == "start":
            assert public is not None
            return self._start(holders, public, call, subject)
        if call.step == "predict":
            assert public is not None
            return _predict(holders, public, call, subject)
        with self._lock:
            relay = self.relays.get(call.job_id)
            if relay is not None:
                self._touched[call.job_id] = time.monotonic()
        if relay is None:
            raise PlanError(f"no training job {call.job_id[:16]} at this coordinator")
        if call.step == "round":
            return TrainAnswer(products=relay.round(call.iteration, call.ciphertexts))
        if call.step == "update":
            relay.update(call.iteration, {h: np.asarray(v) for h, v in call.gradients.items()})
            return TrainAnswer()
        if call.step == "validate":
            return TrainAnswer(ciphertexts=relay.validate())
        with self._lock:
            self.relays.pop(call.job_id, None)
            self._touched.pop(call.job_id, None)
        if call.step == "abort":
            relay.abort()
            return TrainAnswer()
        digests = relay.finish(call.best)
        signed = {h.name: str(getattr(h, "statement", "")) for h in relay.holders}
        statements = {name: text for name, text in signed.items() if text}
        return TrainAnswer(digests=digests, statements=statements)

    def _start(
        self, holders: HolderSet, public: bytes, call: TrainCall, subject: str | None
    ) -> TrainAnswer:
        holders.names(None)
        parties: list[RemoteHolder] = []
        receipts: list[str] = []
        try:
            for features in call.features:
                peer = next((p for p in holders.peers if p.name == features.holder), None)
                if peer is None:
                    raise PlanError(f"no configured holder is named {features.holder!r}")
                assert isinstance(peer, HolderPeer)
                # Each holder is told its own columns only, never another holder's.
                try:
                    answer = peer.train(replace(call, features=(features,)), subject=subject)
                except UnseenError as exc:
                    raise as_holder_error(peer, exc) from exc
                receipts += answer.receipts
                parties.append(
                    RemoteHolder(
                        peer, call.job_id, features.holder, features.intercept,
                        len(features.columns), subject,
                    )
                )  # fmt: skip
            relay = LocalRelay(parties, public, spec_from_json(call.spec).weighted)
        except UnseenError:
            # All or nothing: the holders that did start drop the job again.
            for party in parties:
                try:
                    party.abort()
                except UnseenError:
                    log.warning("holder %s could not be told to drop a failed job", party.name)
            raise
        with self._lock:
            idle = []
            if len(self.relays) >= MAX_JOBS:
                idle = _drop_idle(self.relays, lambda j: self._touched.get(j, 0.0), self._touched)
            full = len(self.relays) >= MAX_JOBS
            if not full:
                self.relays[call.job_id] = relay
                self._touched[call.job_id] = time.monotonic()
        for old in idle:
            old.abort()  # its holders drop the job too
        if full:
            relay.abort()
            raise PlanError(f"the coordinator runs {MAX_JOBS} training jobs already")
        return TrainAnswer(receipts=receipts)


def _predict(
    holders: HolderSet, public: bytes, call: TrainCall, subject: str | None
) -> TrainAnswer:
    """Joint prediction: every holder of the model scores its part; the sum goes to the bank."""
    holders.names(None)
    parts, receipts = [], []
    for features in call.features:
        peer = next((p for p in holders.peers if p.name == features.holder), None)
        if peer is None:
            raise PlanError(f"no configured holder is named {features.holder!r}")
        assert isinstance(peer, HolderPeer)
        try:
            # Each holder is told its own columns only, never another holder's.
            answer = peer.train(replace(call, features=(features,)), subject=subject)
        except UnseenError as exc:
            raise as_holder_error(peer, exc) from exc
        parts.append(answer.ciphertexts)
        receipts += answer.receipts
    if not parts:
        raise PlanError("the model names no holder")
    return TrainAnswer(ciphertexts=sum_ciphertexts(public, parts), receipts=receipts)
