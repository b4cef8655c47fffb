"""Lint, format, type and layering checks run with the suite, so CI enforces them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "unseen"
GENERATED = PACKAGE / "v1"


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


def _modules(folder: Path) -> list[Path]:
    found = [p for p in sorted(folder.rglob("*.py")) if not p.is_relative_to(GENERATED)]
    assert found, f"no modules under {folder}: the guard would check nothing"
    return found


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


def _offenders(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    # A package's __main__ is an entry point (`python -m unseen.bench`), not imported.
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(folder)
        if path.name != "__main__.py"
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_library_never_imports_servers_the_cli_or_the_oracle():
    # unseen.engine is what every party loads; the servers, the command line, the
    # benchmarks and the plaintext oracle sit above it.
    above = ("unseen.nodes", "unseen.cli", "unseen.demo", "unseen.bench", "unseen.oracle")
    assert not _offenders(PACKAGE / "engine", above)


def test_servers_never_load_the_plaintext_oracle():
    assert not _offenders(PACKAGE / "nodes", ("unseen.oracle", "unseen.cli", "unseen.bench"))


def test_the_benchmarks_do_not_import_the_command_line():
    # `unseen bench` imports the benchmarks lazily; they never import it back.
    assert not _offenders(PACKAGE / "bench", ("unseen.cli",))


def test_nothing_imports_the_old_top_level_packages():
    olds = ("engine", "nodes", "protos", "benchmarks")
    files = [*_modules(PACKAGE), *sorted((ROOT / "tests").rglob("*.py"))]
    files += sorted((ROOT / "scripts").glob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in sorted(_imports(path))
        if name.split(".")[0] in olds
    ]
    assert not offenders, offenders


# The transport layer: the only modules that may touch gRPC or generated protobuf
# types. Everything else speaks dataclasses to a peer (transport/peers.py) or is
# called by a servicer (nodes/servicers.py).
TRANSPORT = {
    "unseen/engine/transport/serde.py",  # domain objects <-> protobuf messages
    "unseen/engine/transport/rpc.py",  # servers, channels, deadlines, status <-> error
    "unseen/engine/transport/peers.py",  # typed peers: every stub and every outgoing call
    "unseen/engine/transport/tls.py",  # credentials and the caller's certificate identity
    "unseen/engine/transport/telemetry.py",  # interceptor: calls by RPC and status
    "unseen/engine/transport/admission.py",  # interceptor: each caller's calls and streams
    "unseen/nodes/servicers.py",  # the holder's and the coordinator's servicers
}


def _wire(name: str) -> bool:
    top = name.split(".")[0]
    return (
        top in ("grpc", "grpc_health", "grpc_reflection")
        or "_pb2" in name
        or (name == "unseen.v1" or name.startswith("unseen.v1."))
    )


def test_proto_types_stop_at_the_edge():
    # Every module of the package: only the transport layer imports grpc or *_pb2.
    offenders = []
    for path in _modules(PACKAGE):
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


def _packages() -> list[Path]:
    return [
        init.parent
        for init in sorted(PACKAGE.rglob("__init__.py"))
        if not init.parent.is_relative_to(GENERATED) and "__pycache__" not in init.parts
    ]


def test_every_module_is_listed_once_in_the_architecture_diagram():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    listed: dict[str, list[str]] = {}
    package = ""
    for line in block.splitlines():
        start = re.match(r"^(unseen(?:/\w+)*)/", line)
        if start:
            package = start.group(1)
            continue  # the package's own line: its path and what it is
        listed.setdefault(package, []).extend(re.findall(r"(\w+(?:\.py|/))", line))
    packages = _packages()
    assert len(packages) > 10, packages
    for folder in packages:
        rel = folder.relative_to(ROOT).as_posix()
        present = sorted(
            p.name if p.is_file() else f"{p.name}/"
            for p in folder.iterdir()
            if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
            or (p.is_dir() and (p / "__init__.py").exists())
        )
        names = listed.get(rel, [])
        assert sorted(names) == present, (rel, sorted(set(present) ^ set(names)), names)
