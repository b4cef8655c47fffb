"""Smoke test of ``unseen bench`` at its tiniest size: every key present, every number sane.

No assertion on time (benchmarks are not tests); this proves the suite runs end to
end on real processes and that its JSON is complete.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from typing import Any

HAS_PHE = importlib.util.find_spec("phe") is not None


def _numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [(path, float(value))]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _numbers(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _numbers(v, f"{path}[{i}]")]
    return []


def _positive_stat(stat: dict) -> None:
    assert stat["runs"] >= 1
    assert 0 < stat["min"] <= stat["median"] <= stat["max"]


def test_tiny_bench_writes_complete_sane_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "unseen",
            "bench",
            "--tiny",
            "--json",
            str(out),
            "--data",
            str(tmp_path / "work"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Aggregates" in done.stdout and "Targets" in done.stdout
    results = json.loads(out.read_text())

    expected = {
        "schema",
        "mode",
        "started_at",
        "finished_at",
        "duration_s",
        "machine",
        "grid",
        "aggregates",
        "scoring",
        "scaling",
        "wire",
        "memory",
        "targets",
        "notes",
    }
    assert expected <= set(results)
    assert results["mode"] == "tiny"
    machine = results["machine"]
    for key in ("cpu_model", "cores", "memory_bytes", "os", "python"):
        assert machine[key], key
    for package in ("tenseal", "duckdb", "grpcio"):
        assert machine["packages"][package], package

    for path, number in _numbers(results):
        assert math.isfinite(number), path
        assert number >= 0, path

    (agg,) = results["aggregates"]
    _positive_stat(agg["federated_s"])
    _positive_stat(agg["centralized_s"])
    assert agg["groups"] == 21
    assert agg["ratio"] > 0
    assert agg["bytes_per_query_per_holder"] > 0
    assert agg["max_rel_error"] < 1e-6

    (score,) = results["scoring"]
    for key in (
        "end_to_end_s",
        "kernel_floor_s",
        "sealapi_floor_s",
        "sealapi_floor_cached_s",
        "flood_per_block_s",
        "numpy_s",
    ):
        _positive_stat(score[key])
    assert score["ratio_to_floor"] > 0
    assert score["bytes_per_entity_per_holder"] > 0
    # Weights give terms of order 1, so scores are of order sqrt(features).
    assert 0 < score["max_abs_score"] < 100
    assert score["max_abs_error"] < 1e-6 * score["max_abs_score"]
    assert score["pipeline_s"]["products"] > 0
    if HAS_PHE:
        assert score["paillier"]["per_entity_s"]["analyst"] > 0
        assert score["speedup_vs_paillier"] > 0
    for cell in (agg, score):
        for name, process in cell["processes"].items():
            assert process["peak_rss_bytes"] > 0, name

    sweep = results["scaling"]["holders"]
    assert sorted(c["holders"] for c in sweep) == [2, 3]
    for cell in sweep:
        assert cell["key_registration"]["max_bytes_per_holder"] > 0
        _positive_stat(cell["aggregate"]["federated_s"])
        _positive_stat(cell["scoring"]["end_to_end_s"])
    analysts = results["scaling"]["analysts"]
    assert sorted({c["analysts"] for c in analysts}) == [1, 2]
    assert all(c["throughput_per_s"] > 0 for c in analysts)

    assert set(results["wire"]["key_registration"]) == {"2", "3"}
    assert all(row["holder_peak_rss_bytes_max"] > 0 for row in results["memory"])
    names = {t["name"] for t in results["targets"]}
    assert len(names) == 8
