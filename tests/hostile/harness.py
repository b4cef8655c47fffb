"""Firing hostile requests at a running federation, checking it after every batch, and the
report of a run."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.hostile.generator import Generator
from tests.hostile.memory import RSS_BOUND, MemoryWatch
from tests.hostile.request import SU, US, UU, Hostile
from tests.hostile.world import (
    ENTITIES,
    K,
    Material,
    World,
    addresses_of,
    processes_of,
    sane_model,
    server_pids,
)
from unseen.engine.client import Client
from unseen.federation import LocalFederation
from unseen.oracle.plaintext import plaintext_scores

__all__ = [
    "KNOWN_DEFECTS",
    "REQUESTS",
    "Caller",
    "KnownDefect",
    "Outcome",
    "Report",
    "health",
    "probe",
    "replay",
    "run_hostile",
]

REQUESTS = int(os.environ.get("UNSEEN_HOSTILE_REQUESTS", "800"))
MAX_MESSAGE = 64 << 20  # what this harness's channels accept and send


# -- firing ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    request: Hostile
    code: str  # "OK" or the status name
    details: str
    elapsed: float


class Caller:
    """Generic (raw-bytes) calls to the federation's servers, one channel per server."""

    def __init__(self, addresses: Mapping[str, str]):
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ]
        self.channels = {n: grpc.insecure_channel(a, options=options) for n, a in addresses.items()}
        self._calls: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def _callable(self, target: str, path: str, arity: str) -> Any:
        key = (target, path, arity)
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                factory = getattr(self.channels[target], arity)
                call = factory(path, request_serializer=None, response_deserializer=None)
                self._calls[key] = call
            return call

    def fire(self, request: Hostile) -> Outcome:
        call = self._callable(request.target, request.method, request.arity)
        started = time.monotonic()
        payload = request.payload
        try:
            if request.arity == UU:
                call(payload, timeout=request.deadline)
            elif request.arity == US:
                for _ in call(payload, timeout=request.deadline):
                    pass
            elif request.arity == SU:
                call(iter(payload), timeout=request.deadline)
            else:
                for _ in call(iter(payload), timeout=request.deadline):
                    pass
            code, details = "OK", ""
        except grpc.RpcError as exc:
            status = exc.code()
            code = status.name if status is not None else "UNKNOWN"
            details = exc.details() or ""
        return Outcome(request, code, details, time.monotonic() - started)


# -- known defects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownDefect:
    """A server defect already reported and pinned by a strict xfail test."""

    name: str
    details: re.Pattern[str]
    hazard: str | None
    pinned_by: str

    def matches(self, outcome: Outcome) -> bool:
        if outcome.code != "INTERNAL" or not self.details.search(outcome.details):
            return False
        return self.hazard is None or self.hazard in outcome.request.hazards


# Every defect this suite found has been fixed; the list stays as the place to pin a new one
# (with a strict xfail test) while it is being fixed.
KNOWN_DEFECTS: tuple[KnownDefect, ...] = ()


def known_defect(outcome: Outcome) -> KnownDefect | None:
    return next((d for d in KNOWN_DEFECTS if d.matches(outcome)), None)


