"""Compare an encrypted answer with the same query answered in plaintext.

Used by ``unseen demo``, the tests and the benchmarks, so the tolerance is
stated once: integers, strings, dates and NULLs must match exactly; floats
within 1e-6 relative, or 1e-6 absolute where the value is below 1 in
magnitude. Rows are compared in order when the query orders them, as
multisets otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import sqlglot
from sqlglot import exp

from unseen.engine.privacy.suppression import (
    DEFAULT_P,
    SPREAD_STATS,
    CellFacts,
    SuppressionRules,
    failing_groups,
    measure_spreads,
)
from unseen.engine.query.compiled import CompiledQuery
from unseen.engine.query.expr import GroupRef
from unseen.engine.query.model import Model
from unseen.engine.query.plan import AggregatePlan

__all__ = [
    "REL_TOL",
    "Verdict",
    "cells_agree",
    "check_answer",
    "compare_rows",
    "plaintext_features",
    "plaintext_scores",
    "rows_agree",
    "suppressed_keys",
    "verify",
]

REL_TOL = 1e-6


def cells_agree(ours: Any, theirs: Any, rel_tol: float = REL_TOL) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return bool(ours) == bool(theirs) and type(ours) is type(theirs)
    if isinstance(ours, int) and isinstance(theirs, int):
        return ours == theirs
    if isinstance(ours, (int, float, Decimal)) and isinstance(theirs, (int, float, Decimal)):
        a, b = float(ours), float(theirs)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        if isinstance(ours, Decimal) and isinstance(theirs, Decimal):
            return ours == theirs
        return abs(a - b) <= rel_tol * max(1.0, abs(b))
    if isinstance(ours, dt.date) or isinstance(theirs, dt.date):
        return str(ours) == str(theirs)
    return bool(ours == theirs)


def rows_agree(ours: Sequence[Any], theirs: Sequence[Any]) -> bool:
    return len(ours) == len(theirs) and all(
        cells_agree(a, b) for a, b in zip(ours, theirs, strict=True)
    )


def _sort_key(row: Sequence[Any]) -> tuple[Any, ...]:
    # Floats are keyed at 6 significant digits so that an encrypted answer and
    # its plaintext twin, equal within tolerance, sort into the same place.
    def cell(v: Any) -> tuple[bool, str]:
        if isinstance(v, (float, Decimal)):
            return (False, f"{float(v):.6g}")
        return (v is None, str(v))

    return tuple(cell(v) for v in row)


def compare_rows(
    ours: Sequence[Sequence[Any]], theirs: Sequence[Sequence[Any]], ordered: bool
) -> list[bool]:
    """Per-row agreement marks; a length mismatch marks the unmatched rows False."""
    if not ordered:
        ours = sorted(ours, key=_sort_key)
        theirs = sorted(theirs, key=_sort_key)
    marks = [rows_agree(a, b) for a, b in zip(ours, theirs, strict=False)]
    marks += [False] * abs(len(ours) - len(theirs))
    return marks


# Aggregates whose argument's magnitudes are published (the dominance rule applies).
_MAGNITUDE = (
    exp.Sum,
    exp.Avg,
    exp.Variance,
    exp.VariancePop,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
)


def _magnitude_arguments(tree: exp.Expr) -> list[exp.Expression]:
    """The distinct arguments of the query's SUM/AVG/VAR/STDDEV calls.

    ``agg(x) FILTER (WHERE c)`` reads ``CASE WHEN c THEN x END`` (NULL, so not
    a contribution, where ``c`` does not hold), as the holders' measures do.
    """
    seen: dict[str, exp.Expression] = {}
    for call in tree.find_all(*_MAGNITUDE):
        argument = call.this
        if isinstance(argument, exp.Distinct) or argument is None:
            continue
        parent = call.parent
        if isinstance(parent, exp.Filter) and isinstance(parent.expression, exp.Where):
            condition = parent.expression.this.copy()
            argument = exp.Case(ifs=[exp.If(this=condition, true=argument.copy())])
        seen.setdefault(argument.sql("duckdb"), argument)
    return list(seen.values())


def suppressed_keys(
    sql: str,
    group_columns: Sequence[str | exp.Expression],
    shards: Sequence[str],
    k: int,
    run: Callable[[str], list[tuple[Any, ...]]],
    plan: AggregatePlan | None = None,
    p: float = DEFAULT_P,
) -> set[tuple[Any, ...]]:
    """Groups some shard must suppress (``unseen.engine.privacy.suppression``), found in plaintext.

    The analyst's WHERE clause and aggregate arguments are reused verbatim in
    ``SELECT <group cols>, COUNT(*), <sum, max and second max of |arg|>...
    FROM <shard> WHERE <same filter> GROUP BY <group cols>``, run on each shard
    by ``run`` (a DuckDB connection's executor, say), so the row semantics are
    the engine's own, not unseen's plan and pushdown code; only the decision
    itself is :func:`unseen.engine.privacy.suppression.failing_groups`. Without ``plan`` only
    the k rule is checked.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    columns = [
        exp.column(name, quoted=True) if isinstance(name, str) else name for name in group_columns
    ]
    arguments = _magnitude_arguments(tree) if plan is not None else []
    stats: list[exp.Expr] = []
    for argument in arguments:
        x = f"CAST(({argument.sql('duckdb')}) AS DOUBLE)"
        # SPREAD_STATS, written out as DuckDB SQL (not built by unseen.engine.data.pushdown).
        texts = {
            "sum": f"SUM({x})",
            "abs_sum": f"SUM(ABS({x}))",
            "abs_max": f"MAX(ABS({x}))",
            "abs_second": f"list_extract(max(ABS({x}), 2), 2)",
            "min": f"MIN({x})",
            "max": f"MAX({x})",
            "second_max": f"list_extract(max({x}, 2), 2)",
            "second_min": f"list_extract(min({x}, 2), 2)",
        }
        stats.append(sqlglot.parse_one(f"COUNT({x})", read="duckdb"))
        names = ("sum", *SPREAD_STATS)
        stats += [sqlglot.parse_one(texts[name], read="duckdb") for name in names]
    rules = SuppressionRules(k=k, p=p)
    width = len(columns)
    out: set[tuple[Any, ...]] = set()
    for shard in shards:
        query = exp.select(*[c.copy() for c in columns], exp.Count(this=exp.Star()), *stats)
        query = query.from_(exp.table_(shard, quoted=True))
        where = tree.args.get("where")
        if where is not None:
            query = query.where(where.this.copy())
        if columns:
            query = query.group_by(*[c.copy() for c in columns])
        rows = run(query.sql("duckdb"))
        cells = {}
        step = 2 + len(SPREAD_STATS)  # count, sum, then the statistics
        for index, row in enumerate(rows):
            values = row[width + 1 :]
            spreads = tuple(
                measure_spreads(
                    dict(zip(SPREAD_STATS, values[i + 2 : i + step], strict=True)),
                    values[i],
                    float(values[i + 1] or 0.0),
                )
                for i in range(0, len(values), step)
            )
            cells[index] = CellFacts(int(row[width]), spreads)
        if plan is None:
            failing = {i for i, c in cells.items() if 0 < c.rows < k}
        else:
            failing = set(failing_groups(cells, plan, rules))
        out.update(tuple(rows[i][:width]) for i in failing)
    return out


@dataclass
class Verdict:
    """The outcome of checking one encrypted answer against plaintext."""

    marks: list[str]  # per row of ours: "ok", "suppressed", "MISMATCH"
    expected: list[list[Any]]  # the plaintext row shown beside each of ours
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    columns: Sequence[str],
    ours: Sequence[Sequence[Any]],
    our_suppressed: set[tuple[Any, ...]],
    theirs: Sequence[Sequence[Any]],
    expected_suppressed: set[tuple[Any, ...]],
    key_positions: Sequence[int],
    ordered: bool,
) -> Verdict:
    """Check an encrypted result against the plaintext one, suppression included.

    ``key_positions`` are the output columns holding the GROUP BY values (in
    group order; empty for a query without GROUP BY, whose one row has the key
    ``()``). A group suppressed by unseen must be exactly one that some shard
    holds with fewer than k rows; its cells must be NULL; every other row must
    agree with the plaintext row within the stated tolerance.
    """
    problems = []
    # Keys from result meta are JSON values (dates as ISO text): compare normalised.
    if {tuple(map(_norm, k)) for k in our_suppressed} != {
        tuple(map(_norm, k)) for k in expected_suppressed
    }:
        problems.append(
            f"suppressed groups differ: unseen {sorted(map(str, our_suppressed))}, "
            f"plaintext says {sorted(map(str, expected_suppressed))}"
        )

    def key(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(_norm(row[p]) for p in key_positions)

    hidden = {tuple(_norm(v) for v in k) for k in expected_suppressed}
    theirs_by_key = {key(r): r for r in theirs}
    kept_ours = [r for r in ours if key(r) not in hidden]
    kept_theirs = [r for r in theirs if key(r) not in hidden]
    agreement = compare_rows(kept_ours, kept_theirs, ordered)
    if not ordered:
        kept_ours = sorted(kept_ours, key=_sort_key)
        kept_theirs = sorted(kept_theirs, key=_sort_key)
    verdict_by_row: dict[int, tuple[str, list[Any]]] = {}
    for i, row in enumerate(kept_ours):
        good = agreement[i] if i < len(agreement) else False
        other = list(kept_theirs[i]) if i < len(kept_theirs) else []
        verdict_by_row[id(row)] = ("ok" if good else "MISMATCH", other)
    if len(kept_ours) != len(kept_theirs):
        problems.append(f"{len(kept_ours)} rows where plaintext has {len(kept_theirs)}")
    marks, expected = [], []
    for row in ours:
        if key(row) in hidden:
            cells_null = all(v is None for p, v in enumerate(row) if p not in key_positions)
            marks.append("suppressed" if cells_null else "MISMATCH")
            if not cells_null:
                problems.append(f"suppressed group {key(row)} shows values")
            expected.append(list(theirs_by_key.get(key(row), [])))
            continue
        mark, other = verdict_by_row[id(row)]
        marks.append(mark)
        expected.append(other)
        if mark != "ok":
            problems.append(f"row {list(row)} disagrees with plaintext {other}")
    return Verdict(marks, expected, problems)


def _norm(value: Any) -> Any:
    # JSON carries timestamps as ISO text with a "T"; str() puts a space there.
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str) and len(value) == 19 and value[10] == " ":
        return value[:10] + "T" + value[11:]
    return value


