"""The full hardening run: 10 000 hostile requests, 8 analysts x 50 concurrent queries, attacks.

    python scripts/stress.py [--requests 10000] [--seed 1126] [--analysts 8] [--queries 50]
                             [--rss-mb 1536] [--workdir DIR] [--skip-attacks]

Part 1 fires the hostile mix of ``tests/hostile/`` at a federation of separate processes
(three holders of a unicode- and NULL-heavy table, a governed holder with a ledger, a
coordinator), checking after every 200 requests that every process lives, answers health
checks and answers real queries correctly. Part 2 runs the concurrent load of
``tests/integration/test_load.py`` against three other holders, every answer checked against
DuckDB, then drives 200 concurrent slow calls at a holder and at the coordinator (load
shedding). Part 3 runs the resource attacks of ``tests/attacks/`` (streams that never finish,
five million entity ids, a 96 000-node measure, expensive work past a one-second deadline, and
the rest kept there), each against real servers while an honest analyst's answers are checked
against DuckDB; every attack that works again counts as a failure. The CI suite runs the same
code (parts 1 and 2 at a reduced size).

Prints requests sent, crashes, hangs, wrong answers, internal errors and the peak RSS of
every server process, and exits 1 if any count is non-zero or a process outgrew the memory
bound. Known defects count: they are real, and ``tests/integration/test_hostile.py`` pins
each one with a strict xfail until it is fixed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import hostile  # noqa: E402
from tests.integration import test_load as load  # noqa: E402
from unseen.engine.crypto.keys import AnalystKey  # noqa: E402


def _hostile(workdir: Path, requests: int, seed: int) -> hostile.Report:
    root = workdir / "hostile"
    spool = root / "tmp"
    spool.mkdir(parents=True)
    world = hostile.build_world(root)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(spool)  # the holders' model spool, measured at the end
    try:
        fed = hostile.start_federation(world)
    finally:
        if saved is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved
    try:
        material = hostile.make_material(fed, world, AnalystKey.generate())
        return hostile.run_hostile(fed, world, material, requests, seed, echo=print, spool=spool)
    finally:
        fed.stop()


def _load(
    workdir: Path, analysts: int, queries: int
) -> tuple[load.LoadReport, dict[str, load.Shedding], list[str]]:
    root = workdir / "load"
    root.mkdir(parents=True)
    world = load.build_load_world(root)
    fed = load.start_load_federation(world)
    try:
        report = load.run_load(fed, world, analysts, queries)
        key = AnalystKey.generate()
        addresses = hostile.addresses_of(fed)
        shedding = {t: load.slow_calls(addresses[t], t, key.public) for t in ("h0", "coordinator")}
        stalls = hostile.health(addresses)
        dead = [n.name for n in fed.nodes if n.process.poll() is not None]
        if fed.coordinator is not None and fed.coordinator.process.poll() is not None:
            dead.append("coordinator")
        return report, shedding, stalls + [f"{name} exited" for name in dead]
    finally:
        fed.stop()


def _attacks() -> tuple[int, list[str]]:
    """Run tests/attacks/ in a child pytest; (attacks run, the ones that worked again)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-rfE",
            "-p",
            "no:cacheprovider",
            "tests/attacks",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    lines = done.stdout.splitlines()
    for line in lines:
        if "grew by" in line or "CPU-s" in line:
            print(f"  {line.strip().lstrip('.FE')}")
    failing = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    worked = [line.split(" ", 1)[1].split(" - ")[0] for line in failing]
    summary = re.search(r"(\d+) passed", lines[-1]) if lines else None
    ran = (int(summary.group(1)) if summary else 0) + len(worked)
    print(f"  {lines[-1] if lines else done.stderr[-500:]}")
    if done.returncode not in (0, 1):
        worked.append(f"pytest exited {done.returncode}")
    return ran, worked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1126)
    parser.add_argument("--analysts", type=int, default=8)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rss-mb", type=int, default=hostile.RSS_BOUND >> 20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-attacks", action="store_true", help="skip part 3")
    args = parser.parse_args(argv)
    bound = args.rss_mb << 20
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="unseen-stress-"))
    started = time.monotonic()

    print(f"part 1: {args.requests} hostile requests, seed {args.seed} (work in {workdir})")
    report = _hostile(workdir, args.requests, args.seed)
    print(report.summary(bound))

    print(f"part 2: {args.analysts} analysts x {args.queries} queries, then load shedding")
    load_report, shedding, load_stalls = _load(workdir, args.analysts, args.queries)
    print(load_report.summary())
    shed_problems = []
    for target, outcome in shedding.items():
        print(
            f"shedding at {target}: {len(outcome.admitted)} admitted "
            f"({sorted(set(outcome.admitted))}), {len(outcome.shed)} shed "
            f"({sorted(set(outcome.shed))})"
        )
        if len(outcome.admitted) != load.PER_CALLER or set(outcome.admitted) != {"OK"}:
            shed_problems.append(f"{target}: admitted {outcome.admitted[:3]}...")
        if outcome.shed != ["RESOURCE_EXHAUSTED"] * (load.SLOW_CALLS - load.PER_CALLER):
            shed_problems.append(f"{target}: shed {sorted(set(outcome.shed))}")

    attacks, worked = 0, []
    if not args.skip_attacks:
        print("part 3: the resource attacks of tests/attacks/, each against real servers")
        attacks, worked = _attacks()

    peaks = {**report.peak_rss, **{f"load.{n}": p for n, p in load_report.peak_rss.items()}}
    over = [name for name, peak in peaks.items() if peak > bound]
    counts = {
        "requests sent": report.sent + load_report.queries,
        "crashes": len(report.crashes) + sum("exited" in s for s in load_stalls),
        "hangs": len(report.hangs) + len(report.stalls) + len(load_stalls),
        "wrong answers": len(report.wrong) + len(load_report.wrong),
        "internal errors": report.internal_errors,
        "other failures": len(report.unavailable) + len(load_report.errors) + len(shed_problems),
        "processes over the memory bound": len(over),
        "attacks that worked again": len(worked),
    }
    elapsed = time.monotonic() - started
    print()
    print(
        f"verdict after {elapsed:.0f}s ({report.sent} hostile + {load_report.queries} load"
        f" + {attacks} attack tests):"
    )
    for name, value in counts.items():
        print(f"  {name:32} {value}")
    print("  peak RSS (MiB): " + ", ".join(f"{n}={p >> 20}" for n, p in peaks.items()))
    if report.known:
        print(
            f"  of the internal errors, {sum(report.known.values())} are known defects pinned by "
            "strict xfails in tests/integration/test_hostile.py"
        )
    for problem in [*report.problems(bound), *load_report.errors, *load_report.wrong][:20]:
        print(f"  PROBLEM {problem}")
    for problem in shed_problems + load_stalls + [f"attack worked: {w}" for w in worked]:
        print(f"  PROBLEM {problem}")
    failing = any(value for name, value in counts.items() if name != "requests sent")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
