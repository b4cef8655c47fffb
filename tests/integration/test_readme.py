"""The README's "Running a federation by hand" section runs as written on a fresh folder.

The ``sh`` block is run by bash, line for line, with ``unseen`` on the PATH
and the documented ports swapped for free ones; the Python example runs
where the README says it can (after the query, before the servers are
stopped). The query's JSON answer is checked against DuckDB over the sample
files the block itself wrote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTS = ("7000", "7001", "7002")


def _section_block(readme: str, heading: str, language: str) -> str:
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"README: no {language} block under {heading!r}"
    return match.group(1)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _dialect_shim(directory: Path) -> Path | None:
    """An entry point for the dialect when this source tree runs over an older install.

    CI installs the checkout, so ``pyproject.toml``'s entry point is installed; a
    developer's editable install of another tree may predate it. The shim declares
    the same entry point pyproject does (checked in tests/unit/test_dbapi.py).
    """
    from importlib.metadata import entry_points

    if entry_points(group="sqlalchemy.dialects", name="unseen"):
        return None
    info = directory / "unseen_readme_shim-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unseen-readme-shim\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[sqlalchemy.dialects]\nunseen = unseen.sqlalchemy:UnseenDialect\n"
    )
    return directory


def _script(tmp_path: Path) -> str:
    readme = (ROOT / "README.md").read_text()
    shell = _section_block(readme, "Running a federation by hand", "sh")
    python = _section_block(readme, "From Python: DB-API, pandas, SQLAlchemy", "python")
    lines = shell.rstrip("\n").split("\n")
    assert lines[-1].startswith("kill "), "the block ends by stopping the servers"
    script = "\n".join(
        [
            "set -e",
            "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
            *lines[:-1],
            "python example.py",
            lines[-1],
            "wait",
        ]
    )
    for documented, free in zip(PORTS, _free_ports(len(PORTS)), strict=True):
        script = script.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{free}")
        python = python.replace(f"127.0.0.1:{documented}", f"127.0.0.1:{free}")
    (tmp_path / "example.py").write_text(python)
    return script


def test_the_by_hand_section_runs_verbatim(tmp_path):
    work, bin_dir, config = tmp_path / "work", tmp_path / "bin", tmp_path / "config"
    for folder in (work, bin_dir):
        folder.mkdir()
    for name, target in (("unseen", "-m unseen"), ("python", "")):
        launcher = bin_dir / name
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" {target} "$@"\n')
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
    path_entries = [str(ROOT)]
    shim = _dialect_shim(tmp_path / "shim")
    if shim is not None:
        path_entries.append(str(shim))
    if os.environ.get("PYTHONPATH"):
        path_entries.append(os.environ["PYTHONPATH"])
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(path_entries),
        XDG_CONFIG_HOME=str(config),
    )
    process = subprocess.Popen(
        ["bash", "-c", _script(work)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the README block did not finish:\n{stdout}\n{stderr}")
    assert process.returncode == 0, f"{stdout}\n{stderr}"

    answers = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"columns"')]
    assert len(answers) == 1, stdout
    (answer,) = answers
    sql = _section_block((ROOT / "README.md").read_text(), "Running a federation by hand", "sh")
    query = re.search(r'"(SELECT .*?)"', sql, re.DOTALL)
    assert query
    reference = duckdb.connect()
    reference.execute(
        f"CREATE VIEW loans AS SELECT * FROM read_csv('{work / 'loans_a.csv'}') "
        f"UNION ALL SELECT * FROM read_parquet('{work / 'loans_b.parquet'}')"
    )
    theirs = reference.sql(query.group(1)).fetchall()
    assert answer["meta"]["suppressed"] == [{"group": {"city": "Zhoushan"}, "reason": "k"}]
    shown = [row for row in answer["rows"] if row[0] != "Zhoushan"]
    expected = [row for row in theirs if row[0] != "Zhoushan"]
    assert len(shown) == len(expected) == 4
    for ours, row in zip(shown, expected, strict=True):
        assert ours[:3] == list(row[:3])
        assert ours[3] == pytest.approx(row[3], rel=1e-6)
        assert ours[4] == pytest.approx(row[4], rel=1e-6)
    # The catalog line and the Python example printed what they promise.
    assert "loans" in stdout and "Zhoushan" in stdout
    assert "'group': {'city': 'Zhoushan'}" in stdout
    assert "domain: 5 values" in stdout, stdout