def plaintext_features(con: Any, model: Model, entities: Sequence[str]) -> np.ndarray:
    """The model's features for ``entities`` computed in the clear with DuckDB.

    ``con`` must have every feature table as a (pooled) view. Same semantics
    as the holders: per-entity aggregate over the filtered rows, transform,
    then the default for entities with no value. Used to check encrypted
    scores and to train the shipped models.
    """
    con.register(
        "plaintext_req",
        {"pos": np.arange(len(entities)), "id": np.array(list(entities), dtype=object)},
    )
    out = np.empty((len(entities), len(model.features)), dtype=np.float64)
    for j, feature in enumerate(model.features):
        key = exp.column(model.key_of(feature), quoted=True)
        value = exp.column(feature.column, quoted=True)
        aggregate = {
            "sum": exp.Sum,
            "avg": exp.Avg,
            "min": exp.Min,
            "max": exp.Max,
            "count": exp.Count,
        }.get(feature.aggregate, exp.Min)
        inner = value if feature.aggregate == "count" else exp.cast(value, "DOUBLE")
        sub = exp.select(exp.alias_(key.copy(), "k"), exp.alias_(aggregate(this=inner), "v"))
        sub = sub.from_(exp.table_(feature.table, quoted=True)).group_by(key.copy())
        if feature.filter:
            sub = sub.where(sqlglot.parse_one(feature.filter, read="duckdb"))
        query = (
            exp.select(exp.column("v", table="s"))
            .from_("plaintext_req")
            .join(exp.alias_(exp.paren(sub), "s"), on="plaintext_req.id = s.k", join_type="LEFT")
            .order_by("plaintext_req.pos")
        )
        values = np.array(con.sql(query.sql("duckdb")).fetchall(), dtype=np.float64).ravel()
        if feature.transform == "log1p":
            values = np.log1p(values)
        values[np.isnan(values)] = feature.default
        out[:, j] = values
    con.unregister("plaintext_req")
    return out


