#!/bin/sh
# The full-size differential run: thousands of random queries against DuckDB.
# CI runs the same test with UNSEEN_DIFF_QUERIES=120.
set -eu
cd "$(dirname "$0")/.."
# The warehouse holders (PostgreSQL, MariaDB, Spark) run UNSEEN_WAREHOUSE_QUERIES of them.
UNSEEN_DIFF_QUERIES="${UNSEEN_DIFF_QUERIES:-3000}" \
UNSEEN_WAREHOUSE_QUERIES="${UNSEEN_WAREHOUSE_QUERIES:-500}" HYPOTHESIS_PROFILE=full \
  python -m pytest tests/integration/test_differential.py tests/integration/test_warehouses.py \
  tests/unit -q "$@"
