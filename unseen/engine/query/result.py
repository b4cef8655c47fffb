"""Query results and their three output formats (table, json, csv).

``--format json`` prints one object ``{"columns": [...], "rows": [[...]],
"meta": {...}}``: exact integers stay integers, decimals and floats become
JSON numbers, dates ISO strings, suppressed cells ``null`` (and listed in
``meta.suppressed``), and non-finite floats the strings "inf", "-inf", "nan"
because JSON has no literal for them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = ["Result", "json_value"]


def json_value(value: Any) -> Any:
    """A value as it appears in JSON output."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and abs(value) < 2**53
            else float(value)
        )
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


@dataclass
class Result:
    columns: list[str]
    rows: list[list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "columns": self.columns,
                "rows": [[json_value(v) for v in row] for row in self.rows],
                "meta": self.meta,
            },
            default=json_value,
        )

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else _text(v) for v in row])
        return buffer.getvalue()

    def to_table(self) -> str:
        cells = [self.columns] + [[_text(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = []
        for n, row in enumerate(cells):
            lines.append(
                "  ".join(
                    c.rjust(w) if n and _numeric(c) else c.ljust(w)
                    for c, w in zip(row, widths, strict=True)
                ).rstrip()
            )
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        suppressed = self.meta.get("suppressed") or []
        if suppressed:
            why = sorted({str(s.get("reason") or "k") for s in suppressed})
            lines.append(f"({len(suppressed)} group(s) suppressed; rules: {', '.join(why)})")
        if self.meta.get("partial"):
            missing = ", ".join(self.meta.get("missing_holders", []))
            lines.append(f"(PARTIAL answer: holders {missing} were unavailable and are not in it)")
        if self.meta.get("dp"):
            lines.extend(dp_lines(self.columns, self.meta["dp"]))
        return "\n".join(lines)

    def format(self, kind: str) -> str:
        if kind == "json":
            return self.to_json()
        if kind == "csv":
            return self.to_csv().rstrip("\n")
        return self.to_table()


def dp_lines(columns: list[str], dp: dict[str, Any]) -> list[str]:
    """The table output's dp footer: what the noise is, per cell, and the budget left."""
    lines = [
        f"(differential privacy: rho={dp['rho']:.4g} for this query, i.e. "
        f"epsilon={dp['epsilon']:.3g} at delta={dp['delta']:g}; noise sd and 95% interval:)"
    ]
    for n, (sds, intervals) in enumerate(zip(dp["sd"], dp["interval95"], strict=True)):
        cells = [
            f"{c} ±{1.96 * sd:.4g} [{lo:.6g}, {hi:.6g}]"
            for c, sd, span in zip(columns, sds, intervals, strict=True)
            if sd is not None and span is not None
            for lo, hi in [span]
        ]
        if cells:
            lines.append(f"  row {n + 1}: " + "; ".join(cells))
    for budget in dp.get("budget", []):
        lines.append(
            f"(budget at {budget['holder']}: rho spent {float(Fraction(budget['spent'])):.4g} of "
            f"{float(Fraction(budget['budget'])):.4g}, {budget['left']:.4g} left)"
        )
    return lines


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
