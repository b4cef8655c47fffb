"""``python -m unseen.bench [flags]``: the same as ``unseen bench [flags]``."""

from __future__ import annotations

import sys

from unseen.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
