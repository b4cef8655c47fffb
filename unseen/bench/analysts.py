"""Concurrent analysts: separate processes, each with its own key, querying one federation.

Each analyst process generates a key, registers it (and its model) with a
warm-up call, reports ready and waits; all start together and run the same
number of calls. Throughput is calls over the wall time from the start signal
until the last analyst finishes; latency is every call's own time.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unseen.bench.measure import Stat

__all__ = ["concurrent_analysts"]

_TIMEOUT = 1800.0


def _call(client: Any, workload: dict[str, Any]) -> Callable[[], object]:
    if workload["kind"] == "aggregate":
        return lambda: client.query(workload["sql"])
    model = workload["model"]  # an unseen.engine.query.model.Model, pickled to this process
    ids = Path(workload["ids"]).read_text().split()
    return lambda: client.score(model, ids)


def _analyst(
    address: str,
    workload: dict[str, Any],
    calls: int,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    try:
        from unseen.engine.client import Client
        from unseen.engine.crypto.keys import AnalystKey

        with Client(address, key=AnalystKey.generate()) as client:
            call = _call(client, workload)
            call()  # warm-up: registers the key (and the model)
            ready.put("ready")
            go.wait()
            latencies = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                latencies.append(time.perf_counter() - started)
        results.put(("ok", latencies))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        ready.put("failed")
        results.put(("error", traceback.format_exc()))


def concurrent_analysts(
    address: str, workload: dict[str, Any], analysts: int, calls: int
) -> dict[str, Any]:
    """Run ``analysts`` processes making ``calls`` calls each; throughput and latency."""
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    processes = [
        ctx.Process(target=_analyst, args=(address, workload, calls, ready, go, results))
        for _ in range(analysts)
    ]
    for process in processes:
        process.start()
    try:
        states = [ready.get(timeout=_TIMEOUT) for _ in processes]
        if "failed" in states:
            go.set()
            raise RuntimeError(_first_error(results, analysts))
        started = time.perf_counter()
        go.set()
        latency = Stat()
        for _ in processes:
            status, value = results.get(timeout=_TIMEOUT)
            if status != "ok":
                raise RuntimeError(f"an analyst failed:\n{value}")
            for seconds in value:
                latency.add(seconds)
        wall = time.perf_counter() - started
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    total = analysts * calls
    return {
        "analysts": analysts,
        "workload": workload["kind"],
        "calls": total,
        "wall_s": wall,
        "throughput_per_s": total / wall if wall > 0 else 0.0,
        "latency_s": latency.to_json(),
    }


def _first_error(results: Any, count: int) -> str:
    for _ in range(count):
        try:
            status, value = results.get(timeout=5)
        except queue.Empty:
            break
        if status != "ok":
            return f"an analyst failed:\n{value}"
    return "an analyst failed"