# -- the report ------------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    sent: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    internal: list[Outcome] = field(default_factory=list)  # not a known defect
    known: Counter[str] = field(default_factory=Counter)
    known_examples: dict[str, str] = field(default_factory=dict)
    hangs: list[Outcome] = field(default_factory=list)
    unavailable: list[Outcome] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)  # health or probe did not answer
    wrong: list[str] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    log_errors: Counter[str] = field(default_factory=Counter)
    spool_bytes: int = 0
    elapsed: float = 0.0
    probes: int = 0

    def add(self, outcome: Outcome) -> None:
        request = outcome.request
        self.sent += 1
        self.codes[outcome.code] += 1
        self.families[request.kind.split(":")[0]] += 1
        self.slowest.append((outcome.elapsed, request.describe(self.seed)))
        self.slowest = sorted(self.slowest, reverse=True)[:5]
        if outcome.code == "DEADLINE_EXCEEDED":
            self.hangs.append(outcome)
        elif outcome.code == "UNAVAILABLE":
            self.unavailable.append(outcome)
        elif outcome.code in ("INTERNAL", "UNKNOWN"):
            defect = known_defect(outcome)
            if defect is None:
                self.internal.append(outcome)
            else:
                self.known[defect.name] += 1
                self.known_examples.setdefault(defect.name, request.describe(self.seed))

    @property
    def internal_errors(self) -> int:
        return len(self.internal) + sum(self.known.values())

    def problems(self, bound: int = RSS_BOUND) -> list[str]:
        """Everything that fails the run, known defects excepted."""
        out = [f"crash: {c}" for c in self.crashes]
        out += [f"stall: {s}" for s in self.stalls]
        out += [f"wrong answer: {w}" for w in self.wrong]
        for outcome in self.hangs:
            out.append(f"hang after {outcome.elapsed:.1f}s: {outcome.request.describe(self.seed)}")
        for outcome in self.unavailable + self.internal:
            out.append(
                f"{outcome.code} ({outcome.details[:160]!r}): {outcome.request.describe(self.seed)}"
            )
        for name, peak in self.peak_rss.items():
            if peak > bound:
                out.append(f"memory: {name} peaked at {peak >> 20} MiB > {bound >> 20} MiB")
        return out

    def summary(self, bound: int = RSS_BOUND) -> str:
        lines = [
            f"hostile run: seed {self.seed}, {self.sent} requests in {self.elapsed:.1f}s, "
            f"{self.probes} health probes",
            f"  crashes (a server process died): {len(self.crashes)}",
            f"  hangs (no answer within the deadline): {len(self.hangs)}",
            f"  stalls (health check or probe query unanswered): {len(self.stalls)}",
            f"  wrong answers (probe queries vs DuckDB): {len(self.wrong)}",
            f"  internal errors (INTERNAL/UNKNOWN): {self.internal_errors} "
            f"({len(self.internal)} new, {sum(self.known.values())} known defects)",
            f"  unavailable answers: {len(self.unavailable)}",
            "  status codes: " + ", ".join(f"{c}={n}" for c, n in self.codes.most_common()),
            "  families: " + ", ".join(f"{f}={n}" for f, n in sorted(self.families.items())),
        ]
        for name, count in self.known.most_common():
            lines.append(f"  known defect x{count}: {name} (e.g. {self.known_examples[name]})")
        if self.log_errors:
            lines.append(
                "  server log errors: "
                + ", ".join(f"{k} x{n}" for k, n in self.log_errors.most_common())
            )
        lines.append(
            "  peak RSS (MiB): "
            + ", ".join(f"{n}={p >> 20}" for n, p in self.peak_rss.items())
            + f" (bound {bound >> 20})"
        )
        if self.spool_bytes:
            lines.append(f"  holders' model spool on disk: {self.spool_bytes >> 20} MiB")
        lines.append(
            f"  slowest: {self.slowest[0][0]:.2f}s {self.slowest[0][1]}" if self.slowest else ""
        )
        lines += [f"  PROBLEM {p}" for p in self.problems(bound)[:20]]
        return "\n".join(line for line in lines if line)


# -- probes: the servers still answer, correctly --------------------------------------------

PROBE_SQL = (
    'SELECT cat, COUNT(*) AS c, SUM(n) AS s, AVG(amount) AS a, COUNT("\u540d\u524d") AS m '
    "FROM u GROUP BY cat ORDER BY cat",
    "SELECT flag, COUNT(*) AS c, VAR_SAMP(amount) AS v FROM u "
    "WHERE cat IN ('\U0001f600', 'a\x00b', '\u202eevil\u202c', '') GROUP BY flag ORDER BY flag",
)


def probe(world: World, client: Client) -> list[str]:
    """Real, verified work through the coordinator; returns what went wrong."""
    problems = []
    for sql in PROBE_SQL:
        _, _, verdict = world.reference.check(client, sql, K)
        if not verdict.ok:
            problems.append(f"{sql!r}: {verdict.problems[:3]}")
    result = client.query("SELECT COUNT(*) AS c, SUM(v) AS s FROM g")
    if tuple(result.rows[0]) != world.g_total:
        problems.append(f"g totals {result.rows[0]} != {world.g_total}")
    model = sane_model()
    entities = [*ENTITIES[::3], "no-such-entity", "\x00"]
    scored = client.score(model, entities)
    expected = plaintext_scores(world.reference.con.cursor(), model, entities)
    got = np.array([row[1] for row in scored.rows])
    if [row[0] for row in scored.rows] != entities or not np.allclose(
        got, expected, rtol=1e-6, atol=1e-5
    ):
        problems.append(f"scores differ: {got[:4]} vs {expected[:4]}")
    return problems


