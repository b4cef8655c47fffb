"""Bound parameters in the style each warehouse driver expects.

The pushdown writes parameters as named placeholders (``:p1``, ``$p1``).
psycopg and PyMySQL take ``%(p1)s`` ("pyformat"), where every other ``%``
in the text must be doubled; Spark takes ``:p1`` as written. Literals never
enter the SQL text in any style: this module only re-spells placeholders
and escapes the ``%`` an identifier may contain, working on sqlglot's tree
rather than on text so that nothing inside a quoted name is touched.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

__all__ = ["parse", "pyformat"]


def parse(sql: str, dialect: str) -> exp.Expr:
    """The tree of SQL the pushdown wrote for ``dialect``."""
    return sqlglot.parse_one(sql, read=dialect)


def _respell(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Placeholder) and node.name:
        if not node.name.isidentifier():
            raise ValueError(f"unexpected placeholder name {node.name!r}")
        return exp.Var(this=f"%({node.name})s")
    if isinstance(node, exp.Identifier) and "%" in node.name:
        return exp.Identifier(this=node.name.replace("%", "%%"), quoted=True)
    if isinstance(node, exp.Literal) and node.is_string and "%" in node.this:
        # Only sqlglot writes string literals here (analyst literals are parameters).
        return exp.Literal.string(node.this.replace("%", "%%"))
    if isinstance(node, exp.Mod):
        # "a % b" would read as a placeholder; MOD() means the same in both engines.
        return exp.Anonymous(this="MOD", expressions=[node.this, node.expression])
    return node


def pyformat(tree: exp.Expr, dialect: str) -> str:
    """SQL text for a pyformat driver (psycopg, PyMySQL) in ``dialect``."""
    return tree.transform(_respell).sql(dialect)
