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

from unseen.engine.client import Client
from unseen.engine.errors import ConfigError, UnseenError
from unseen.engine.query.model import read_entities
from unseen.engine.query.result import Result
from unseen.engine.training.align import Alignment
from unseen.engine.training.train_job import TrainFeatures
from unseen.engine.training.training_client import MODEL_KIND, holder_part
from unseen.engine.training.vertical_lr import TrainSpec

__all__ = [
    "cmd_audit_lineage",
    "common_ids",
    "joint_model",
    "load_train_spec",
    "parse_with",
    "read_labels",
    "run_psi",
    "run_train",
]


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


def read_labels(path: Path, id_column: str, label_column: str) -> dict[str, float]:
    """The bank's labels: a CSV with an id column and a 0/1 label column."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigError(f"cannot read labels file {path}: {exc.strerror}") from exc
    if not rows or id_column not in rows[0] or label_column not in rows[0]:
        raise ConfigError(f"labels file {path} needs columns {id_column!r} and {label_column!r}")
    labels: dict[str, float] = {}
    for row in rows:
        value = row[label_column].strip()
        if value not in ("0", "1"):
            raise ConfigError(f"labels file {path}: a label is 0 or 1")
        labels[row[id_column].strip()] = float(value)
    return labels


def load_train_spec(path: Path) -> tuple[list[TrainFeatures], TrainSpec, float]:
    """The model spec: the holders' feature columns and the public training settings.

    ``{"holders": [{"holder", "table", "key", "columns": [...]}], "iterations",
    "learning_rate", "l2", "batch_size", "patience", "seed", "validation"}``; a
    holder may give ``"features"`` instead of ``"columns"``: a scorecard's
    features without weights (aggregate, filter, transform, default), which it
    computes as ``unseen score`` would.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        holders = [holder_part(h, i == 0) for i, h in enumerate(data["holders"])]
        settings = {k: data[k] for k in TrainSpec.__dataclass_fields__ if k in data}
        spec = TrainSpec(**settings)
        validation = float(data.get("validation", 0.2))
    except OSError as exc:
        raise ConfigError(f"cannot read model spec {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError, UnseenError) as exc:
        raise ConfigError(f"model spec {path} is not valid: {exc}") from exc
    if not holders:
        raise ConfigError(f"model spec {path} names no holder")
    return holders, spec, validation


def run_train(client: Client, args: argparse.Namespace) -> tuple[Result, list[dict[str, Any]]]:
    """Align, train, and write the model file (only once the job has finished)."""
    holders, spec, validation = load_train_spec(args.spec)
    labels = read_labels(args.labels, args.id_column, args.label_column)
    model = client.train(labels, holders, spec, validation)
    text = json.dumps(model.to_dict(), indent=2)
    temporary = Path(f"{args.out}.partial")
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        temporary.replace(args.out)  # atomic: a failed run leaves no model file
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    rows: list[list[object]] = [
        [f.holder, f"{f.table}({', '.join(f.columns)})", model.digests.get(f.holder, "")[:16]]
        for f in holders
    ]
    meta = {
        "iterations": model.run.iterations,
        "intercept": model.intercept,
        "validation_losses": model.run.losses,
        "seconds_per_iteration": model.run.seconds_per_iteration,
    }
    result = Result(["holder", "features", "weights_sha256"], rows, meta)
    return result, [json.loads(r) for r in model.receipts]


def joint_model(path: Path) -> dict[str, Any] | None:
    """The model file if its ``kind`` is a jointly trained model, else None (a scorecard)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_model reports the problem in its own words
    if not isinstance(data, dict) or data.get("kind") != MODEL_KIND:
        return None
    holders = data.get("holders") or [{}]
    data["key"] = holders[0].get("key", "id")
    return data


def cmd_audit_lineage(args: argparse.Namespace) -> int:
    """``unseen audit lineage``: check a joint model's signed holder statements."""
    from unseen.engine.errors import VerificationError
    from unseen.engine.governance.lineage import verify_lineage
    from unseen.engine.governance.signing import PublicKey

    try:
        model = json.loads(Path(args.model).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read model file {args.model}: {exc}") from exc
    keys = {}
    for spec in args.holder_key:
        name, sep, key = spec.partition("=")
        if not sep:
            raise ConfigError(f"--holder-key {spec!r}: expected NAME=PUBLIC_KEY")
        keys[name] = (
            PublicKey.from_text(key) if key.startswith("ed25519:") else PublicKey.load(Path(key))
        )
    problems = verify_lineage(model, keys)
    for problem in problems:
        print(problem)
    holders = len(model.get("holders", []))
    if problems:
        raise VerificationError("the model's lineage does not verify")
    print(f"lineage of job {str(model.get('job'))[:16]}: {holders} holder statement(s) verify")
    return 0
