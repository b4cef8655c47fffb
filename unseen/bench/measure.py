"""Repeated timings and their summary: median with min and max of every run."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Stat", "fmt_bytes", "fmt_ratio", "fmt_seconds", "ratio", "timed", "timings"]

T = TypeVar("T")


@dataclass
class Stat:
    """Samples of one figure (seconds, bytes ...) summarised as median and min-max."""

    samples: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, value: float) -> None:
        self.samples.append(float(value))

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples)) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def max(self) -> float:
        return max(self.samples) if self.samples else math.nan

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "runs": len(self.samples),
            "samples": [round(s, 6) for s in self.samples],
        }
        if self.note:
            out["note"] = self.note
        return out

    def seconds(self) -> str:
        """``median (min-max)`` in human units of time."""
        if not self.samples:
            return "-"
        if len(self.samples) == 1:
            return fmt_seconds(self.median)
        return f"{fmt_seconds(self.median)} ({fmt_seconds(self.min)}-{fmt_seconds(self.max)})"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Wall seconds of one call and its result."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def timings(fn: Callable[[], object], runs: int, warmup: int = 0) -> Stat:
    """Run ``fn`` ``warmup`` times untimed, then ``runs`` times timed."""
    for _ in range(warmup):
        fn()
    stat = Stat()
    for _ in range(runs):
        stat.add(timed(fn)[0])
    return stat


def ratio(numerator: Stat | float, denominator: Stat | float) -> float:
    """Ratio of medians; ``nan`` when either side is missing or the divisor is zero."""
    top = numerator.median if isinstance(numerator, Stat) else numerator
    bottom = denominator.median if isinstance(denominator, Stat) else denominator
    if not math.isfinite(top) or not math.isfinite(bottom) or bottom <= 0:
        return math.nan
    return top / bottom


def fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 100:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_bytes(count: float) -> str:
    if not math.isfinite(count):
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count:.0f} B"


def fmt_ratio(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}x"
    return f"{value:.2f}x"
