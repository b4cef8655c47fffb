"""No holder's (or the coordinator's) memory or logs ever contain a model weight.

Separate processes; after a scoring run, every readable memory region of each
server process and of its worker processes is searched for the weights as
IEEE doubles (also as scaled by the precision exponent) and as text.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import psutil
import pytest

from tests.shards import write_shard
from unseen.engine.client import Client
from unseen.engine.query.model import parse_model
from unseen.federation import LocalFederation

WEIGHTS = [0.7315926535897931, -1.2718281828459045, 0.0004142135623730951]


def _patterns(weight: float) -> list[bytes]:
    out = [repr(weight).encode()]
    for exponent in range(0, 40):
        out.append(struct.pack("<d", weight * 2.0**exponent))
    return out


def _find(chunk: bytes, needles: list[bytes]) -> list[bytes]:
    """Every needle in ``chunk``, at any byte offset.

    A double scaled by a power of two keeps its mantissa, so the 40 scaled
    copies of a weight share their low six bytes: ``bytes.find`` looks for
    those few prefixes (fast, C) and each hit is checked against the whole
    8-byte needle. A regular expression alternating a hundred binary needles
    crawled through the servers' ~700 MB each at a few MB/s.
    """
    doubles = {n for n in needles if len(n) == 8}
    found = [n for n in needles if len(n) != 8 and chunk.find(n) >= 0]
    for prefix in sorted({n[:6] for n in doubles}):
        at = chunk.find(prefix)
        while at >= 0:
            if chunk[at : at + 8] in doubles:
                found.append(chunk[at : at + 8])
            at = chunk.find(prefix, at + 1)
    return found


def _memory_contains(pid: int, needles: list[bytes]) -> list[bytes]:
    found: list[bytes] = []
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found += _find(chunk, needles)
    return found


def test_the_scanner_finds_doubles_at_any_offset_and_text():
    needles = _patterns(WEIGHTS[1])
    for offset in range(9):
        chunk = b"x" * offset + needles[7] + b"y" * 13 + needles[0] + b"z" * 5
        assert set(_find(chunk, needles)) == {needles[7], needles[0]}
    assert _find(b"\x00" * 4096, needles) == []


@pytest.mark.slow
def test_servers_never_hold_a_weight(tmp_path, key):
    rows = [(f"e{i}", float(i % 97), i % 13, (i * 7) % 1000 / 10) for i in range(3000)]
    schema = [("uid", "VARCHAR"), ("a", "DOUBLE"), ("b", "BIGINT"), ("c", "DOUBLE")]
    holders = {
        f"h{i}": {f"t{i}": write_shard(tmp_path / f"t{i}.parquet", schema, rows)} for i in range(3)
    }
    model = parse_model(
        {
            "entity": "uid",
            "features": [
                {"table": f"t{i}", "column": col, "weight": w}
                for i, (col, w) in enumerate(zip(("a", "b", "c"), WEIGHTS, strict=True))
            ],
            "link": "logistic",
        }
    )
    with LocalFederation(holders, tmp_path / "logs", holder_args=["--workers", "1"]) as fed:
        with Client(fed.address, key=key) as client:
            result = client.score(model, [r[0] for r in rows])
        assert len(result.rows) == len(rows)
        needles = [p for w in WEIGHTS for p in _patterns(w)]
        # The scanner works: this (analyst) process does hold the weights.
        assert _memory_contains(os.getpid(), needles)
        servers = [n.process.pid for n in fed.nodes] + [fed.coordinator.process.pid]
        pids = servers + [c.pid for pid in servers for c in psutil.Process(pid).children(True)]
        assert len(pids) > len(servers)  # worker processes were scanned too
        for pid in pids:
            assert _memory_contains(pid, needles) == [], f"process {pid} holds a weight"
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    for weight in WEIGHTS:
        assert repr(weight) not in logs and f"{weight:.6f}" not in logs
    assert not re.search(r"0\.7315|1\.2718|0\.000414", logs)
