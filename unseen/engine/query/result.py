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
            lines.append(f"({len(suppressed)} group(s) suppressed: fewer than k rows at a holder)")
        if self.meta.get("partial"):
            missing = ", ".join(self.meta.get("missing_holders", []))
            lines.append(f"(PARTIAL answer: holders {missing} were unavailable and are not in it)")
        return "\n".join(lines)

    def format(self, kind: str) -> str:
        if kind == "json":
            return self.to_json()
        if kind == "csv":
            return self.to_csv().rstrip("\n")
        return self.to_table()


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
