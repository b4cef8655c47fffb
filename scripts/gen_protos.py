"""Regenerate the committed gRPC/protobuf modules under unseen/v1 from protos/unseen/v1.

Run from anywhere: ``python scripts/gen_protos.py``. It compiles from the repo
root so that generated imports follow the file path (``unseen.v1.x_pb2``).
The grpcio-tools version is pinned in pyproject's test extra; the staleness
test (tests/unit/test_protos_fresh.py) calls :func:`generate` into a temporary
folder and diffs the result against the committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = Path("protos")
PROTO_DIR = PROTO_ROOT / "unseen" / "v1"
OUT_DIR = Path("unseen") / "v1"
PINNED_GRPCIO_TOOLS = "1.85.1"


def proto_files() -> list[Path]:
    """The .proto sources, relative to the repo root, in a stable order."""
    return sorted(p.relative_to(ROOT / PROTO_ROOT) for p in (ROOT / PROTO_DIR).glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Compile every proto into ``out_dir`` and return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    version = getattr(grpc_tools, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("grpcio-tools")
    if version != PINNED_GRPCIO_TOOLS:
        raise SystemExit(
            f"grpcio-tools {version} is installed; the committed code is generated "
            f"with {PINNED_GRPCIO_TOOLS} (pip install grpcio-tools=={PINNED_GRPCIO_TOOLS})"
        )
    include = Path(protoc.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT / PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_dir / OUT_DIR).glob("*_pb2*.py*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo root)")
    args = parser.parse_args()
    written = generate(args.out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