def plaintext_scores(con: Any, model: Model, entities: Sequence[str]) -> np.ndarray:
    """The model's scores computed in the clear (features from DuckDB, then numpy)."""
    features = plaintext_features(con, model, entities)
    weights = np.array([f.weight for f in model.features])
    linear = features @ weights + model.intercept
    if model.link == "logistic":
        # exp may overflow to inf on the far tail, where 1/(1+inf) = 0 is right.
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-linear))
    return linear


def check_answer(
    compiled: CompiledQuery,
    result: Any,
    run: Callable[[str], list[tuple[Any, ...]]],
    shards: Sequence[str],
    k: int,
) -> tuple[list[tuple[Any, ...]], Verdict]:
    """Check an encrypted ``result`` of ``compiled`` against plaintext.

    ``run`` executes SQL on a reference engine holding the pooled table under
    its own name and each shard under the names in ``shards``. Returns the
    plaintext rows and the verdict (suppression included).
    """
    theirs = run(compiled.sql)
    # A derived key (EXTRACT, date_trunc, CASE) is named by its own SQL text.
    groups: list[str | exp.Expression] = [
        g.column if g.expr is None else exp.maybe_parse(g.column, dialect="duckdb")
        for g in compiled.plan.groups
    ]
    expected = suppressed_keys(compiled.sql, groups, shards, k, run, compiled.plan)
    positions = [compiled.outputs.index(GroupRef(i)) for i in range(len(groups))]
    hidden = {tuple(g["group"].values()) for g in result.meta["suppressed"]}
    verdict = verify(
        result.columns,
        result.rows,
        hidden,
        theirs,
        expected,
        positions,
        ordered=bool(compiled.order),
    )
    return theirs, verdict
