"""The project's performance targets, checked against one results document."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import partial
from typing import Any

from unseen.bench.measure import fmt_bytes, fmt_ratio
from unseen.bench.processes import holder_peak_rss

__all__ = ["add_best_ratios", "evaluate_targets"]

MB = 1_000_000


def _best(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None) -> float | None:
    """Ratio of the fastest runs: less sensitive to other programs than the medians' ratio."""
    if not numerator or not denominator or not numerator.get("runs") or not denominator.get("runs"):
        return None
    bottom = min(denominator["samples"])
    return min(numerator["samples"]) / bottom if bottom > 0 else None


def add_best_ratios(results: dict[str, Any]) -> None:
    """Add best-of-runs ratios (fastest over fastest) beside the ratios of medians.

    On a shared machine other programs slow some runs down; the fastest run of
    each side is the closer estimate of an undisturbed run, so targets are
    judged on both ratios (the less favourable one).
    """
    for cell in results.get("aggregates", []):
        cell["ratio_best"] = _best(cell.get("federated_s"), cell.get("centralized_s"))
    for cell in results.get("scoring", []):
        cell["ratio_to_floor_best"] = _best(cell.get("end_to_end_s"), cell.get("kernel_floor_s"))
        paillier = cell.get("paillier")
        runs = cell.get("end_to_end_s", {}).get("samples")
        if paillier and runs and min(runs) > 0:
            cell["speedup_vs_paillier_best"] = paillier["wall_s_estimate"] / min(runs)


def _both(median: float | None, best: float | None, worse: Callable[..., float]) -> float | None:
    values = [v for v in (median, best) if v is not None and math.isfinite(v)]
    return worse(values) if values else None


def _show_both(median: float | None, best: float | None) -> Callable[[float], str]:
    def show(_: float) -> str:
        text = fmt_ratio(median if median is not None else math.nan)
        if best is not None:
            text += f" (best-of {fmt_ratio(best)})"
        return text

    return show


def _find(cells: list[dict[str, Any]], **wanted: int) -> dict[str, Any] | None:
    for cell in cells:
        if all(cell.get(k) == v for k, v in wanted.items()):
            return cell
    return None


def _target(
    name: str,
    goal: str,
    value: float | None,
    check: Callable[[float], bool] | None,
    show: Callable[[float], str],
    detail: str = "",
) -> dict[str, Any]:
    measured = value is not None and math.isfinite(value)
    return {
        "name": name,
        "target": goal,
        "value": value if measured else None,
        "display": show(value) if measured and value is not None else "not measured",
        "met": (bool(check(value)) if check and measured and value is not None else None),
        "detail": detail,
    }


def _peak(cell: dict[str, Any] | None) -> tuple[float | None, str]:
    if cell is None:
        return None, ""
    processes = cell["processes"]
    peak = holder_peak_rss(processes)
    detail = (
        f"holder max {fmt_bytes(peak or math.nan)}, coordinator "
        f"{fmt_bytes(processes['coordinator']['peak_rss_bytes'] or math.nan)}, analyst "
        f"{fmt_bytes(processes['analyst']['peak_rss_bytes'] or math.nan)}"
    )
    return peak, detail


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Where each target stands: value, display text and met (None: not measured/no bound)."""
    scoring = results.get("scoring", [])
    aggregates = results.get("aggregates", [])
    cell = _find(scoring, entities=100_000, features=30) or {}
    floor, floor_best = cell.get("ratio_to_floor"), cell.get("ratio_to_floor_best")
    speed, speed_best = cell.get("speedup_vs_paillier"), cell.get("speedup_vs_paillier_best")
    out = [
        _target(
            "scoring 100k x 30, 3 holders: end to end / kernel floor",
            "<= 1.5x",
            _both(floor, floor_best, max),
            lambda v: v <= 1.5,
            _show_both(floor, floor_best),
        ),
        _target(
            "scoring 100k x 30: speed-up over Paillier (2048-bit, extrapolated)",
            ">= 1000x",
            _both(speed, speed_best, min),
            lambda v: v >= 1000,
            _show_both(speed, speed_best),
        ),
    ]
    # Issue 9 tightened 3 x 1M from 1.5x to 1.2x once aggregates moved to BFV.
    for rows, bound in ((1_000_000, 1.2), (10_000_000, 1.1)):
        agg = _find(aggregates, rows_per_holder=rows) or {}
        median, best = agg.get("ratio"), agg.get("ratio_best")
        out.append(
            _target(
                f"aggregates 3 x {rows // 1_000_000}M rows: federated / centralized DuckDB",
                f"<= {bound}x",
                _both(median, best, max),
                partial(operator.ge, bound),  # bound >= v
                _show_both(median, best),
            )
        )
    full_blocks = [c for c in scoring if c.get("bytes_per_entity_per_holder")]
    traffic_cell = cell if cell.get("bytes_per_entity_per_holder") else None
    if traffic_cell is None and full_blocks:
        traffic_cell = max(full_blocks, key=lambda c: c["entities"])
    out.append(
        _target(
            "score traffic per entity per holder (holder -> coordinator)",
            "<= 64 B",
            traffic_cell.get("bytes_per_entity_per_holder") if traffic_cell else None,
            lambda v: v <= 64,
            lambda v: f"{v:.1f} B",
            f"{traffic_cell['entities']:,} x {traffic_cell['features']}" if traffic_cell else "",
        )
    )
    registrations = results.get("wire", {}).get("key_registration", {})
    worst = max((r["max_bytes_per_holder"] for r in registrations.values()), default=None)
    out.append(
        _target(
            "key registration per holder (no rotation keys)",
            "<= 1 MB",
            worst,
            lambda v: v <= MB,
            fmt_bytes,
        )
    )
    big_scores = [c for c in scoring if c["entities"] >= 1_000_000]
    peak, detail = _peak(max(big_scores, key=lambda c: c["features"]) if big_scores else None)
    out.append(
        _target(
            "1M-entity scoring: peak RSS per holder",
            "bounded (reported)",
            peak,
            None,
            fmt_bytes,
            detail,
        )
    )
    peak, detail = _peak(_find(aggregates, rows_per_holder=10_000_000))
    out.append(
        _target(
            "10M-row holders (aggregates): peak RSS per holder",
            "bounded (reported)",
            peak,
            None,
            fmt_bytes,
            detail,
        )
    )
    return out
