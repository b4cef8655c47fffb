"""Memory and CPU of the federation's processes, by PID.

Peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/PID/status``),
exact and free to read; writing ``5`` to ``/proc/PID/clear_refs`` resets it,
so each benchmark cell reports its own peak although the processes live
across cells. Where ``/proc`` is missing (not Linux), psutil's current RSS
sampled at the end of a cell stands in, and the JSON says so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "NOT_HOLDERS",
    "ProcessProbe",
    "holder_peak_rss",
    "status_kib",
    "total_cpu_seconds",
]

# The processes of a cell that are not holders (see ``Cluster.pids``).
NOT_HOLDERS = ("coordinator", "analyst")


def status_kib(pid: int, field: str) -> int | None:
    """A ``/proc/PID/status`` field in KiB (``VmHWM``, ``VmRSS``), None off Linux."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _psutil_rss(pid: int) -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def total_cpu_seconds(pids: list[int]) -> float | None:
    """CPU seconds (user + system) used so far by all of ``pids`` together."""
    total = 0.0
    for pid in pids:
        seconds = _cpu_seconds(pid)
        if seconds is None:
            return None
        total += seconds
    return total


def holder_peak_rss(processes: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The largest peak RSS among a cell's holders; None when no holder's peak is known.

    ``processes`` is what :meth:`ProcessProbe.stop` returns, or its JSON.
    """
    peaks = [
        v["peak_rss_bytes"]
        for k, v in processes.items()
        if k not in NOT_HOLDERS and v["peak_rss_bytes"] is not None
    ]
    return max(peaks) if peaks else None


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (all cores; /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(f) for f in fields]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class ProcessProbe:
    """Peak RSS and CPU seconds of named processes over one measured interval."""

    def __init__(self, pids: Mapping[str, int]):
        self.pids = dict(pids)
        self._cpu: dict[str, float | None] = {}
        self._busy: float | None = None
        self._wall = 0.0
        self.others: dict[str, float | None] = {}
        self.method = "VmHWM" if Path(f"/proc/{os.getpid()}/status").exists() else "psutil-rss"

    def start(self) -> None:
        """Reset the high-water marks and note CPU times."""
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):  # not Linux, or not ours to reset
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            self._cpu[name] = _cpu_seconds(pid)
        self._busy = _busy_seconds()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """Per process: ``peak_rss_bytes`` since :meth:`start`, ``rss_bytes`` and ``cpu_s``."""
        out: dict[str, Any] = {}
        for name, pid in self.pids.items():
            peak = status_kib(pid, "VmHWM")
            rss = status_kib(pid, "VmRSS")
            now = _cpu_seconds(pid)
            before = self._cpu.get(name)
            out[name] = {
                "pid": pid,
                "peak_rss_bytes": peak * 1024 if peak is not None else _psutil_rss(pid),
                "rss_bytes": rss * 1024 if rss is not None else _psutil_rss(pid),
                "cpu_s": round(now - before, 3) if now is not None and before is not None else None,
            }
        self.others = self._others(out)
        return out

    def _others(self, ours: dict[str, Any]) -> dict[str, float | None]:
        """CPU the rest of the machine used meanwhile: how much others disturbed the cell."""
        wall = time.perf_counter() - self._wall
        busy = _busy_seconds()
        if busy is None or self._busy is None or wall <= 0:
            return {"wall_s": wall, "others_cpu_s": None, "others_share": None}
        mine = sum(p["cpu_s"] or 0.0 for p in ours.values())
        others = max(0.0, busy - self._busy - mine)
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 3),
            "ours_cpu_s": round(mine, 3),
            "others_cpu_s": round(others, 3),
            "others_share": round(others / (wall * cores), 3),
        }
