"""The query front end: SQL to plans, slot layouts, and finishing after decryption."""
