"""Jointly trained AUC against exact logistic regression over seeds (issue 15).

Runs the province check of tests/integration/test_joint_accuracy.py — real gRPC,
real TenSEAL, the scorecard's tax, hr and samr features, 12 iterations — for
each seed, class-weighted (negatives 0.25, the default) and, with
``--unweighted``, also with every entity weighted 1 (the protocol before the
class weights), and prints one line per run and a summary; ``--out`` writes JSON.
CI runs three of the seeds (the test); this runs all eight.

    python scripts/joint_auc_seeds.py [--seeds 1-8] [--enterprises 6000] [--unweighted] [--out F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.test_joint_accuracy import province_accuracy  # noqa: E402
from unseen.engine.crypto.keys import AnalystKey  # noqa: E402


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-8")
    parser.add_argument("--enterprises", type=int, default=6000)
    parser.add_argument("--unweighted", action="store_true", help="also run weight 1 (before)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    key = AnalystKey.generate()
    weights = [0.25, 1.0] if args.unweighted else [0.25]
    runs = []
    for weight in weights:
        for seed in _seeds(args.seeds):
            found = province_accuracy(seed, key, args.enterprises, weight)
            found["negative_weight"] = weight
            found["gap"] = found["exact_auc"] - found["joint_auc"]
            runs.append(found)
            print(
                f"negative_weight={weight:<4} seed={seed} joint={found['joint_auc']:.4f} "
                f"exact={found['exact_auc']:.4f} gap={found['gap']:+.4f} "
                f"max|score-plaintext|={found['max_score_difference']:.1e}",
                flush=True,
            )
    for weight in weights:
        gaps = [r["gap"] for r in runs if r["negative_weight"] == weight]
        print(
            f"negative_weight={weight}: gap {min(gaps):+.4f}…{max(gaps):+.4f}, "
            f"mean {sum(gaps) / len(gaps):+.4f}, max |gap| {max(map(abs, gaps)):.4f}"
        )
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
