"""Progress lines on stderr, stamped with the time since the benchmark started."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from unseen.bench.measure import fmt_seconds

__all__ = ["Progress"]


class Progress:
    """``[  12.3 s] text`` lines; :meth:`step` also reports how long the step took."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed:7.1f} s] {text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        self.log(f"{text} ...")
        began = time.perf_counter()
        yield
        self.log(f"{text}: done in {fmt_seconds(time.perf_counter() - began)}")
