"""What differential privacy adds to one holder's aggregate answer: noise and accounting.

Run ``python -m unseen.bench.dp_overhead``: for answers filling 4096 slots (and a
typical 21-city answer) it times, per query and holder, the OpenDP accounting
(calibration and composed cost) and the noise shares added to the packed limbs.
Not a test: nothing asserts on time.
"""

from __future__ import annotations

import statistics
import time
from fractions import Fraction
from types import MappingProxyType

from unseen.engine.privacy.dp_accounting import calibrate
from unseen.engine.privacy.dp_charge import query_rho
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.noise import add_noise
from unseen.engine.query.catalog import Catalog, ColumnInfo, TableInfo
from unseen.engine.query.layout import layout_for, pack
from unseen.engine.query.sql import compile_sql
from unseen.engine.query.types import SqlType

POLICY = DpPolicy(
    "uscc", 1, Fraction(1, 40), MappingProxyType({"amount": (Fraction(0), Fraction(120000))})
)


def _plan(groups: int):
    domain = tuple(f"g{i:05d}" for i in range(groups))
    table = TableInfo(
        "t",
        (
            ColumnInfo("uscc", SqlType("VARCHAR")),
            ColumnInfo("g", SqlType("VARCHAR"), frozenset({"group"}), domain),
            ColumnInfo("amount", SqlType("INTEGER"), frozenset({"aggregate"})),
        ),
        dp=POLICY,
    )
    return compile_sql(
        "SELECT g, COUNT(*), SUM(amount) FROM t GROUP BY g", Catalog("h", (table,))
    ).plan


def measure(groups: int, repeats: int = 20) -> dict[str, float]:
    plan = _plan(groups)
    layout = layout_for(plan)
    accounting, noise, cpu = [], [], []
    for _ in range(repeats):
        vectors = pack(plan, layout, {})
        cpu_started = time.process_time()
        started = time.perf_counter()
        calibrated = calibrate(plan, POLICY)
        query_rho(plan, POLICY)
        middle = time.perf_counter()
        add_noise(plan, layout, vectors, calibrated, 1)
        done = time.perf_counter()
        cpu.append((time.process_time() - cpu_started) * 1000)
        accounting.append((middle - started) * 1000)
        noise.append((done - middle) * 1000)
    return {
        "groups": groups,
        "slots": layout.total_slots,
        "noisy_values": groups * len(calibrate(plan, POLICY)),
        "accounting_ms": statistics.median(accounting),
        "noise_ms": statistics.median(noise),
        # CPU time of this process: what the work costs when the machine is shared.
        "cpu_ms": statistics.median(cpu),
    }


def main() -> None:
    codec_record = layout_for(_plan(1)).record_width
    for groups in (21, 4096 // codec_record):
        row = measure(groups)
        print(
            f"{row['groups']:>5} groups, {row['slots']:>5} slots, {row['noisy_values']:>5} noisy "
            f"values: accounting {row['accounting_ms']:.2f} ms, noise {row['noise_ms']:.2f} ms, "
            f"total {row['accounting_ms'] + row['noise_ms']:.2f} ms wall, "
            f"{row['cpu_ms']:.2f} ms CPU per query per holder"
        )


if __name__ == "__main__":
    main()
