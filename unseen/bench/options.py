"""``unseen bench`` flags and the entry point that runs a grid and writes its outputs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

_EXTRA = "pip install '.[bench]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` sub-command's flags."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="reduced grid, under two minutes on two cores (the default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every size: up to 3 x 10M rows and 1M entities x 100 features (long)",
    )
    # The smallest grid, for the smoke test; not a benchmark.
    mode.add_argument(
        "--tiny", dest="mode", action="store_const", const="tiny", help=argparse.SUPPRESS
    )
    parser.set_defaults(mode="quick")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write every figure"
    )
    parser.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write PNG plots")
    parser.add_argument(
        "--markdown", type=Path, default=None, metavar="FILE", help="write the tables as Markdown"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="generate data (and logs) here and reuse it on later runs (default: a temporary "
        "folder, removed afterwards)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per figure")
    parser.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    parser.add_argument("--no-paillier", action="store_true", help="skip the Paillier comparison")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="FILE",
        help="run nothing: print (and --json/--markdown/--plot) the results in FILE again",
    )


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: the file stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    """Run the chosen grid; print the table; write JSON, Markdown and plots if asked."""
    from unseen.engine.errors import ConfigError

    missing_plot = _missing("matplotlib") if args.plot is not None else []
    if missing_plot:
        raise ConfigError(f"--plot needs matplotlib; install the extras: {_EXTRA}")
    with_paillier = not args.no_paillier
    if args.render is None and args.mode == "full" and with_paillier and _missing("phe", "gmpy2"):
        names = " and ".join(_missing("phe", "gmpy2"))
        raise ConfigError(
            f"the Paillier comparison needs {names}; install the extras: {_EXTRA} "
            "(or pass --no-paillier)"
        )
    if args.repeats is not None and args.repeats < 1:
        raise ConfigError("--repeats must be at least 1")

    from unseen.bench.progress import Progress
    from unseen.bench.report import render
    from unseen.bench.suite import GRIDS, refresh, run_suite

    progress = Progress(quiet=args.quiet)
    if args.render is not None:
        try:
            results = refresh(json.loads(args.render.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{args.render} is not a results file of unseen bench: {exc}"
            ) from exc
    else:
        grid = GRIDS[args.mode]
        if args.repeats is not None:
            grid = dataclasses.replace(grid, repeats=args.repeats)
        if args.mode == "quick" and with_paillier and _missing("phe"):
            progress.log(
                f"note: phe is not installed, the Paillier comparison is skipped ({_EXTRA})"
            )
        with tempfile.TemporaryDirectory(prefix="unseen-bench-") as scratch:
            root = args.data if args.data is not None else Path(scratch)
            root.mkdir(parents=True, exist_ok=True)
            results = run_suite(
                grid, root / "data", root / "logs", progress, args.seed, with_paillier
            )
    results = _json_safe(results)
    sys.stdout.write(render(results))
    sys.stdout.flush()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        progress.log(f"wrote {args.json}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render(results, markdown=True))
        progress.log(f"wrote {args.markdown}")
    if args.plot is not None:
        from unseen.bench.plots import write_plots

        for path in write_plots(results, args.plot):
            progress.log(f"wrote {path}")
    return 0
