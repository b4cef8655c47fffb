"""The joint-modelling commands: ``unseen psi`` (and, later, ``unseen train``).

``unseen psi --ids bank_ids.csv --with HOLDER=TABLE.COLUMN [...]`` aligns the
bank's entity ids with each named holder's entity column by private set
intersection and prints, per holder, how many ids were sent, how many the
holder holds and how many are common. ``--out FILE`` writes the ids held by
every named holder, one per line, in the bank's order (the training set).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.align import Alignment
from engine.client import Client
from engine.errors import ConfigError
from engine.model import read_entities
from engine.result import Result

__all__ = ["common_ids", "parse_with", "run_psi"]


def parse_with(text: str) -> tuple[str, str, str]:
    """``HOLDER=TABLE.COLUMN`` → (holder, table, column)."""
    holder, sep, where = text.partition("=")
    table, dot, column = where.rpartition(".")
    if not sep or not holder or not dot or not table or not column:
        raise argparse.ArgumentTypeError(f"expected HOLDER=TABLE.COLUMN, got {text!r}")
    return holder, table, column


def common_ids(ids: Sequence[str], alignments: Sequence[Alignment]) -> list[str]:
    """The ids every alignment found, in the order of ``ids``."""
    held = [set(a.common) for a in alignments]
    return [i for i in dict.fromkeys(ids) if all(i in h for h in held)]


def run_psi(client: Client, args: argparse.Namespace) -> tuple[Result, list[dict[str, Any]]]:
    """Align ``--ids`` with every ``--with`` holder; the summary and the receipts."""
    targets: list[tuple[str, str, str]] = args.with_
    if not targets:
        raise ConfigError("name at least one holder: --with HOLDER=TABLE.COLUMN")
    ids = read_entities(args.ids, args.id_column)
    alignments = [client.align(h, t, c, ids) for h, t, c in targets]
    common = common_ids(ids, alignments)
    if args.out is not None:
        write_ids(args.out, common)
    rows: list[list[object]] = [
        [a.holder, f"{a.table}.{a.column}", a.requested, a.holder_size, len(a.common)]
        for a in alignments
    ]
    result = Result(
        ["holder", "column", "requested", "holder_size", "intersection"],
        rows,
        {"common": len(common), "alignments": [a.to_dict() for a in alignments]},
    )
    return result, [json.loads(r) for a in alignments for r in a.receipts]


def write_ids(path: Path, ids: Sequence[str]) -> None:
    try:
        Path(path).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
