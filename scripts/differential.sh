#!/bin/sh
# The full-size differential run: thousands of random queries against DuckDB.
# CI runs the same test with UNSEEN_DIFF_QUERIES=120.
set -eu
cd "$(dirname "$0")/.."
UNSEEN_DIFF_QUERIES="${UNSEEN_DIFF_QUERIES:-3000}" HYPOTHESIS_PROFILE=full \
  python -m pytest tests/integration/test_differential.py tests/unit -q "$@"
