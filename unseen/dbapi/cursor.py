"""The DB-API cursor: run one query, hold its finished rows, hand them out.

An unseen query is answered whole (the analyst decrypts every group before
HAVING, ORDER BY and LIMIT), so a cursor holds the full result after
``execute`` and the ``fetch*`` methods page through it in memory.
``meta`` is the answer's metadata as ``unseen query --format json`` prints it:
suppressed groups, holders, receipts, and noise where a holder adds it.
Beyond PEP 249, in the style of DuckDB's Python API: ``df()``/``fetchdf()``
(pandas) and ``arrow()``/``fetch_arrow_table()`` (pyarrow) return the rows
not yet fetched with ``meta`` attached; neither library is needed otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from unseen.dbapi.errors import InterfaceError, NotSupportedError, translated
from unseen.dbapi.params import bind
from unseen.dbapi.types import column_type, decimal_scale
from unseen.engine.query.result import Result, json_value

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from unseen.dbapi.connection import Connection

__all__ = ["META_KEY", "Cursor", "Description"]

# Where the answer's meta travels on a DataFrame (``df.attrs``) and an Arrow schema's metadata.
META_KEY = "unseen"

Description = tuple[str, str | None, None, None, int | None, int | None, bool]


class Cursor:
    """A PEP 249 cursor over one :class:`~unseen.dbapi.connection.Connection`."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.arraysize = 1
        self._result: Result | None = None
        self._position = 0
        self._closed = False

    # -- PEP 249 attributes -----------------------------------------------------
    @property
    def description(self) -> list[Description] | None:
        """One 7-tuple per column: name, type code, -, -, precision, scale, null_ok."""
        if self._result is None:
            return None
        rows = self._result.rows
        out: list[Description] = []
        for index, name in enumerate(self._result.columns):
            values = [row[index] for row in rows]
            code = column_type(values)
            scale = decimal_scale(values) if code == "DECIMAL" else None
            # Every cell may be NULL: a suppressed group's aggregates are.
            out.append((name, code, None, None, None, scale, True))
        return out

    @property
    def rowcount(self) -> int:
        """Rows the last ``execute`` produced; -1 before one."""
        return -1 if self._result is None else len(self._result.rows)

    @property
    def meta(self) -> dict[str, Any]:
        """The last answer's metadata (suppressed groups, holders, receipts, ...)."""
        return {} if self._result is None else self._result.meta

    @property
    def lastrowid(self) -> None:
        return None  # nothing is ever inserted

    # -- PEP 249 methods --------------------------------------------------------
    def execute(
        self, operation: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Cursor:
        """Answer one SELECT over the federation; parameters bound as literals (``?``/``:name``)."""
        self._check_open()
        sql = bind(operation, parameters)
        with translated():
            result = self.connection.client.query(sql)
        self._result, self._position = result, 0
        return self

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Sequence[Any] | Mapping[str, Any]]
    ) -> None:
        """Refused: every statement is a read, so there is nothing to batch."""
        raise NotSupportedError("executemany: unseen answers SELECTs only; call execute per query")

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._take(1)
        return rows[0] if rows else None

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        return self._take(self.arraysize if size is None else size)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._take(None)

    def close(self) -> None:
        self._closed = True
        self._result = None

    def setinputsizes(self, sizes: object) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def setoutputsize(self, size: int, column: int | None = None) -> None:
        """Accepted and ignored, as PEP 249 allows."""

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- DuckDB-style extensions --------------------------------------------------
    def fetch_arrow_table(self) -> pyarrow.Table:
        """The rows not yet fetched as a pyarrow Table; ``meta`` as JSON in its schema metadata."""
        import pyarrow

        result = self._require_result()
        rows = self._take(None)
        columns = [
            _arrow_column(pyarrow, [row[i] for row in rows]) for i in range(len(result.columns))
        ]
        table = pyarrow.Table.from_arrays(columns, names=list(result.columns))
        meta = json.dumps(result.meta, default=json_value)
        return table.replace_schema_metadata({META_KEY: meta})

    arrow = fetch_arrow_table

    def fetchdf(self) -> pandas.DataFrame:
        """The rows not yet fetched as a pandas DataFrame, built as ``pandas.read_sql`` does.

        ``df.attrs["unseen"]`` holds ``meta``.
        """
        import pandas

        result = self._require_result()
        rows = self._take(None)
        frame = pandas.DataFrame.from_records(rows, columns=list(result.columns), coerce_float=True)
        frame.attrs[META_KEY] = result.meta
        return frame

    df = fetchdf

    # -- internals -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self.connection.check_open()

    def _require_result(self) -> Result:
        self._check_open()
        if self._result is None:
            raise InterfaceError("no result: call execute() first")
        return self._result

    def _take(self, size: int | None) -> list[tuple[Any, ...]]:
        result = self._require_result()
        end = len(result.rows) if size is None else self._position + max(size, 0)
        rows = result.rows[self._position : end]
        self._position += len(rows)
        return [tuple(row) for row in rows]


def _arrow_column(pyarrow: Any, values: list[Any]) -> Any:
    """An Arrow array of one column; integers beyond int64 (exact sums) become decimals."""
    try:
        return pyarrow.array(values)
    except (OverflowError, pyarrow.lib.ArrowInvalid):
        if not all(v is None or isinstance(v, (int, Decimal)) for v in values):
            raise
        return pyarrow.array([None if v is None else Decimal(v) for v in values])
