"""The results document as tables: plain text for the terminal, Markdown for the docs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from unseen.bench.machine import machine_line
from unseen.bench.measure import Stat, fmt_bytes, fmt_ratio, fmt_seconds
from unseen.bench.processes import holder_peak_rss

__all__ = ["render", "tables"]

Table = tuple[str, list[str], list[list[str]]]


def _stat(data: dict[str, Any] | None) -> str:
    if not data or not data.get("runs"):
        return "-"
    return Stat(list(data["samples"])).seconds()


def _num(value: float | None, fmt: str = "{:.2g}") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return fmt.format(value)


def _bytes(value: float | None) -> str:
    return "-" if value is None else fmt_bytes(value)


def _count(value: int) -> str:
    for suffix, unit in (("M", 1_000_000), ("k", 1_000)):
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return f"{value:,}"


def _others(cell: dict[str, Any]) -> str:
    share = (cell.get("others_on_machine") or {}).get("others_share")
    return "-" if share is None else f"{share:.0%}"


def _aggregates(results: dict[str, Any]) -> Table:
    rows = []
    for cell in results["aggregates"]:
        rows.append(
            [
                f"{cell['holders']} x {_count(cell['rows_per_holder'])}",
                _stat(cell["federated_s"]),
                _stat(cell["centralized_s"]),
                fmt_ratio(cell["ratio"] if cell["ratio"] is not None else math.nan),
                _bytes(cell["bytes_per_query_per_holder"]),
                _num(cell["max_rel_error"]),
                _others(cell),
            ]
        )
    headers = [
        "holders x rows",
        "federated (encrypted)",
        "centralized DuckDB",
        "ratio",
        "bytes/query/holder",
        "max rel. error",
        "others' CPU",
    ]
    return "Aggregates: GROUP BY city (21 groups), COUNT/SUM/AVG/STDDEV", headers, rows


def _scoring(results: dict[str, Any]) -> Table:
    rows = []
    for cell in results["scoring"]:
        pail = cell.get("paillier") or {}
        rows.append(
            [
                f"{_count(cell['entities'])} x {cell['features']}",
                _stat(cell["end_to_end_s"]),
                _stat(cell.get("kernel_floor_s")),
                _stat(cell.get("sealapi_floor_s")),
                _stat(cell.get("sealapi_floor_cached_s")),
                _stat(cell.get("flood_per_block_s")),
                fmt_ratio(cell.get("ratio_to_floor") or math.nan),
                _stat(cell.get("numpy_s")),
                fmt_seconds(pail.get("wall_s_estimate", math.nan)) + (" (est.)" if pail else ""),
                fmt_ratio(cell.get("speedup_vs_paillier") or math.nan),
                _num(cell.get("bytes_per_entity_per_holder"), "{:.1f}"),
                _num(cell.get("max_abs_error")),
                _num(cell.get("max_abs_score"), "{:.3g}"),
                _others(cell),
            ]
        )
    headers = [
        "entities x features",
        "end to end",
        "HE kernel floor",
        "SEAL-evaluator floor",
        "SEAL floor, encoded",
        "flood/block",
        "e2e/floor",
        "numpy",
        "Paillier",
        "vs Paillier",
        "B/entity/holder",
        "max abs err",
        "max abs score",
        "others' CPU",
    ]
    return "Scoring over 3 holders (identity link)", headers, rows


def _holders(results: dict[str, Any]) -> Table:
    rows = []
    for cell in sorted(results["scaling"]["holders"], key=lambda c: c["holders"]):
        agg, score = cell["aggregate"], cell["scoring"]
        rows.append(
            [
                str(cell["holders"]),
                fmt_seconds(cell["startup_s"]),
                _stat(agg["federated_s"]),
                _stat(score["end_to_end_s"]),
                _bytes(cell["key_registration"]["max_bytes_per_holder"]),
                _bytes(holder_peak_rss(score["processes"])),
            ]
        )
    first = results["scaling"]["holders"][0] if results["scaling"]["holders"] else None
    what = (
        f"aggregate over {_count(first['aggregate']['rows_total'])} rows, score "
        f"{_count(first['scoring']['entities'])} x {first['scoring']['features']}"
        if first
        else ""
    )
    headers = [
        "holders",
        "start-up",
        "aggregate",
        "score",
        "key reg./holder",
        "holder peak RSS",
    ]
    return f"Scaling with holders ({what})", headers, rows


def _analysts(results: dict[str, Any]) -> Table:
    rows = []
    for cell in results["scaling"]["analysts"]:
        rows.append(
            [
                str(cell["analysts"]),
                cell["what"],
                str(cell["calls"]),
                fmt_seconds(cell["wall_s"]),
                f"{cell['throughput_per_s']:.2f}/s",
                _stat(cell["latency_s"]),
            ]
        )
    headers = ["analysts", "workload", "calls", "wall", "throughput", "latency"]
    return "Concurrent analysts (3 holders, one process each)", headers, rows


def _memory(results: dict[str, Any]) -> Table:
    rows = [
        [
            row["scenario"],
            _bytes(row["holder_peak_rss_bytes_max"]),
            _bytes(row["coordinator_peak_rss_bytes"]),
            _bytes(row["analyst_peak_rss_bytes"]),
        ]
        for row in results["memory"]
    ]
    headers = ["cell", "holder (max)", "coordinator", "analyst"]
    return "Peak RSS per process", headers, rows


def _wire(results: dict[str, Any]) -> Table:
    rows = []
    for holders, reg in results["wire"]["key_registration"].items():
        rows.append(
            [
                f"key registration, {holders} holder(s)",
                _bytes(reg["max_bytes_per_holder"]),
                _bytes(reg.get("analyst_to_coordinator")),
                f"public context {fmt_bytes(reg['public_context_bytes'])}",
            ]
        )
    for cell in results["scoring"]:
        reg = cell.get("model_registration_bytes_per_holder") or {}
        worst = max((v for v in reg.values() if v is not None), default=None)
        rows.append(
            [
                f"model registration {_count(cell['entities'])} x {cell['features']}",
                _bytes(worst),
                "-",
                "encrypted weights and the entity ids (phase 1)",
            ]
        )
    headers = ["what", "per holder (max)", "analyst -> coordinator", "note"]
    return "Registration traffic", headers, rows


def _targets(results: dict[str, Any]) -> Table:
    marks = {True: "met", False: "MISSED", None: "reported"}
    rows = [
        [t["name"], t["target"], t["display"], marks[t["met"]] if t["value"] is not None else "-"]
        for t in results.get("targets", [])
    ]
    return "Targets", ["target", "goal", "measured", "status"], rows


def tables(results: dict[str, Any]) -> list[Table]:
    out = [_aggregates(results), _scoring(results)]
    if results["scaling"]["holders"]:
        out.append(_holders(results))
    if results["scaling"]["analysts"]:
        out.append(_analysts(results))
    out += [_wire(results), _memory(results), _targets(results)]
    return [t for t in out if t[2]]


def _text_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    head = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    return "\n".join([title, line, head, line, *body, line])


def _markdown_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render(results: dict[str, Any], markdown: bool = False) -> str:
    """Every table, the machine and the notes, as text or Markdown."""
    machine = machine_line(results["machine"])
    when = results.get("finished_at", "")
    duration = fmt_seconds(results.get("duration_s", math.nan))
    header = f"unseen bench --{results['mode']}: {when}, {duration} in all\nMachine: {machine}"
    parts = [header if not markdown else header.replace("\n", "  \n")]
    for title, headers, rows in tables(results):
        parts.append(
            _markdown_table(title, headers, rows) if markdown else _text_table(title, headers, rows)
        )
    notes = results.get("notes", [])
    if notes:
        bullet = "- " if markdown else "* "
        parts.append("Notes:\n" + "\n".join(bullet + n for n in notes))
    return "\n\n".join(parts) + "\n"
