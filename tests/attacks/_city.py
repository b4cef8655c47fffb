"""The federation the aggregate attacks run against: a city with 40 + 40 + 3 rows.

Three quick-start holders host ``loans`` horizontally. ``Alpha`` has 40 rows at
``h0``, 40 at ``h1`` and 3 at ``h2`` (so the federation suppresses it with
k = 5); ``Beta`` has 10 rows at each holder and is published.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.shards import write_shard
from unseen.engine.crypto import bfv
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.query.layout import layout_for, unpack
from unseen.engine.query.plan import AggregatePlan
from unseen.engine.transport import serde

SCHEMA = [("city", "VARCHAR"), ("amount", "BIGINT")]
SQL = "SELECT city, COUNT(*), SUM(amount) FROM loans GROUP BY city"


def shard_rows(holder: int, alpha_base: int = 1000) -> list[tuple[str, int]]:
    alpha = 3 if holder == 2 else 40
    rows = [("Alpha", alpha_base + 7 * holder + i) for i in range(alpha)]
    rows += [("Beta", 50 + holder * 10 + i) for i in range(10)]
    return rows


def write_city(tmp_path: Path, alpha_base: int = 1000) -> dict[str, dict[str, Path]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return {
        f"h{i}": {"loans": write_shard(tmp_path / f"h{i}.csv", SCHEMA, shard_rows(i, alpha_base))}
        for i in range(3)
    }


def alpha_truth(holder: int, alpha_base: int = 1000) -> tuple[int, int]:
    """(rows, SUM(amount)) of Alpha at one holder."""
    rows = [a for c, a in shard_rows(holder, alpha_base) if c == "Alpha"]
    return len(rows), sum(rows)


def decrypt_moments(key: AnalystKey, plan: AggregatePlan, ciphertexts: list[bytes]) -> list:
    """What the analyst reads out of ciphertexts with its own secret key, the old way:
    decrypt each slot and recombine limbs, nothing else."""
    slots = np.concatenate([bfv.decrypt(key.aggregate_secret, c) for c in ciphertexts])
    return unpack(plan, layout_for(plan), slots)


def read_stream(replies) -> list[bytes]:  # type: ignore[no-untyped-def]
    header = next(replies)
    count, *_ = serde.header_from_proto(header.header)
    out = [b""] * count
    for reply in replies:
        out[reply.ciphertext.index] = reply.ciphertext.data
    return out