def health(addresses: Mapping[str, str], timeout: float = 5.0) -> list[str]:
    """Standard gRPC health checks of every server; returns the ones that did not answer."""
    failed = []
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    failed.append(f"{name} reports {reply.status}")
            except grpc.RpcError as exc:
                failed.append(f"{name} health: {exc.code()} {exc.details()}")
    return failed


def _log_errors(fed: LocalFederation) -> Counter[str]:
    errors: Counter[str] = Counter()
    # Matches the text and the JSON log formats (unseen/logs.py) alike.
    pattern = re.compile(r"(\w+) failed with an internal (\w+)")
    for path in sorted(Path(fed.log_dir).glob("*.log")):
        for match in pattern.finditer(path.read_text(errors="replace")):
            errors[f"{path.stem}:{match.group(1)}:{match.group(2)}"] += 1
    return errors


def _spool_bytes(tmp: Path | None) -> int:
    if tmp is None or not tmp.exists():
        return 0
    return sum(p.stat().st_size for p in tmp.glob("unseen-spool-*/*.model") if p.is_file())


def run_hostile(
    fed: LocalFederation,
    world: World,
    material: Material,
    count: int,
    seed: int,
    workers: int = 6,
    batch: int = 200,
    echo: Callable[[str], None] | None = None,
    spool: Path | None = None,
) -> Report:
    """Fire ``count`` hostile requests in batches; after each batch check that every server
    process lives, answers a health check and answers real queries correctly."""
    report = Report(seed)
    generator = Generator(seed, material)
    addresses = addresses_of(fed)
    caller = Caller(addresses)
    processes = processes_of(fed)
    started = time.monotonic()

    heavy = threading.Lock()

    def one(index: int) -> Outcome:
        request = generator.make(index)
        if "heavy" not in request.hazards:
            return caller.fire(request)
        # One limit-sized request at a time: several at once exhaust memory, which
        # test_hostile.py pins on its own (test_requests_at_the_limits_cost_bounded_memory).
        with heavy:
            return caller.fire(request)

    try:
        with (
            MemoryWatch(server_pids(fed)) as watch,
            Client(fed.address, key=material.key, timeout=60) as client,
            futures.ThreadPoolExecutor(workers, thread_name_prefix="hostile") as pool,
        ):
            for first in range(0, count, batch):
                indices = range(first, min(count, first + batch))
                for outcome in pool.map(one, indices):
                    report.add(outcome)
                where = f"after requests {indices.start}..{indices.stop - 1} (seed {seed})"
                dead = [n for n, p in processes.items() if p.poll() is not None]
                if dead:
                    report.crashes += [f"{n} exited {where}" for n in dead]
                    break
                report.stalls += [f"{s} {where}" for s in health(addresses)]
                try:
                    report.wrong += [f"{w} {where}" for w in probe(world, client)]
                except Exception as exc:  # any failure of real work is a finding
                    report.stalls.append(f"probe failed {where}: {type(exc).__name__}: {exc}")
                report.probes += 1
                if echo is not None:
                    echo(
                        f"  {indices.stop}/{count} sent, {report.internal_errors} internal "
                        f"({len(report.internal)} new), {len(report.hangs)} hangs, "
                        f"{time.monotonic() - started:.0f}s"
                    )
            report.peak_rss = watch.peak
    finally:
        caller.close()
    report.elapsed = time.monotonic() - started
    report.log_errors = _log_errors(fed)
    report.spool_bytes = _spool_bytes(spool)
    return report


def replay(seed: int, index: int, material: Material, caller: Caller) -> Outcome:
    """Rebuild request ``index`` of the run with ``seed`` and fire it again (to debug a failure
    printed as ``seed=S index=I kind=...``)."""
    return caller.fire(Generator(seed, material).make(index))
