"""Write the synthetic provincial federation to disk, one sub-directory per holder.

Run from anywhere: ``python scripts/generate_federation.py --enterprises 1000000
--transfers 10000000 --out /tmp/province``. It prints each table as it is written,
then the holders, the analyst inputs and the ground-truth files, the wall time and
the peak memory of the process, so the numbers in docs/synthetic-data.md can be
measured again on any machine.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from unseen.engine.data import synth  # noqa: E402

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--enterprises", type=int, default=5_000, help="number of enterprises (default 5000)"
    )
    parser.add_argument(
        "--transfers",
        type=int,
        default=None,
        help="transfers across all banks (default: 10 per enterprise)",
    )
    parser.add_argument(
        "--accounts", type=int, default=None, help="bank accounts (default: 2 per enterprise)"
    )
    parser.add_argument("--banks", type=int, default=3, help="number of banks (default 3)")
    parser.add_argument("--months", type=int, default=24, help="months of history (default 24)")
    parser.add_argument(
        "--format",
        dest="fmt",
        default=".parquet",
        choices=(".parquet", ".csv", ".duckdb", ".sqlite"),
        help="file format of holder tables (default .parquet)",
    )
    parser.add_argument(
        "--city-shards",
        action="store_true",
        help="also write electricity split into the 21 city holders (grid-<city>)",
    )
    return parser


def _peak_rss_gb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS; this script reports Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    """Generate, write and report; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        spec = synth.SynthSpec(
            seed=args.seed,
            enterprises=args.enterprises,
            months=args.months,
            banks=args.banks,
            accounts=args.accounts,
            transfers=args.transfers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"generating seed {spec.seed}: {spec.enterprises:,} enterprises, {spec.months} months, "
        f"{spec.banks} banks, {spec.account_count:,} accounts, {spec.transfer_count:,} "
        f"transfers, {spec.mule_count:,} mules -> {args.out}"
    )
    federation = synth.write_federation(spec, args.out, args.fmt, log=lambda line: print(" ", line))
    print(f"\nholders ({len(federation.holders)}):")
    for holder, tables in federation.holders.items():
        listed = ", ".join(f"{t}={p.relative_to(args.out)}" for t, p in tables.items())
        print(f"  {holder:<10} {listed}")
    for title, files in (("inputs", federation.inputs), ("truth", federation.truth)):
        print(f"{title}:")
        for name, path in files.items():
            print(f"  {name:<22} {path.relative_to(args.out)}")
    total_rows = sum(v for k, v in federation.rows.items() if k.split("/")[0] in federation.holders)
    print(
        f"\nwrote {total_rows:,} rows in {federation.seconds:.1f} s "
        f"(peak RSS {_peak_rss_gb():.2f} GB)"
    )
    if args.city_shards:
        started = time.perf_counter()
        shards = synth.write_city_shards(spec, args.out / "cities", args.fmt)
        print(
            f"city shards: {len(shards)} holders under {args.out / 'cities'} in "
            f"{time.perf_counter() - started:.1f} s (peak RSS {_peak_rss_gb():.2f} GB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
