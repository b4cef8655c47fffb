"""Issue 14's scale figure: the bench's GROUP BY city on a PostgreSQL holder of ROWS rows.

Starts a private PostgreSQL (as tests/servers.py does: its own data folder,
a free loopback port, a read-only ``holder`` account), generates the table in
the database, and runs :func:`unseen.bench.warehouse.postgres_figure`::

    nice python scripts/bench_postgres.py --rows 100000000 --json out.json

Needs about 60 bytes of disk per row under ``--root`` (6 GB at 100M rows).
Run it from the repository root (it imports ``tests.servers``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import postgres_server
from unseen.bench.machine import describe_machine
from unseen.bench.warehouse import postgres_figure, summary_line
from unseen.engine.crypto.keys import AnalystKey


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="folder for PostgreSQL's data")
    parser.add_argument("--json", type=Path, default=None, help="write the figure here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="unseen-pgbench-", dir=args.root))
    base.chmod(0o755)  # the postgres account must reach its data folder
    try:
        with postgres_server(base / "server") as server:
            figure = postgres_figure(
                server.connect,
                server.url("electricity"),
                args.rows,
                base / "work",
                AnalystKey.generate(),
                repeats=args.repeats,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    figure["machine"] = describe_machine()
    print(summary_line(figure))
    if args.json is not None:
        args.json.write_text(json.dumps(figure, indent=1) + "\n")
    return 0 if figure["answers_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
