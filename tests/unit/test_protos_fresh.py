"""The committed generated code must be what the pinned generator produces now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_protos_are_up_to_date(tmp_path):
    written = _generator().generate(tmp_path)
    assert written, "the generator wrote nothing"
    stale = []
    for path in written:
        relative = path.relative_to(tmp_path)
        committed = ROOT / relative
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(relative))
    extra = {p.name for p in (ROOT / "unseen/v1").glob("*_pb2*")} - {p.name for p in written}
    assert not stale and not extra, (
        f"stale generated code {stale} / orphans {sorted(extra)}: run python scripts/gen_protos.py"
    )
