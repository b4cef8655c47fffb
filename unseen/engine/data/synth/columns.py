"""Tables as dicts of numpy columns, with identifier columns kept lazily as integer parts.

A million enterprises times 24 months is 24 million identifiers; as numpy unicode
arrays they would take gigabytes and DuckDB would then dictionary-encode them
slowly. Instead an identifier column is kept as integer parts (:class:`Text`) and
DuckDB builds the strings while it streams the file out (a projection, so row
order holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

__all__ = [
    "Column",
    "Columns",
    "Digits",
    "Lookup",
    "Part",
    "Table",
    "Text",
    "materialise",
    "row_count",
    "split",
    "take",
]

# A table as the public functions return it: column name -> numpy array.
Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Lookup:
    """A string part chosen per row from a short list of labels by an integer code."""

    codes: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Digits:
    """A string part holding a non-negative integer, zero-padded to ``width`` digits."""

    values: np.ndarray
    width: int


Part: TypeAlias = str | Lookup | Digits


@dataclass(frozen=True)
class Text:
    """A string column as the concatenation of constant, looked-up and digit parts."""

    parts: tuple[Part, ...]
    rows: int

    def __len__(self) -> int:
        return self.rows

    def take(self, index: np.ndarray) -> Text:
        """The rows at ``index`` (integer positions or a boolean mask)."""
        parts: list[Part] = []
        for part in self.parts:
            if isinstance(part, Lookup):
                parts.append(Lookup(part.codes[index], part.labels))
            elif isinstance(part, Digits):
                parts.append(Digits(part.values[index], part.width))
            else:
                parts.append(part)
        rows = int(np.count_nonzero(index)) if index.dtype == bool else len(index)
        return Text(tuple(parts), rows)

    def materialise(self) -> np.ndarray:
        """The column as a numpy unicode array."""
        out: np.ndarray | None = None
        for part in self.parts:
            if isinstance(part, Lookup):
                piece = np.asarray(part.labels)[part.codes]
            elif isinstance(part, Digits):
                piece = np.char.zfill(part.values.astype(np.str_), part.width)
            else:
                piece = np.full(self.rows, part)
            out = piece if out is None else np.char.add(out, piece)
        assert out is not None
        return out


Column: TypeAlias = np.ndarray | Text
Table: TypeAlias = dict[str, Column]


def take(table: Mapping[str, Column], index: np.ndarray) -> Table:
    """The rows at ``index`` (integer positions or a boolean mask) of every column."""
    return {k: v.take(index) if isinstance(v, Text) else v[index] for k, v in table.items()}


def materialise(table: Mapping[str, Column]) -> Columns:
    """The table with its lazy string columns turned into numpy unicode arrays."""
    return {k: v.materialise() if isinstance(v, Text) else v for k, v in table.items()}


def row_count(table: Mapping[str, Column]) -> int:
    """How many rows the table has."""
    return len(next(iter(table.values())))


def split(columns: Columns, mask: np.ndarray) -> Columns:
    """Rows of ``columns`` where ``mask`` holds (for horizontal shards)."""
    return {k: v[mask] for k, v in columns.items()}
