"""One joint training run: the iteration loop of :mod:`engine.vertical_lr` over its parties.

The loop is the coordinator's part of the protocol: per iteration it collects
the bank's label part and each holder's partial, adds them (key-less), hands
the encrypted residual to the holders, relays their masked products to the
bank and the bank's masked gradients back. Parties are reached through the
:class:`HolderParty` protocol, satisfied in-process by
:class:`~engine.vertical_lr.HolderTrainer` and over the wire by a peer proxy.

All or nothing: a holder that fails or leaves mid-run fails the job with its
name and the iteration; every holder is told to drop its weights and the run
returns no model, so nothing half-trained is ever written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.errors import HolderError, RemoteError, UnseenError
from engine.vertical_lr import BankTrainer, TrainSpec, sum_ciphertexts

__all__ = ["HolderParty", "TrainingRun", "run_training"]

log = logging.getLogger(__name__)


class HolderParty(Protocol):
    """What the loop needs of a holder (engine.vertical_lr.HolderTrainer, or a remote one)."""

    name: str
    carries_intercept: bool

    @property
    def features(self) -> int: ...

    def partial(self, iteration: int) -> list[bytes]: ...

    def masked_products(self, iteration: int, residual: Sequence[bytes]) -> list[bytes]: ...

    def update(self, masked_gradient: np.ndarray) -> None: ...

    def validation_partial(self) -> list[bytes]: ...

    def keep(self, iteration: int) -> None: ...

    def weight_digest(self) -> str: ...

    def abort(self) -> None: ...


@dataclass
class TrainingRun:
    """What the bank keeps of a finished run (the weights stay at the holders)."""

    intercept: float
    holders: dict[str, str]  # holder name -> SHA-256 of its final weights
    iterations: int
    losses: list[float] = field(default_factory=list)
    bytes_per_iteration: list[int] = field(default_factory=list)
    seconds_per_iteration: list[float] = field(default_factory=list)


def _size(parts: Sequence[bytes]) -> int:
    return sum(len(p) for p in parts)


def run_training(
    bank: BankTrainer, holders: Sequence[HolderParty], public: bytes, spec: TrainSpec
) -> TrainingRun:
    """Train to the end (or to early stopping); raises HolderError if a holder fails."""
    if not holders or sum(h.carries_intercept for h in holders) != 1:
        raise UnseenError("a training run needs holders, exactly one carrying the intercept")
    run = TrainingRun(0.0, {}, 0)
    current = ""
    iteration = 0
    try:
        for iteration in range(spec.iterations):
            started, moved = time.perf_counter(), 0
            current = "bank"
            parts = [bank.label_part(iteration)]
            for holder in holders:
                current = holder.name
                parts.append(holder.partial(iteration))
            residual = sum_ciphertexts(public, parts)
            moved += sum(_size(p) for p in parts) + _size(residual) * len(holders)
            for holder in holders:
                current = holder.name
                products = holder.masked_products(iteration, residual)
                masked = bank.open_gradients(
                    iteration, products, holder.features, holder.carries_intercept
                )
                holder.update(masked)
                moved += _size(products) + masked.nbytes
            if spec.patience:
                current = "validation"
                summed = sum_ciphertexts(public, [h.validation_partial() for h in holders])
                moved += _size(summed) * (len(holders) + 1)
                bank.validation_loss(summed)
            run.bytes_per_iteration.append(moved)
            run.seconds_per_iteration.append(time.perf_counter() - started)
            log.info("training iteration %d done", iteration + 1)  # counts, never values
            if bank.should_stop():
                break
        best = bank.best_iteration()
        if best >= 0:
            for holder in holders:
                holder.keep(best)
            bank.intercept = bank.history[best]
        run.iterations = (best + 1) if best >= 0 else iteration + 1
    except UnseenError as exc:
        _abort_all(holders)
        raise _named(current, iteration, exc) from exc
    run.intercept = bank.intercept
    run.losses = list(bank.losses)
    run.holders = {h.name: h.weight_digest() for h in holders}
    return run


def _abort_all(holders: Sequence[HolderParty]) -> None:
    """Tell every holder to drop the job's weights; one that cannot be reached has left."""
    for holder in holders:
        try:
            holder.abort()
        except UnseenError:
            log.warning("holder %s could not be told to drop its weights", holder.name)


def _named(current: str, iteration: int, exc: UnseenError) -> HolderError:
    if isinstance(exc, RemoteError):
        return HolderError(
            current, exc.code, f"left the training job at iteration {iteration + 1}: {exc.reason}"
        )
    return HolderError(
        current, "ABORTED", f"failed the training job at iteration {iteration + 1}: {exc}"
    )
