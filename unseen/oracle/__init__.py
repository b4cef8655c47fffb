"""The plaintext oracle: the same questions answered in DuckDB/numpy (demo and tests only)."""
