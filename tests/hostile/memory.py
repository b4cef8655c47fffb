"""Resident memory of server processes: sampled in a thread and the kernel's high-water mark."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path

import psutil

__all__ = ["RSS_BOUND", "MemoryWatch", "peak_rss"]

# Peak resident memory allowed to any one server process (children included).
RSS_BOUND = int(os.environ.get("UNSEEN_HOSTILE_RSS_MB", "1536")) << 20


def _tree(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(pid: int) -> int:
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of resident memory (VmHWM) of ``pid``, in bytes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class MemoryWatch:
    """Samples the resident memory of server processes (with their children) in a thread.

    ``peak`` per name is the largest of the sampled totals and the kernel's high-water mark,
    so a spike between two samples is not missed for the main process.
    """

    def __init__(self, pids: Mapping[str, int], interval: float = 0.1):
        self.pids = dict(pids)
        self.interval = interval
        self.sampled: dict[str, int] = dict.fromkeys(self.pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-watch")

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.sampled[name] = max(self.sampled[name], _rss(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> dict[str, int]:
        return {n: max(self.sampled[n], peak_rss(p)) for n, p in self.pids.items()}

    def window_peak(self) -> dict[str, int]:
        """Peaks sampled while watching (no kernel high-water mark from before)."""
        return dict(self.sampled)
