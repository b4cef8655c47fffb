"""One joint training run: the iteration loop of :mod:`unseen.engine.training.vertical_lr`, driven
by the bank.

The bank drives; a :class:`Relay` does the rest of each round. The relay is
the coordinator's part of the protocol: it collects each holder's partial,
adds them to the bank's label part (key-less), hands the encrypted residual
to the holders only, and returns their masked products to the bank; then it
carries the bank's masked gradients back. :class:`LocalRelay` does this over
:class:`HolderParty` objects — in-process :class:`~unseen.engine.training.vertical_lr.HolderTrainer`
in tests and the bench, remote-holder proxies inside the coordinator — and
the analyst's client reaches the coordinator's relay over gRPC.

All or nothing: a holder that fails or leaves mid-run fails the job with its
name and the iteration; every holder is told to drop its weights and the run
returns no model, so nothing half-trained is ever written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from unseen.engine.errors import HolderError, PlanError, RemoteError, UnseenError
from unseen.engine.training.vertical_lr import BankTrainer, TrainSpec, sum_ciphertexts

__all__ = ["HolderParty", "LocalRelay", "Relay", "TrainingRun", "run_training"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class HolderParty(Protocol):
    """What a relay needs of a holder (unseen.engine.training.vertical_lr.HolderTrainer, or a
    remote one)."""

    name: str
    carries_intercept: bool

    @property
    def features(self) -> int: ...

    def partial(self, iteration: int, weights: Sequence[bytes] = ()) -> list[bytes]: ...

    def masked_products(self, iteration: int, residual: Sequence[bytes]) -> list[bytes]: ...

    def update(self, masked_gradient: np.ndarray) -> None: ...

    def validation_partial(self) -> list[bytes]: ...

    def keep(self, iteration: int) -> None: ...

    def weight_digest(self) -> str: ...

    def abort(self) -> None: ...


class Relay(Protocol):
    """The coordinator's side of a run, as the bank's loop sees it."""

    features: dict[str, int]  # holder name -> how many features it trains
    intercept_holder: str

    def round(self, iteration: int, label_part: Sequence[bytes]) -> dict[str, list[bytes]]: ...

    def update(self, iteration: int, gradients: Mapping[str, np.ndarray]) -> None: ...

    def validate(self) -> list[bytes]: ...

    def finish(self, best: int) -> dict[str, str]: ...

    def abort(self) -> None: ...


@dataclass
class LocalRelay:
    """A relay over holder parties this process can call (and a public key to add under)."""

    holders: Sequence[HolderParty]
    public: bytes
    weighted: bool = False  # class-weighted rounds (TrainSpec.weighted): Enc(c) travels too
    moved: int = 0  # ciphertext bytes relayed so far

    def __post_init__(self) -> None:
        if not self.holders or sum(h.carries_intercept for h in self.holders) != 1:
            raise PlanError("a training run needs holders, exactly one carrying the intercept")
        self.features = {h.name: h.features for h in self.holders}
        self.intercept_holder = next(h.name for h in self.holders if h.carries_intercept)

    def _each(self, call: Callable[[HolderParty], _T]) -> dict[str, _T]:
        """``call`` at every holder; a failure is named after its holder."""
        out: dict[str, _T] = {}
        for holder in self.holders:
            try:
                out[holder.name] = call(holder)
            except RemoteError as exc:
                raise HolderError(holder.name, exc.code, exc.reason) from exc
            except UnseenError as exc:
                raise HolderError(holder.name, "ABORTED", str(exc)) from exc
        return out

    def round(self, iteration: int, label_part: Sequence[bytes]) -> dict[str, list[bytes]]:
        weights: list[bytes] = []
        if self.weighted:
            # The bank's Enc(c·(0.5 + b/4 - y)) blocks, then its Enc(c) blocks.
            if len(label_part) % 2:
                raise PlanError("a class-weighted round carries as many weights as residuals")
            half = len(label_part) // 2
            label_part, weights = list(label_part[:half]), list(label_part[half:])
            self.moved += sum(len(c) for c in weights) * (1 + len(self.holders))
        partials = self._each(lambda h: h.partial(iteration, weights))
        parts = [list(label_part), *partials.values()]
        residual = sum_ciphertexts(self.public, parts, depth=1 if self.weighted else 0)
        products = self._each(lambda h: h.masked_products(iteration, residual))
        self.moved += sum(len(c) for p in parts for c in p)
        self.moved += sum(len(c) for c in residual) * len(self.holders)
        self.moved += sum(len(c) for p in products.values() for c in p)
        return products

    def update(self, iteration: int, gradients: Mapping[str, np.ndarray]) -> None:
        self._each(lambda h: h.update(gradients[h.name]))

    def validate(self) -> list[bytes]:
        partials = self._each(lambda h: h.validation_partial())
        summed = sum_ciphertexts(self.public, list(partials.values()))
        self.moved += sum(len(c) for c in summed) * (len(self.holders) + 1)
        return summed

    def finish(self, best: int) -> dict[str, str]:
        if best >= 0:
            self._each(lambda h: h.keep(best))
        return self._each(lambda h: h.weight_digest())

    def abort(self) -> None:
        for holder in self.holders:
            try:
                holder.abort()
            except UnseenError:
                log.warning("holder %s could not be told to drop its weights", holder.name)


@dataclass
class TrainingRun:
    """What the bank keeps of a finished run (the weights stay at the holders)."""

    intercept: float
    holders: dict[str, str]  # holder name -> SHA-256 of its final weights
    iterations: int
    losses: list[float] = field(default_factory=list)
    seconds_per_iteration: list[float] = field(default_factory=list)


def run_training(bank: BankTrainer, relay: Relay, spec: TrainSpec) -> TrainingRun:
    """Train to the end (or to early stopping); raises HolderError if a holder fails."""
    seconds: list[float] = []
    iteration = 0
    try:
        for iteration in range(spec.iterations):
            started = time.perf_counter()
            products = relay.round(iteration, bank.label_part(iteration))
            gradients = {
                name: bank.open_gradients(
                    iteration, products[name], count, name == relay.intercept_holder
                )
                for name, count in relay.features.items()
            }
            relay.update(iteration, gradients)
            if spec.patience:
                bank.validation_loss(relay.validate())
            seconds.append(time.perf_counter() - started)
            log.info("training iteration %d done", iteration + 1)  # counts, never values
            if bank.should_stop():
                break
        best = bank.best_iteration()
        digests = relay.finish(best)
    except HolderError as exc:
        _abort(relay)
        reason = f"left the training job at iteration {iteration + 1}: {exc.detail}"
        raise HolderError(exc.holder, exc.code, reason) from exc
    except RemoteError as exc:  # over the wire: the reason names the holder
        _abort(relay)
        reason = f"the training job failed at iteration {iteration + 1}: {exc.reason}"
        raise RemoteError(exc.code, reason) from exc
    except UnseenError:
        _abort(relay)
        raise
    if best >= 0:
        bank.intercept = bank.history[best]
    return TrainingRun(
        bank.intercept,
        digests,
        best + 1 if best >= 0 else iteration + 1,
        list(bank.losses),
        seconds,
    )


def _abort(relay: Relay) -> None:
    """Tell the relay to drop the job; if even that fails, the job is gone with its peer."""
    try:
        relay.abort()
    except UnseenError:
        log.warning("the training job could not be aborted everywhere")
