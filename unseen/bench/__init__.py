"""The benchmark suite behind ``unseen bench`` (see benchmarks/README.md).

Importing this package is cheap (argparse only): ``unseen``'s command line
builds the ``bench`` parser from :func:`add_arguments` and calls :func:`run`,
which imports the heavy modules when a benchmark actually starts.
"""

from __future__ import annotations

from unseen.bench.options import add_arguments, run

__all__ = ["add_arguments", "run"]
