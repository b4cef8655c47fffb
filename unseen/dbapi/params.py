"""Bind query parameters as SQL literals in the parsed statement, never in the text.

``paramstyle`` is ``qmark`` (``WHERE city = ?``, a sequence of values); named
placeholders (``WHERE city = :city``, a mapping) are accepted too, because
that is what SQLAlchemy's ``text()`` and many notebooks write. The statement
is parsed once with sqlglot (the dialect the compiler reads); each
placeholder node is replaced by a literal node built from the value's type
(a string is a string literal whatever it contains, a number a number), and
the tree is printed back. A value can therefore never become SQL syntax: a
quote in a string is escaped by the printer, and a ``?`` inside a string
literal or comment is not a placeholder at all. A placeholder must stand
where a value does: not for a table, column or alias name, nor directly as a
GROUP BY/ORDER BY item, where a literal would mean a column position.

Positional placeholders are numbered by their offset in the text, which the
parser records on each node as it consumes the ``?`` token (the tree's own
order is not the text's: sqlglot keeps ``LIMIT`` before ``WHERE``); the
tokenizer's count of ``?`` must agree with the tree's, so a placeholder the
parser dropped cannot shift the others.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from unseen.dbapi.errors import DataError, NotSupportedError, ProgrammingError

__all__ = ["DIALECT", "bind", "literal"]

DIALECT = "duckdb"  # the dialect unseen.engine.query.sql reads
_OFFSET = "unseen_offset"  # node.meta key: where the placeholder's token starts in the text


def literal(value: Any) -> exp.Expr:
    """A sqlglot literal for one parameter value; the error names the type, never the value."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        number: exp.Expr = exp.Literal.number(abs(value))
        return exp.Paren(this=exp.Neg(this=number)) if value < 0 else number
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value):
            raise DataError(f"a {type(value).__name__} parameter must be finite")
        text = repr(value) if isinstance(value, float) else format(value, "f")
        number = exp.Literal.number(text.lstrip("-"))
        return exp.Paren(this=exp.Neg(this=number)) if text.startswith("-") else number
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise NotSupportedError("timestamp parameters with a time zone are not supported")
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, dt.time):
        return exp.cast(exp.Literal.string(value.isoformat()), "TIME")
    raise NotSupportedError(f"cannot bind a parameter of type {type(value).__name__}")


@functools.cache
def _parser_class() -> type[Parser]:
    """The dialect's parser, recording where in the text each ``?`` stood."""
    base = sqlglot.Dialect.get_or_raise(DIALECT).parser_class

    def placeholder(self: Parser) -> exp.Expr:
        node = self.expression(exp.Placeholder())
        node.meta[_OFFSET] = self._prev.start if self._prev is not None else -1
        return node

    parsers = {**base.PLACEHOLDER_PARSERS, TokenType.PLACEHOLDER: placeholder}
    return type("PositionedParser", (base,), {"PLACEHOLDER_PARSERS": parsers})


def _parse(sql: str) -> exp.Expr:
    dialect = sqlglot.Dialect.get_or_raise(DIALECT)
    try:
        parser = _parser_class()(dialect=dialect)
        statements = [s for s in parser.parse(dialect.tokenize(sql), sql) if s is not None]
    except (ParseError, TokenError) as exc:
        raise ProgrammingError(f"SQL does not parse: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise ProgrammingError(f"expected one SQL statement, got {len(statements)}")
    return statements[0]


# A placeholder directly under these would be read as a name or a column position, not a value.
_NAME_PARENTS = (exp.Table, exp.TableAlias, exp.Column, exp.Identifier, exp.Dot)
_POSITION_PARENTS = (exp.Group, exp.Ordered)


def _check_value_position(node: exp.Placeholder) -> None:
    """Refuse a placeholder whose literal would name a table, column or alias, or be read as
    a GROUP BY/ORDER BY position: a parameter stands for a value only."""
    parent = node.parent
    alias_name = isinstance(parent, exp.Alias) and node.arg_key == "alias"
    if alias_name or isinstance(parent, _NAME_PARENTS + _POSITION_PARENTS):
        raise ProgrammingError(
            "a parameter stands for a value, not for a table, column, alias or "
            "GROUP BY/ORDER BY position"
        )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _qmarks(sql: str) -> int:
    tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
    return sum(1 for token in tokens if token.token_type == TokenType.PLACEHOLDER)


def bind(sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None) -> str:
    """``sql`` with its placeholders replaced by literals of ``parameters``.

    Raises:
        ProgrammingError: the SQL does not parse, holds several statements, or the
            parameters do not match the placeholders (count, names, style).
        DataError: a non-finite number.
        NotSupportedError: a value of a type that has no SQL literal here.
    """
    if parameters is None:
        return sql
    if isinstance(parameters, (str, bytes)) or not isinstance(parameters, (Sequence, Mapping)):
        raise ProgrammingError(
            "parameters must be a sequence (for ?) or a mapping (for :name), "
            f"not {type(parameters).__name__}"
        )
    tree = _parse(sql)
    placeholders = list(tree.find_all(exp.Placeholder, bfs=False))
    for node in placeholders:
        _check_value_position(node)
    named = [p for p in placeholders if p.this]
    positional = [p for p in placeholders if not p.this]
    if isinstance(parameters, Mapping):
        if positional:
            raise ProgrammingError("? placeholders need a sequence of parameters, not a mapping")
        missing = sorted({p.name for p in named} - set(parameters))
        if missing:
            raise ProgrammingError(f"no value for parameter(s) {', '.join(missing)}")
        values = {name: literal(value) for name, value in parameters.items()}
        for node in named:
            node.replace(values[node.name].copy())
        return tree.sql(dialect=DIALECT)
    if named:
        raise ProgrammingError(":name placeholders need a mapping of parameters, not a sequence")
    offsets = [p.meta.get(_OFFSET, -1) for p in positional]
    if len(positional) != len(parameters) or _qmarks(sql) != len(set(offsets)) or -1 in offsets:
        raise ProgrammingError(
            f"the statement has {len(positional)} ? placeholder(s) "
            f"but {len(parameters)} parameter(s) were given"
        )
    positional.sort(key=lambda p: p.meta[_OFFSET])
    for node, value in zip(positional, parameters, strict=True):
        node.replace(literal(value))
    return tree.sql(dialect=DIALECT)
