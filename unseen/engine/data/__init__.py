"""A holder's data: sources, pushdown SQL, local answers, and the synthetic province."""
