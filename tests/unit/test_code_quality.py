"""Lint, format and type checks run with the suite, so CI enforces them."""

from __future__ import annotations

import ast
import re
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


# The transport layer: the only modules that may touch gRPC or generated protobuf
# types. Everything else in engine, nodes and unseen speaks dataclasses to a peer
# (engine/peers.py) or is called by a servicer (nodes/servicers.py).
TRANSPORT = {
    "engine/serde.py",  # domain objects <-> protobuf messages
    "engine/rpc.py",  # servers, channels, deadlines, status <-> error
    "engine/peers.py",  # typed peers: every stub and every outgoing call
    "engine/tls.py",  # credentials and the caller's certificate identity
    "nodes/servicers.py",  # the holder's and the coordinator's servicers
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _wire(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("grpc", "grpc_health", "grpc_reflection", "protos") or "_pb2" in name


def test_proto_types_stop_at_the_edge():
    # engine, nodes and unseen, every module: only the transport layer imports grpc or *_pb2.
    offenders = []
    for package in ("engine", "nodes", "unseen"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in TRANSPORT:
                continue
            wire = sorted(n for n in _imports(path) if _wire(n))
            if wire or "_pb2" in path.read_text():
                offenders.append(f"{rel}: {wire or '_pb2 in text'}")
    assert not offenders, offenders


def test_the_transport_layer_is_what_the_guard_names():
    # A renamed transport module must not leave a stale name here (which would let
    # a new module of that name import protobuf types unguarded).
    for rel in TRANSPORT:
        assert (ROOT / rel).is_file(), rel
        assert any(_wire(n) for n in _imports(ROOT / rel)), f"{rel} does not touch the wire"


def test_every_module_is_listed_once_in_the_architecture_diagram():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    listed: dict[str, list[str]] = {}
    package = ""
    for line in block.splitlines():
        start = re.match(r"^(\w+)/\s", line)
        if start:
            package = start.group(1)
        listed.setdefault(package, []).extend(
            re.findall(r"(\w+(?:\.py|/))", line[len(package) + 1 :] if start else line)
        )
    for package in ("unseen", "nodes", "engine"):
        present = sorted(
            p.name if p.is_file() else f"{p.name}/"
            for p in (ROOT / package).iterdir()
            if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
            or (p.is_dir() and (p / "__init__.py").exists())
        )
        names = listed.get(package, [])
        assert sorted(names) == present, (package, sorted(set(present) ^ set(names)), names)
