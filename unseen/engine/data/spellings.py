"""How the warehouse engines spell the calendar functions and casts DuckDB defines.

The front end promises DuckDB's meaning for EXTRACT, date_trunc and CAST;
PostgreSQL, MySQL/MariaDB and Spark each name or round some of them
differently, and sqlglot's transpilation is not always exact (MySQL's
date_trunc becomes a ``STR_TO_DATE`` whose ``%`` format breaks pyformat
drivers; Spark's ``DOW`` counts from 1). Each function here returns the
spelling for one engine that gives DuckDB's value, so the pushdown stays one
visitor and every engine difference lives in this module.
"""

from __future__ import annotations

from sqlglot import exp

__all__ = ["WAREHOUSE_DIALECTS", "cast_to_integer", "date_trunc", "extract"]

# Dialects whose spellings come from this module (DuckDB's are the reference,
# SQLite's live in the pushdown beside its text dates).
WAREHOUSE_DIALECTS = ("postgres", "mysql", "spark")


def _bigint(node: exp.Expression) -> exp.Expression:
    return exp.cast(node, exp.DataType.build("BIGINT"))


def _minus_one(node: exp.Expression) -> exp.Expression:
    return exp.Sub(this=node, expression=exp.Literal.number(1))


def extract(part: str, operand: exp.Expression, dialect: str) -> exp.Expression:
    """``EXTRACT(part FROM operand)`` as a BIGINT numbered as DuckDB numbers it.

    PostgreSQL returns NUMERIC (a Decimal at the driver), MySQL has no DOW or
    DOY part, and Spark's DOW runs 1 (Sunday) to 7 where DuckDB's runs 0 to 6.
    """
    if part == "dow" and dialect in ("mysql", "spark"):
        value: exp.Expression = _minus_one(exp.Anonymous(this="DAYOFWEEK", expressions=[operand]))
    elif part == "doy" and dialect == "mysql":
        value = exp.Anonymous(this="DAYOFYEAR", expressions=[operand])
    else:
        value = exp.Extract(this=exp.var(part.upper()), expression=operand)
    return _bigint(exp.paren(value))


def date_trunc(unit: str, operand: exp.Expression, dialect: str) -> exp.Expression:
    """``date_trunc(unit, operand)`` as a TIMESTAMP without time zone, as DuckDB's.

    PostgreSQL truncates a DATE as a ``timestamptz`` (a zoned datetime at the
    driver) unless it is cast first; MySQL has no date_trunc, so the start of
    the unit is built from ``MAKEDATE`` and a month interval (no format string,
    whose ``%`` a pyformat driver would read as a placeholder).
    """
    timestamp = exp.DataType.build("TIMESTAMP")
    if dialect != "mysql":
        truncated = exp.Anonymous(
            this="DATE_TRUNC",
            expressions=[exp.Literal.string(unit.upper()), exp.cast(operand, timestamp)],
        )
        return exp.cast(truncated, timestamp)
    if unit == "day":
        start: exp.Expression = exp.Anonymous(this="DATE", expressions=[operand])
    else:
        year = exp.Anonymous(this="YEAR", expressions=[operand.copy()])
        start = exp.Anonymous(this="MAKEDATE", expressions=[year, exp.Literal.number(1)])
        if unit != "year":
            months: exp.Expression
            if unit == "quarter":
                quarter = exp.Anonymous(this="QUARTER", expressions=[operand])
                months = exp.Mul(
                    this=exp.paren(_minus_one(quarter)), expression=exp.Literal.number(3)
                )
            else:
                months = _minus_one(exp.Anonymous(this="MONTH", expressions=[operand]))
            start = exp.DateAdd(this=start, expression=exp.paren(months), unit=exp.var("MONTH"))
    return exp.cast(start, timestamp)


def cast_to_integer(
    operand: exp.Expression, dialect: str, operand_kind: str | None
) -> exp.Expression:
    """``CAST(operand AS INTEGER)`` rounding half away from zero, as DuckDB does.

    Spark truncates a DECIMAL where DuckDB rounds (Spark's ROUND is half-up,
    exact on decimals); no engine but DuckDB casts BOOLEAN to BIGINT the same
    way, so a boolean becomes 1 or 0 explicitly.
    """
    if operand_kind == "BOOLEAN":
        return exp.Case(
            ifs=[
                exp.If(this=operand, true=exp.Literal.number(1)),
                exp.If(this=exp.Not(this=operand.copy()), true=exp.Literal.number(0)),
            ]
        )
    if dialect == "spark" and operand_kind != "INTEGER":
        operand = exp.Anonymous(this="ROUND", expressions=[operand])
    return _bigint(operand)
