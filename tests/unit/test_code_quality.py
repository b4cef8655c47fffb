"""Lint, format and type checks run with the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean():
    done = _run("ruff", "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean():
    done = _run("ruff", "format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_on_the_library_is_clean():
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_engine_never_imports_nodes():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "engine").rglob("*.py")
        if "import nodes" in path.read_text() or "from nodes" in path.read_text()
    ]
    assert not offenders, offenders


def test_proto_types_stop_at_the_edge():
    # Domain modules never touch generated protobuf types; only serde, the client,
    # the rpc plumbing and the servicers do.
    edge = {"serde.py", "client.py", "rpc.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "engine").rglob("*.py")
        if path.name not in edge and "_pb2" in path.read_text()
    ]
    assert not offenders, offenders
